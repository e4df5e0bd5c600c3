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
    /// The settings the process started with: what every restart-only key is compared against,
    /// so a change is reported on every reload until the restart.
    started: Settings,
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
                started: settings.clone(),
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
        needs_restart.extend(read_at_start_up_changes(&self.inner.started, settings));
        needs_restart.extend(
            self.settings()
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

/// The keys of `[server]`, `[log]`, `[replay]`, `[limits]` and `[rate_limit]` whose value differs
/// between `started` and `new`, dotted (`limits.max_upstream_calls`): all of them are read once at
/// start-up (listeners, connection rules, the subscriber, the replay cache, the semaphores, the
/// provider pools, the buckets). None of these sections holds a secret; only names are returned.
fn read_at_start_up_changes(started: &Settings, new: &Settings) -> Vec<String> {
    fn sections(settings: &Settings) -> Vec<(&'static str, Option<toml::Value>)> {
        vec![
            ("server", toml::Value::try_from(&settings.server).ok()),
            ("log", toml::Value::try_from(&settings.log).ok()),
            ("replay", toml::Value::try_from(&settings.replay).ok()),
            ("limits", toml::Value::try_from(&settings.limits).ok()),
            (
                "rate_limit",
                toml::Value::try_from(&settings.rate_limit).ok(),
            ),
        ]
    }
    fn flatten(prefix: String, value: Option<&toml::Value>, out: &mut BTreeMap<String, String>) {
        match value {
            Some(toml::Value::Table(table)) => {
                for (key, value) in table {
                    flatten(format!("{prefix}.{key}"), Some(value), out);
                }
            }
            Some(other) => {
                out.insert(prefix, other.to_string());
            }
            None => {}
        }
    }
    let mut before = BTreeMap::new();
    let mut after = BTreeMap::new();
    for ((name, old), (_, new)) in sections(started).into_iter().zip(sections(new)) {
        flatten(name.to_owned(), old.as_ref(), &mut before);
        flatten(name.to_owned(), new.as_ref(), &mut after);
    }
    let mut changed: Vec<String> = before
        .iter()
        .filter(|(key, value)| after.get(*key) != Some(value))
        .map(|(key, _)| key.clone())
        .collect();
    changed.extend(
        after
            .keys()
            .filter(|key| !before.contains_key(*key))
            .cloned(),
    );
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_only_keys_are_named_when_they_differ_from_the_start() {
        let started = Settings::from_toml_with_env(
            r#"
[providers.kick]
client_id = "id"
client_secret = "a-secret-of-reasonable-length"
allowed_redirect_uris = ["http://127.0.0.1:8000/callback"]
"#,
            std::iter::empty(),
        )
        .expect("valid");
        let mut new = started.clone();
        assert!(read_at_start_up_changes(&started, &new).is_empty());
        new.limits.max_upstream_calls += 1;
        new.server.listen = "127.0.0.1:1".parse().expect("address");
        new.rate_limit.token.per_minute += 1;
        assert_eq!(
            read_at_start_up_changes(&started, &new),
            [
                "limits.max_upstream_calls",
                "rate_limit.token.per_minute",
                "server.listen"
            ]
        );
    }
}
