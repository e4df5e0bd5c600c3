//! The state every handler shares: registered clients, OAuth store, clock, fault and counters.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::clock::Clock;
use crate::config::{EmulatorConfig, RegisteredClient};
use crate::faults::FaultSlot;
use crate::stats::Counters;
use crate::store::{Lifetimes, Store};

/// Shared by the router and the [`Emulator`](crate::Emulator) handle. Deliberately not `Debug`:
/// it holds live codes and tokens.
pub(crate) struct App {
    clients: HashMap<String, RegisteredClient>,
    store: Mutex<Store>,
    pub(crate) clock: Clock,
    pub(crate) faults: FaultSlot,
    pub(crate) counters: Counters,
}

impl App {
    pub(crate) fn new(config: &EmulatorConfig) -> Self {
        Self {
            clients: config
                .clients
                .iter()
                .map(|c| (c.client_id.clone(), c.clone()))
                .collect(),
            store: Mutex::new(Store::new(Lifetimes::from(config))),
            clock: Clock::new(),
            faults: FaultSlot::default(),
            counters: Counters::default(),
        }
    }

    /// The registered client with this id, if any.
    pub(crate) fn client(&self, client_id: &str) -> Option<&RegisteredClient> {
        self.clients.get(client_id)
    }

    /// The OAuth store. A panic while holding it cannot leave it half-updated in a way that
    /// matters to an emulator, so a poisoned lock is simply taken over.
    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
