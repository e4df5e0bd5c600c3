//! Single-flight: identical requests arriving together share one provider call, so two parts of
//! an app refreshing at once cannot make the provider see a refresh-token replay.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::watch;

/// Concurrent identical requests share one execution: the first runs it in its own task (so a
/// caller that disconnects does not cancel a provider call half-way), the others wait for its
/// result.
pub struct Flights<T> {
    inflight: Arc<Mutex<InFlight<T>>>,
}

/// Executions under way, by index: each publishes its result once on its watch channel.
type InFlight<T> = HashMap<[u8; 32], watch::Receiver<Option<T>>>;

impl<T> Default for Flights<T> {
    fn default() -> Self {
        Self {
            inflight: Arc::default(),
        }
    }
}

impl<T: Clone + Send + Sync + 'static> Flights<T> {
    /// Runs `work` unless an identical one (same `index`) is in flight; either way, its result.
    /// `shared` in the answer is true when this caller waited on another's execution.
    pub async fn run<F>(&self, index: [u8; 32], work: F) -> Option<(T, bool)>
    where
        F: Future<Output = T> + Send + 'static,
    {
        let (mut receiver, shared) = {
            let mut inflight = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
            match inflight.get(&index) {
                Some(receiver) => (receiver.clone(), true),
                None => {
                    let (sender, receiver) = watch::channel(None);
                    inflight.insert(index, receiver.clone());
                    let map = Arc::clone(&self.inflight);
                    tokio::spawn(async move {
                        // Leaves the map however the work ends, a panic included, so a failed
                        // flight cannot leave identical requests waiting on a dead channel.
                        let _leave = LeaveOnDrop { map, index };
                        let result = work.await;
                        // Publish, then leave the map: a request arriving after this finds the
                        // replay entry the work stored.
                        let _ = sender.send(Some(result));
                    });
                    (receiver, false)
                }
            }
        };
        let result = receiver.wait_for(Option::is_some).await.ok()?.clone();
        result.map(|value| (value, shared))
    }

    /// Executions in flight.
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.inflight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

struct LeaveOnDrop<T> {
    map: Arc<Mutex<InFlight<T>>>,
    index: [u8; 32],
}

impl<T> Drop for LeaveOnDrop<T> {
    fn drop(&mut self) {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_flight_that_panics_does_not_block_later_identical_requests() {
        let flights: Flights<u32> = Flights::default();
        let failed = flights
            .run([9; 32], async { panic!("provider call panicked") })
            .await;
        assert!(failed.is_none());
        assert_eq!(flights.in_flight(), 0);
        let retried = flights.run([9; 32], async { 7 }).await;
        assert_eq!(retried, Some((7, false)));
    }

    #[tokio::test]
    async fn concurrent_identical_work_runs_once() {
        let flights: Arc<Flights<u32>> = Arc::default();
        let runs = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let mut waiters = Vec::new();
        for _ in 0..50 {
            let flights = Arc::clone(&flights);
            let runs = Arc::clone(&runs);
            waiters.push(tokio::spawn(async move {
                flights
                    .run([7; 32], async move {
                        runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        42
                    })
                    .await
            }));
        }
        let mut shared = 0;
        for waiter in waiters {
            let (value, was_shared) = waiter.await.expect("join").expect("result");
            assert_eq!(value, 42);
            shared += usize::from(was_shared);
        }
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(shared, 49);
        assert_eq!(flights.in_flight(), 0);
    }
}
