//! A dead, hung or unreachable store costs each request at most `op_timeout`, and after a few
//! failures nothing at all; it recovers by itself. Plus authentication and TLS.

use crate::server::{Listen, RedisServer};
use crate::{keys, redis_settings, redis_store, store_from};
use kick_oauth_proxy::config::state::RedisSettings;
use kick_oauth_proxy::state::keys::RateKey;
use kick_oauth_proxy::state::{
    Claim, Decision, Health, Pending, RateQuota, RedisStore, SharedStore, StoreError,
};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

const OP_TIMEOUT: Duration = Duration::from_millis(100);
const COOLDOWN: Duration = Duration::from_millis(500);
/// Scheduling noise allowed on a shared 2-core machine.
const SLACK: Duration = Duration::from_millis(100);
/// What "at once" means for an operation the breaker refuses (no I/O at all).
const INSTANT: Duration = Duration::from_millis(10);

fn store(url: &str) -> RedisStore {
    redis_store(url, 100).with_breaker(3, COOLDOWN)
}

fn bucket() -> (RateKey, RateQuota) {
    let key = keys().rate_key("token", "203.0.113.9".parse().expect("ip"));
    let quota = RateQuota::per_minute(
        NonZeroU32::new(6000).expect("n"),
        NonZeroU32::new(1000).expect("n"),
    );
    (key, quota)
}

async fn timed<T>(f: impl std::future::Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let out = f.await;
    (out, started.elapsed())
}

/// Pings until the store answers (at most `within`); how long it took.
async fn until_answering(store: &RedisStore, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if store.ping().await.is_ok() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "the store did not answer again within {within:?} (health {:?})",
            store.health()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Three failing operations open the breaker; each took at most `op_timeout`; the next returns
/// at once without touching the network.
async fn fail_then_open(store: &RedisStore, expect_timeouts: bool) -> Vec<Duration> {
    let (key, quota) = bucket();
    let mut costs = Vec::new();
    for n in 1..=3 {
        let (result, cost) = timed(store.gcra(&key, quota)).await;
        match (&result, expect_timeouts) {
            (Err(StoreError::Timeout), true) => {
                assert!(cost >= OP_TIMEOUT - Duration::from_millis(5))
            }
            (Err(StoreError::Failed(_)), false) => {}
            _ => panic!("operation {n}: {result:?} after {cost:?}"),
        }
        assert!(cost <= OP_TIMEOUT + SLACK, "operation {n} took {cost:?}");
        costs.push(cost);
    }
    assert!(
        matches!(store.health(), Health::Degraded { retry_after } if retry_after <= COOLDOWN),
        "{:?}",
        store.health()
    );
    for _ in 0..20 {
        let (result, cost) = timed(store.gcra(&key, quota)).await;
        assert!(
            matches!(result, Err(StoreError::Unavailable { .. })),
            "{result:?}"
        );
        assert!(cost < INSTANT, "a refused operation took {cost:?}");
    }
    costs
}

#[tokio::test]
async fn a_killed_store_fails_fast_opens_the_breaker_and_recovers_after_a_restart() {
    let Some(mut server) = RedisServer::start(Listen::Unix) else {
        return;
    };
    let store = store(&server.unix_url());
    store.ping().await.expect("up");
    assert_eq!(store.health(), Health::Ok);
    let (key, quota) = bucket();
    assert_eq!(store.gcra(&key, quota).await, Ok(Decision::Allow));

    server.kill();
    let costs = fail_then_open(&store, false).await;

    tokio::time::sleep(COOLDOWN).await;
    let (probe, cost) = timed(store.ping()).await;
    assert!(
        probe.is_err() && cost <= OP_TIMEOUT + SLACK,
        "{probe:?} {cost:?}"
    );
    assert!(
        matches!(store.health(), Health::Degraded { .. }),
        "a failed probe re-opens"
    );

    server.restart();
    let recovered = until_answering(&store, COOLDOWN * 2 + Duration::from_secs(1)).await;
    assert_eq!(store.health(), Health::Ok);
    let index = crate::fresh_index();
    let pending = Pending::new(Duration::from_secs(12)).expect("randomness");
    assert_eq!(store.claim(&index, &pending).await, Ok(Claim::Held));
    println!(
        "killed: failing ops cost {costs:?}, then refused at once; answering {recovered:?} after \
         the restart"
    );
}

#[tokio::test]
async fn a_stopped_store_costs_at_most_op_timeout_then_nothing_and_recovers_on_sigcont() {
    let Some(server) = RedisServer::start(Listen::Unix) else {
        return;
    };
    let store = store(&server.unix_url());
    store.ping().await.expect("up");

    server.stop();
    let costs = fail_then_open(&store, true).await;
    tokio::time::sleep(COOLDOWN).await;
    let (probe, cost) = timed(store.ping()).await;
    assert_eq!(
        probe,
        Err(StoreError::Timeout),
        "the probe pays the timeout once"
    );
    assert!(cost <= OP_TIMEOUT + SLACK, "{cost:?}");
    let (key, quota) = bucket();
    let (refused, cost) = timed(store.gcra(&key, quota)).await;
    assert!(matches!(refused, Err(StoreError::Unavailable { .. })) && cost < INSTANT);

    server.cont();
    let recovered = until_answering(&store, COOLDOWN * 2 + Duration::from_secs(1)).await;
    assert_eq!(store.health(), Health::Ok);
    assert_eq!(store.gcra(&key, quota).await, Ok(Decision::Allow));
    println!(
        "stopped: failing ops cost {costs:?} (op_timeout {OP_TIMEOUT:?}), then refused at once; \
         answering {recovered:?} after SIGCONT"
    );
}

#[tokio::test]
async fn a_store_that_is_down_at_start_up_neither_blocks_nor_fails_it() {
    let Some(mut server) = RedisServer::start(Listen::Unix) else {
        return;
    };
    let url = server.unix_url();
    server.kill();
    let (built, cost) = timed(async { store(&url) }).await;
    assert!(
        cost < Duration::from_millis(50),
        "building the store took {cost:?}"
    );
    assert_eq!(built.health(), Health::Ok, "nothing known yet");
    fail_then_open(&built, false).await;
    server.restart();
    until_answering(&built, COOLDOWN * 2 + Duration::from_secs(1)).await;
    assert_eq!(built.health(), Health::Ok);
}

#[tokio::test]
async fn the_password_comes_from_its_file_and_a_wrong_one_is_a_failure_not_a_hang() {
    let Some(server) =
        RedisServer::start_with(Listen::Unix, &["--requirepass", "canary-redis-password"])
    else {
        return;
    };
    let right = server.dir().join("password");
    let wrong = server.dir().join("wrong");
    std::fs::write(&right, "canary-redis-password\n").expect("write");
    std::fs::write(&wrong, "not-it\n").expect("write");
    let with = |file: &std::path::Path| {
        let mut settings = redis_settings(&server.unix_url(), 100);
        settings.redis = Some(RedisSettings {
            url: Some(server.unix_url()),
            password_file: Some(file.to_owned()),
            ..RedisSettings::default()
        });
        store_from(&settings)
    };
    assert_eq!(with(&right).ping().await, Ok(()));
    let (result, cost) = timed(with(&wrong).ping()).await;
    assert!(matches!(result, Err(StoreError::Failed(_))), "{result:?}");
    assert!(cost <= OP_TIMEOUT + SLACK, "{cost:?}");
    assert!(!format!("{result:?}").contains("canary"));
    let none = redis_store(&server.unix_url(), 100);
    assert!(none.ping().await.is_err(), "no password, no answer");
}

/// A private CA, and a server certificate for 127.0.0.1 it signed: (CA PEM, cert PEM, key PEM).
fn private_ca() -> (String, String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "redis test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
    params.distinguished_name.push(DnType::CommonName, "redis");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer).expect("signed");
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

#[tokio::test]
async fn rediss_with_a_private_ca_file_connects_and_another_ca_is_refused() {
    let (ca_pem, cert_pem, key_pem) = private_ca();
    let Some(server) = RedisServer::start(Listen::Tls { cert_pem, key_pem }) else {
        return;
    };
    let ca_file = server.dir().join("ca.pem");
    std::fs::write(&ca_file, &ca_pem).expect("write");
    let (other_ca, _, _) = private_ca();
    let other_file = server.dir().join("other-ca.pem");
    std::fs::write(&other_file, &other_ca).expect("write");
    let with = |ca: &std::path::Path| {
        let url = server.tcp_url(true);
        let mut settings = redis_settings(&url, 1000);
        settings.redis = Some(RedisSettings {
            url: Some(url),
            ca_file: Some(ca.to_owned()),
            ..RedisSettings::default()
        });
        store_from(&settings)
    };
    let trusted = with(&ca_file);
    assert_eq!(trusted.ping().await, Ok(()));
    let index = crate::fresh_index();
    let pending = Pending::new(Duration::from_secs(12)).expect("randomness");
    assert_eq!(trusted.claim(&index, &pending).await, Ok(Claim::Held));
    let untrusted = with(&other_file);
    let result = untrusted.ping().await;
    assert!(matches!(result, Err(StoreError::Failed(_))), "{result:?}");
}
