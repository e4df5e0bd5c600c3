//! Single-flight: identical requests arriving together share one provider call, so two parts of
//! an app refreshing at once cannot make the provider see a refresh-token replay.

use super::replay::IndexMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use tokio::sync::Notify;

/// Concurrent identical requests share one execution: the first runs it, the others wait for its
/// result. The first caller polls the execution itself (no task, no hand-off between tasks when
/// nothing is shared); if that caller is dropped before it finishes (the client disconnected), the
/// rest of the execution moves to a task of its own, so a provider call is never cut half-way.
pub struct Flights<T> {
    inflight: Arc<Mutex<InFlight<T>>>,
}

/// Executions under way, by index: each publishes its result once, to the callers waiting on it.
type InFlight<T> = IndexMap<Arc<Outcome<T>>>;

/// What a flight's waiters read once it ends: one small allocation per flight, and nothing to
/// copy, publish or wake when nobody waited (distinct requests, the common case). Not a `watch`
/// channel, whose shared state is several times the size and wakes its (eight) wait lists
/// whenever its sender is dropped.
struct Outcome<T> {
    /// `None` until the flight ends; then its result, `None` when it ended without one.
    result: Mutex<Option<Option<T>>>,
    ended: Notify,
}

impl<T: Clone> Outcome<T> {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            result: Mutex::new(None),
            ended: Notify::new(),
        })
    }

    fn publish(&self, result: Option<T>) {
        *self.result.lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
        self.ended.notify_waiters();
    }

    async fn wait(&self) -> Option<T> {
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            // Registered before the look, so a publication in between still wakes it.
            ended.as_mut().enable();
            if let Some(result) = &*self.result.lock().unwrap_or_else(PoisonError::into_inner) {
                return result.clone();
            }
            ended.await;
        }
    }
}

impl<T> Default for Flights<T> {
    fn default() -> Self {
        Self {
            inflight: Arc::default(),
        }
    }
}

/// What a caller does: lead the execution, or wait for the one in flight.
enum Role<T: Clone + Send + Sync + 'static> {
    Lead(Detached<T>),
    Wait(Arc<Outcome<T>>),
}

impl<T: Clone + Send + Sync + 'static> Flights<T> {
    /// Runs `work` unless an identical one (same `index`) is in flight; either way, its result.
    /// `shared` in the answer is true when this caller waited on another's execution. `None` when
    /// the execution panicked.
    ///
    /// Whether this caller leads or waits is settled here, before the returned future is first
    /// polled. `work` is moved once, into the one allocation of a flight; the returned future
    /// holds a pointer to it, not the execution's whole state, so the futures of the callers
    /// above stay small and are not copied around at every `.await` (one provider call's state
    /// is kilobytes).
    pub fn run<F>(
        &self,
        index: [u8; 32],
        work: F,
    ) -> impl Future<Output = Option<(T, bool)>> + Send + 'static
    where
        F: Future<Output = T> + Send + 'static,
    {
        let role = {
            let mut inflight = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
            match inflight.get(&index) {
                Some(outcome) => Role::Wait(Arc::clone(outcome)),
                None => {
                    let outcome = Outcome::new();
                    inflight.insert(index, Arc::clone(&outcome));
                    Role::Lead(Detached(Some(Flight {
                        work: Box::pin(work),
                        leave: Some(LeaveOnDrop {
                            map: Arc::clone(&self.inflight),
                            index,
                        }),
                        outcome: Some(outcome),
                    })))
                }
            }
        };
        async move {
            match role {
                Role::Lead(flight) => flight.await.map(|value| (value, false)),
                Role::Wait(outcome) => outcome.wait().await.map(|value| (value, true)),
            }
        }
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

/// One execution and what ends it: it leaves the map however the work ends, a panic included (so
/// a failed flight cannot leave identical requests waiting on it), then publishes.
struct Flight<T: Clone> {
    work: Pin<Box<dyn Future<Output = T> + Send>>,
    /// Taken when the work ends.
    leave: Option<LeaveOnDrop<T>>,
    /// Taken when the result is published.
    outcome: Option<Arc<Outcome<T>>>,
}

impl<T: Clone> Flight<T> {
    /// Leaves the map, then gives the waiters `result`, if there are any: out of the map, no new
    /// one can appear, so an outcome nobody else holds has nobody to tell.
    fn end(&mut self, result: Option<&T>) {
        drop(self.leave.take());
        let Some(outcome) = &self.outcome else {
            return;
        };
        if Arc::strong_count(outcome) > 1 {
            // Cloned while the outcome is still held: if a clone panicked, dropping the flight
            // would still tell the waiters.
            let result = result.cloned();
            outcome.publish(result);
        }
        self.outcome = None;
    }
}

/// Dropped before its work ended (nothing could run it): the waiters get no result.
impl<T: Clone> Drop for Flight<T> {
    fn drop(&mut self) {
        self.end(None);
    }
}

impl<T: Clone> Future for Flight<T> {
    /// `None` if polling the work panicked (as a spawned task's panic would be caught).
    type Output = Option<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = &mut *self;
        let result =
            match std::panic::catch_unwind(AssertUnwindSafe(|| this.work.as_mut().poll(cx))) {
                Ok(Poll::Pending) => return Poll::Pending,
                Ok(Poll::Ready(value)) => Some(value),
                Err(_) => None,
            };
        // Leave the map, then publish (`None` after a panic). A request arriving after this finds
        // the replay entry the work stored (replay on), or makes its own call (replay off): it
        // must not share an answer that is already complete, which would be a replay the
        // operator turned off.
        this.end(result.as_ref());
        Poll::Ready(result)
    }
}

/// A flight polled by the caller that leads it. Dropped unfinished (the caller went away), it
/// hands the rest of the execution to a task of its own, which finishes and publishes it.
struct Detached<T: Clone + Send + Sync + 'static>(Option<Flight<T>>);

impl<T: Clone + Send + Sync + 'static> Future for Detached<T> {
    type Output = Option<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let Some(flight) = self.0.as_mut() else {
            // Finished already; `.await` never polls again.
            return Poll::Pending;
        };
        let output = std::task::ready!(Pin::new(flight).poll(cx));
        self.0 = None;
        Poll::Ready(output)
    }
}

impl<T: Clone + Send + Sync + 'static> Drop for Detached<T> {
    fn drop(&mut self) {
        let Some(flight) = self.0.take() else {
            return;
        };
        // Outside a runtime (it is shutting down) nothing could run it: it is dropped, and its
        // waiters see the flight end without a result, as when a task is cancelled at shutdown.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            // The output is published by the flight itself; nobody reads it here.
            runtime.spawn(async move {
                let _ = flight.await;
            });
        }
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

    #[tokio::test]
    async fn a_request_after_the_flight_finished_runs_its_own_work() {
        let flights: Flights<u32> = Flights::default();
        assert_eq!(flights.run([3; 32], async { 1 }).await, Some((1, false)));
        // However soon it comes, the finished flight has left the map: no answer is shared.
        assert_eq!(flights.in_flight(), 0);
        assert_eq!(flights.run([3; 32], async { 2 }).await, Some((2, false)));
    }

    #[tokio::test]
    async fn a_leader_dropped_before_its_first_poll_still_runs_and_publishes() {
        let flights: Flights<u32> = Flights::default();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let leader = flights.run([4; 32], async move {
            let _ = released.await;
            5
        });
        let waiter = tokio::spawn(flights.run([4; 32], async { unreachable!("shared") }));
        drop(leader);
        let _ = release.send(());
        assert_eq!(waiter.await.expect("join"), Some((5, true)));
        assert_eq!(flights.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_leader_dropped_mid_flight_still_publishes_to_its_waiters() {
        let flights: Flights<u32> = Flights::default();
        let (started, has_started) = tokio::sync::oneshot::channel::<()>();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let leader = tokio::spawn(flights.run([6; 32], async move {
            let _ = started.send(());
            let _ = released.await;
            8
        }));
        has_started.await.expect("the work started");
        let waiter = tokio::spawn(flights.run([6; 32], async { unreachable!("shared") }));
        leader.abort();
        assert!(leader.await.expect_err("aborted").is_cancelled());
        let _ = release.send(());
        assert_eq!(waiter.await.expect("join"), Some((8, true)));
        assert_eq!(flights.in_flight(), 0);
    }

    #[test]
    fn a_leader_dropped_outside_a_runtime_ends_the_flight_without_a_result() {
        let flights: Flights<u32> = Flights::default();
        let leader = flights.run([2; 32], async { 1 });
        let waiter = flights.run([2; 32], async { unreachable!("shared") });
        assert_eq!(flights.in_flight(), 1);
        // Nothing could run the rest of the work: it is dropped, and the flight with it.
        drop(leader);
        assert_eq!(flights.in_flight(), 0);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        assert_eq!(runtime.block_on(waiter), None);
    }
}
