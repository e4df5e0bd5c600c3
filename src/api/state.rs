//! [`AppState`]: what every handler can reach.

use crate::config::Settings;
use crate::exchange::{ClientBuildError, Exchange};
use crate::state::SharedState;
use arc_swap::ArcSwap;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    settings: ArcSwap<Settings>,
    /// What the process started with, for the keys that need a restart: a change is reported on
    /// every reload until the restart. No client secret: those reload.
    started: StartedWith,
    exchange: Exchange,
    draining: AtomicBool,
    body_read_timeout: Duration,
}

impl AppState {
    /// Builds every provider's client from validated settings; `shared` is the store replicas
    /// share (`None`: everything per process).
    pub fn new(settings: &Settings, shared: Option<SharedState>) -> Result<Self, ClientBuildError> {
        Ok(Self {
            inner: Arc::new(Shared {
                settings: ArcSwap::from_pointee(settings.clone()),
                started: StartedWith {
                    read_at_start_up: read_at_start_up(settings),
                    state: settings.state.clone(),
                },
                exchange: Exchange::new(settings, shared)?,
                draining: AtomicBool::new(false),
                body_read_timeout: Duration::from_secs(settings.server.body_read_timeout_secs),
            }),
        })
    }

    /// Applies what can change without a restart from freshly loaded `settings` (see
    /// [`Exchange::reload`]). Returns the names of the keys that changed but need a restart.
    pub fn reload(&self, settings: &Settings) -> Vec<String> {
        let mut needs_restart = self.inner.exchange.reload(settings);
        let started = &self.inner.started;
        let now = read_at_start_up(settings);
        needs_restart.extend(changed_keys(&started.read_at_start_up, &now));
        needs_restart.extend(
            started
                .state
                .changed_keys(&settings.state)
                .into_iter()
                .map(str::to_owned),
        );
        self.inner.settings.store(Arc::new(settings.clone()));
        needs_restart
    }

    /// The validated settings in force (as of the last reload).
    pub fn settings(&self) -> Arc<Settings> {
        self.inner.settings.load_full()
    }

    /// The providers, replay and single-flight.
    pub fn exchange(&self) -> &Exchange {
        &self.inner.exchange
    }

    /// The body-read deadline.
    pub fn body_read_timeout(&self) -> Duration {
        self.inner.body_read_timeout
    }

    /// From now on `/readyz` answers 503 so load balancers stop sending traffic.
    pub fn start_draining(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
    }

    /// True once shutdown started.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }
}

/// See [`Shared::started`].
struct StartedWith {
    /// [`read_at_start_up`] of the settings at start-up.
    read_at_start_up: BTreeMap<String, String>,
    /// `[state]`, compared by value (its secret included: it cannot change without a restart).
    state: crate::config::StateConfig,
}

/// Every key of `[server]`, `[log]`, `[replay]`, `[limits]` and `[rate_limit]`, dotted
/// (`limits.max_upstream_calls`), with its value: all of them are read once at start-up
/// (listeners, connection rules, the subscriber, the replay cache, the semaphores, the provider
/// pools, the buckets). None of these sections holds a secret.
fn read_at_start_up(settings: &Settings) -> BTreeMap<String, String> {
    fn flatten(prefix: String, value: toml::Value, out: &mut BTreeMap<String, String>) {
        match value {
            toml::Value::Table(table) => {
                for (key, value) in table {
                    flatten(format!("{prefix}.{key}"), value, out);
                }
            }
            other => {
                out.insert(prefix, other.to_string());
            }
        }
    }
    let sections = [
        ("server", toml::Value::try_from(&settings.server)),
        ("log", toml::Value::try_from(&settings.log)),
        ("replay", toml::Value::try_from(&settings.replay)),
        ("limits", toml::Value::try_from(&settings.limits)),
        ("rate_limit", toml::Value::try_from(&settings.rate_limit)),
    ];
    let mut keys = BTreeMap::new();
    for (name, value) in sections {
        if let Ok(value) = value {
            flatten(name.to_owned(), value, &mut keys);
        }
    }
    keys
}

/// The keys whose value differs (or that are in one map only), by name; never a value.
fn changed_keys(started: &BTreeMap<String, String>, now: &BTreeMap<String, String>) -> Vec<String> {
    let mut changed: Vec<String> = started
        .iter()
        .filter(|(key, value)| now.get(*key) != Some(*value))
        .map(|(key, _)| key.clone())
        .collect();
    changed.extend(
        now.keys()
            .filter(|key| !started.contains_key(*key))
            .cloned(),
    );
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_only_keys_are_named_when_they_differ_from_the_start() {
        let started = Settings::minimal();
        let mut new = started.clone();
        let at_start = read_at_start_up(&started);
        assert!(changed_keys(&at_start, &read_at_start_up(&new)).is_empty());
        new.limits.max_upstream_calls += 1;
        new.server.listen = "127.0.0.1:1".parse().expect("address");
        new.rate_limit.token.per_minute += 1;
        assert_eq!(
            changed_keys(&at_start, &read_at_start_up(&new)),
            [
                "limits.max_upstream_calls",
                "rate_limit.token.per_minute",
                "server.listen"
            ]
        );
    }
}
