//! Two proxy replicas, one store, a fake provider (wiremock): issue #14's items 1–8 end to end.
//!
//! Replicas A and B are two `Application`s in this test process sharing one store: a
//! `redis-server` child (each replica with its own connection, as in a deployment), or one
//! `MemoryShared` (the same protocol without a server). Item 4 needs a holder that really dies:
//! replica A is then the real binary as a child process, killed with SIGKILL.

use crate::server::{Listen, RedisServer};
use crate::stored::{contains, dump, raw};
use crate::SECRET;
use kick_oauth_proxy::config::state::StateSecret;
use kick_oauth_proxy::config::Settings;
use kick_oauth_proxy::server::Application;
use kick_oauth_proxy::state::{MemoryShared, SharedState};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CODE: &str = "CANARYCODE-NZQ4ZWE3OTCTMJC5ZS0ZNJQ5LWE2NZUTYMZMND";
const VERIFIER: &str = "CANARYVERIFIER-dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gF";
const REDIRECT: &str = "http://localhost:1420/auth/callback";
const REFRESH: &str = "CANARYREFRESH-MWM5ZTQ3YTMTZGM4YS0ZMGQ5LWI3NTATMTHJN";
const ACCESS: &str = "CANARYACCESS-NJY1YJYYMGITNMRJZC0ZMTUWLTG1ZWQTOTU2ZJ";
const NEW_REFRESH: &str = "CANARYNEWREFRESH-ZTLHNDE3NZMTMWRKNS0ZZWEYLTK0ZDIT";
const CLIENT_SECRET: &str = "CANARY-client-secret-for-replicas";

/// The store the replicas share.
pub enum Shared {
    /// One `MemoryShared` handed to both.
    Memory(SharedState),
    /// A `redis-server`; each replica connects through its `[state]` config.
    Redis(RedisServer),
}

impl Shared {
    pub fn memory() -> Self {
        Self::Memory(SharedState::new(
            Arc::new(MemoryShared::new()),
            &StateSecret::from_bytes(SECRET.into()),
        ))
    }

    pub fn redis() -> Option<Self> {
        RedisServer::start(Listen::Tcp).map(Self::Redis)
    }

    /// The `[state]` table for this store.
    fn state_toml(&self, op_timeout_ms: u64) -> String {
        match self {
            Self::Memory(_) => format!("[state]\nsecret = \"{SECRET}\"\n"),
            Self::Redis(server) => format!(
                "[state]\nbackend = \"redis\"\nsecret = \"{SECRET}\"\nop_timeout_ms = \
                 {op_timeout_ms}\n[state.redis]\nurl = \"{}\"\n",
                server.tcp_url(false)
            ),
        }
    }

    fn server(&mut self) -> &mut RedisServer {
        match self {
            Self::Redis(server) => server,
            Self::Memory(_) => panic!("a Redis test"),
        }
    }
}

/// The config of one replica, `kick` at `upstream`.
fn config(upstream: &str, rate: &str, window_secs: u64, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
shutdown_grace_secs = 1

[replay]
window_secs = {window_secs}

[rate_limit]
{rate}

[providers.kick]
client_id = "01KREPLICAS"
client_secret = "{CLIENT_SECRET}"
allowed_redirect_uris = ["{REDIRECT}"]
token_url = "{upstream}/oauth/token"
revoke_url = "{upstream}/oauth/revoke"
timeout_secs = 2

{extra}
"#
    )
}

const GENEROUS: &str = "token = { per_minute = 100000, burst = 100000 }\n\
    refresh = { per_minute = 100000, burst = 100000 }\n\
    revoke = { per_minute = 100000, burst = 100000 }";

/// A replica serving in this process until dropped.
pub struct Replica {
    addr: SocketAddr,
    admin: Option<SocketAddr>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Replica {
    async fn start(shared: &Shared, upstream: &str, rate: &str, op_timeout_ms: u64) -> Self {
        Self::start_with_window(shared, upstream, rate, op_timeout_ms, 60).await
    }

    /// As [`Replica::start`], with `[replay] window_secs` given (0: replay off).
    async fn start_with_window(
        shared: &Shared,
        upstream: &str,
        rate: &str,
        op_timeout_ms: u64,
        window_secs: u64,
    ) -> Self {
        let toml = config(
            upstream,
            rate,
            window_secs,
            &shared.state_toml(op_timeout_ms),
        );
        let settings = Settings::from_toml_with_env(&toml, []).expect("valid replica config");
        let app = match shared {
            Shared::Memory(state) => Application::build_with_state(settings, Some(state.clone()))
                .await
                .expect("replica builds"),
            Shared::Redis(_) => Application::build(settings).await.expect("replica builds"),
        };
        let addr = app.local_addr();
        let admin = app.admin_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            admin,
            _stop: stop,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

fn tokens(access: &str, refresh: &str) -> Value {
    json!({"access_token": access, "token_type": "Bearer", "expires_in": 7200,
           "refresh_token": refresh, "scope": "user:read"})
}

/// A provider whose token endpoint answers every call with the same tokens after `delay`.
async fn provider(delay: Duration) -> MockServer {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(tokens(ACCESS, NEW_REFRESH))
                .set_delay(delay),
        )
        .mount(&upstream)
        .await;
    upstream
}

async fn post(client: &reqwest::Client, url: String, body: &Value) -> (u16, Option<u64>, String) {
    let response = client.post(url).json(body).send().await.expect("answer");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (status, retry_after, response.text().await.expect("body"))
}

fn exchange_body(code: &str) -> Value {
    json!({"code": code, "code_verifier": VERIFIER, "redirect_uri": REDIRECT})
}

fn refresh_body(token: &str) -> Value {
    json!({"refresh_token": token})
}

async fn token_calls(upstream: &MockServer) -> usize {
    upstream
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == "/oauth/token")
        .count()
}

async fn readyz(client: &reqwest::Client, replica: &Replica) -> (u16, Value) {
    let response = client
        .get(replica.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

async fn metric(client: &reqwest::Client, replica: &Replica, name: &str) -> f64 {
    let admin = replica.admin.expect("admin listener");
    let text = client
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

// ---- 1. a lost answer retried on the other replica -------------------------------------------

pub async fn a_retry_on_the_other_replica_gets_the_identical_answer(shared: Shared) {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(tokens(ACCESS, NEW_REFRESH)))
        .expect(1)
        .mount(&upstream)
        .await;
    let a = Replica::start(&shared, &upstream.uri(), GENEROUS, 200).await;
    let b = Replica::start(&shared, &upstream.uri(), GENEROUS, 200).await;
    let client = http();
    let (status_a, _, body_a) =
        post(&client, a.url("/api/v1/kick/token"), &exchange_body(CODE)).await;
    assert_eq!(status_a, 200, "{body_a}");
    // The client lost A's answer and retries; the load balancer sends it to B.
    let (status_b, _, body_b) =
        post(&client, b.url("/api/v1/kick/token"), &exchange_body(CODE)).await;
    assert_eq!(status_b, 200, "{body_b}");
    assert_eq!(body_a, body_b, "B answers A's body byte for byte");
    assert_eq!(
        token_calls(&upstream).await,
        1,
        "one provider call for both"
    );
    println!("1: A 200, B replayed the identical body; provider token calls: 1");
}

// ---- 2. concurrent identical refreshes on both replicas ---------------------------------------

pub async fn concurrent_refreshes_on_both_replicas_make_one_provider_call(shared: Shared) {
    let upstream = provider(Duration::from_millis(300)).await;
    let a = Replica::start(&shared, &upstream.uri(), GENEROUS, 200).await;
    let b = Replica::start(&shared, &upstream.uri(), GENEROUS, 200).await;
    let client = http();
    let mut calls = Vec::new();
    for i in 0..50 {
        let url = if i % 2 == 0 {
            a.url("/api/v1/kick/refresh")
        } else {
            b.url("/api/v1/kick/refresh")
        };
        let client = client.clone();
        calls.push(tokio::spawn(async move {
            post(&client, url, &refresh_body(REFRESH)).await
        }));
    }
    let mut bodies = std::collections::BTreeSet::new();
    for call in calls {
        let (status, _, body) = call.await.expect("join");
        assert_eq!(status, 200, "{body}");
        bodies.insert(body);
    }
    assert_eq!(bodies.len(), 1, "50 identical bodies");
    assert_eq!(
        token_calls(&upstream).await,
        1,
        "one provider call for 50 requests"
    );
    println!("2: 25 + 25 concurrent refreshes: 50 x 200, one body, provider calls: 1");
}

// ---- replay off means off on every replica ------------------------------------------------------

pub async fn with_replay_off_an_identical_request_later_reaches_the_provider_again(shared: Shared) {
    let upstream = provider(Duration::ZERO).await;
    let a = Replica::start_with_window(&shared, &upstream.uri(), GENEROUS, 200, 0).await;
    let b = Replica::start_with_window(&shared, &upstream.uri(), GENEROUS, 200, 0).await;
    let client = http();
    for (i, replica) in [&a, &b, &a].into_iter().enumerate() {
        let (status, _, body) = post(
            &client,
            replica.url("/api/v1/kick/refresh"),
            &refresh_body(REFRESH),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        // Sequential, not concurrent: nothing to share, and no stored answer to replay.
        assert_eq!(token_calls(&upstream).await, i + 1, "request {i}");
    }
}

// ---- 3. one bucket per client across replicas -------------------------------------------------

pub async fn a_client_alternating_between_replicas_gets_exactly_its_bucket(shared: Shared) {
    let upstream = MockServer::start().await;
    let rate = "token = { per_minute = 30, burst = 10 }\n\
        refresh = { per_minute = 30, burst = 10 }\n\
        revoke = { per_minute = 30, burst = 10 }";
    let a = Replica::start(&shared, &upstream.uri(), rate, 200).await;
    let b = Replica::start(&shared, &upstream.uri(), rate, 200).await;
    let client = http();
    let mut allowed = 0;
    let mut limited = Vec::new();
    for i in 0..20 {
        let replica = if i % 2 == 0 { &a } else { &b };
        // An invalid body: answered 400 without a provider call once past the limit.
        let (status, retry_after, _) =
            post(&client, replica.url("/api/v1/kick/token"), &json!({})).await;
        match status {
            429 => limited.push(retry_after.expect("429 carries Retry-After")),
            400 => allowed += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(
        allowed, 10,
        "exactly the burst across both replicas, not twice it"
    );
    assert_eq!(limited.len(), 10);
    assert!(limited.iter().all(|s| (1..=2).contains(s)), "{limited:?}");
    assert_eq!(token_calls(&upstream).await, 0);
    println!("3: 20 requests alternating A/B: 10 passed, 10 x 429 (Retry-After {limited:?})");
}

// ---- 7, 8: what the store holds; tampering -----------------------------------------------------

pub async fn the_store_holds_no_canary_and_a_tampered_record_is_a_miss() {
    let Some(shared) = Shared::redis() else {
        return;
    };
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(tokens(ACCESS, NEW_REFRESH)))
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(tokens(ACCESS, NEW_REFRESH)))
        .mount(&upstream)
        .await;
    // Slow enough buckets that they are still stored when the test looks.
    let rate = "token = { per_minute = 6, burst = 1000 }\n\
        refresh = { per_minute = 6, burst = 1000 }\n\
        revoke = { per_minute = 6, burst = 1000 }";
    let a = Replica::start(&shared, &upstream.uri(), rate, 200).await;
    let b = Replica::start(&shared, &upstream.uri(), rate, 200).await;
    let client = http();
    assert_eq!(
        post(&client, a.url("/api/v1/kick/token"), &exchange_body(CODE))
            .await
            .0,
        200
    );
    assert_eq!(
        post(
            &client,
            b.url("/api/v1/kick/refresh"),
            &refresh_body(REFRESH)
        )
        .await
        .0,
        200
    );
    let server = match &shared {
        Shared::Redis(server) => server,
        Shared::Memory(_) => unreachable!(),
    };
    let mut c = raw(server).await;
    let all = dump(&mut c).await;
    assert!(
        all.len() >= 4,
        "flights and buckets are stored: {}",
        all.len()
    );
    let canaries: [&[u8]; 10] = [
        CODE.as_bytes(),
        VERIFIER.as_bytes(),
        REFRESH.as_bytes(),
        ACCESS.as_bytes(),
        NEW_REFRESH.as_bytes(),
        CLIENT_SECRET.as_bytes(),
        SECRET.as_bytes(),
        b"127.0.0.1",
        &[127, 0, 0, 1],
        b"CANARY",
    ];
    for (key, value) in &all {
        for canary in canaries {
            assert!(!contains(key, canary), "a key holds a canary");
            assert!(!contains(value, canary), "a value holds a canary");
        }
    }
    println!(
        "7: {} keys after an exchange and a refresh: no code, verifier, token, secret or client IP",
        all.len()
    );

    // 8: flip a byte in every done record; a fresh replica (empty local cache) must not answer it.
    let mut tampered = 0;
    for (key, value) in &all {
        if value.first() == Some(&b'D') {
            let mut bad = value.clone();
            let last = bad.len() - 1;
            bad[last] ^= 0x01;
            let () = redis::cmd("SET")
                .arg(key)
                .arg(bad)
                .query_async(&mut c)
                .await
                .expect("SET");
            tampered += 1;
        }
    }
    assert_eq!(tampered, 2);
    let fresh = Replica::start(&shared, &upstream.uri(), GENEROUS, 200).await;
    let before = token_calls(&upstream).await;
    let (status, _, body) = post(
        &client,
        fresh.url("/api/v1/kick/token"),
        &exchange_body(CODE),
    )
    .await;
    assert_eq!(
        status, 200,
        "a tampered record is a miss: the provider answers ({body})"
    );
    assert_eq!(
        token_calls(&upstream).await,
        before + 1,
        "the miss called the provider"
    );
    let parsed: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(parsed["access_token"], ACCESS);
    // Garbage under a flight key is absent too.
    for (key, _) in dump(&mut c).await {
        let () = redis::cmd("SET")
            .arg(&key)
            .arg("Dgarbage")
            .query_async(&mut c)
            .await
            .expect("SET");
    }
    let other = Replica::start(&shared, &upstream.uri(), GENEROUS, 200).await;
    let (status, _, _) = post(
        &client,
        other.url("/api/v1/kick/refresh"),
        &refresh_body(REFRESH),
    )
    .await;
    assert_eq!(status, 200);
    println!(
        "8: tampered and garbage records: misses, answered by the provider, never a wrong body"
    );
}

// ---- 4. the holder killed mid-call ----------------------------------------------------------

pub async fn a_killed_holder_blocks_no_one_past_its_lease() {
    let Some(shared) = Shared::redis() else {
        return;
    };
    let upstream = MockServer::start().await;
    // The holder's call hangs (the provider is slow); the next one answers at once.
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(tokens(ACCESS, NEW_REFRESH))
                .set_delay(Duration::from_secs(30)),
        )
        .up_to_n_times(1)
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(tokens(ACCESS, NEW_REFRESH)))
        .mount(&upstream)
        .await;
    // Replica A: the real binary, a child process.
    let dir = tempfile::tempdir().expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let toml = config(&upstream.uri(), GENEROUS, 60, &shared.state_toml(200)).replace(
        "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    let file = dir.path().join("a.toml");
    std::fs::write(&file, toml).expect("config");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kick-oauth-proxy"))
        .arg("serve")
        .arg("--config")
        .arg(&file)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("replica A starts");
    let client = http();
    let a_url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while client.get(format!("{a_url}/healthz")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "replica A did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let b = Replica::start(&shared, &upstream.uri(), GENEROUS, 200).await;
    // A takes the refresh and calls the provider...
    let a_call = {
        let client = client.clone();
        let url = format!("{a_url}/api/v1/kick/refresh");
        tokio::spawn(async move { client.post(url).json(&refresh_body(REFRESH)).send().await })
    };
    while token_calls(&upstream).await < 1 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "A never called the provider"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ... and dies mid-call.
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let killed = Instant::now();
    assert!(
        a_call.await.expect("join").is_err(),
        "A's client lost its connection"
    );
    // B's identical request waits for the lease, never calls the provider, and gives up within
    // its own deadline with a Retry-After that lands after the lease.
    let asked = Instant::now();
    let (status, retry_after, body) = post(
        &client,
        b.url("/api/v1/kick/refresh"),
        &refresh_body(REFRESH),
    )
    .await;
    let took = asked.elapsed();
    assert_eq!(status, 503, "{body}");
    let retry_after = retry_after.expect("Retry-After");
    assert!(
        took <= Duration::from_millis(2600),
        "B answered within its deadline: {took:?}"
    );
    assert!((1..=4).contains(&retry_after), "{retry_after}");
    assert_eq!(
        token_calls(&upstream).await,
        1,
        "B did not call the provider while the lease lived"
    );
    let lease_end = killed + Duration::from_secs(4);
    let retry_at = asked + took + Duration::from_secs(retry_after);
    assert!(
        retry_at + Duration::from_millis(300) >= lease_end,
        "Retry-After lands after the lease"
    );
    // The retry, as a client sends it: after Retry-After.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let mut status = 0;
    let mut tries = 0;
    while status != 200 && tries < 3 {
        let (s, r, _) = post(
            &client,
            b.url("/api/v1/kick/refresh"),
            &refresh_body(REFRESH),
        )
        .await;
        status = s;
        tries += 1;
        if s == 503 {
            tokio::time::sleep(Duration::from_secs(r.unwrap_or(1))).await;
        }
    }
    assert_eq!(status, 200, "the retry takes the flight over");
    assert_eq!(token_calls(&upstream).await, 2);
    assert!(metric(&client, &b, "kick_proxy_flight_takeovers_total").await >= 1.0);
    println!(
        "4: holder killed; B: 503 after {took:?} with Retry-After {retry_after}, retry 200 after \
         {tries} tries; provider calls 2"
    );
}

// ---- 5. the store killed mid-load and restarted -------------------------------------------------

pub async fn a_store_killed_and_restarted_costs_no_5xx() {
    let Some(mut shared) = Shared::redis() else {
        return;
    };
    let upstream = provider(Duration::from_millis(20)).await;
    let a = Arc::new(Replica::start(&shared, &upstream.uri(), GENEROUS, 100).await);
    let b = Arc::new(Replica::start(&shared, &upstream.uri(), GENEROUS, 100).await);
    let client = http();
    let load = {
        let (a, b, client) = (a.clone(), b.clone(), client.clone());
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            let until = Instant::now() + Duration::from_millis(2500);
            let mut i = 0u32;
            while Instant::now() < until {
                // Distinct grants, each sent to both replicas at once (a duplicate pair).
                let body = refresh_body(&format!("load-{i}-refresh-token"));
                let (x, y) = tokio::join!(
                    post(&client, a.url("/api/v1/kick/refresh"), &body),
                    post(&client, b.url("/api/v1/kick/refresh"), &body),
                );
                statuses.push(x.0);
                statuses.push(y.0);
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            statuses
        })
    };
    let mut seen = Vec::new();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, ready) = readyz(&client, &a).await;
    assert_eq!(
        (status, ready["state"]["status"].as_str()),
        (200, Some("ok"))
    );
    seen.push("ok");
    shared.server().kill();
    let mut degraded = false;
    for _ in 0..50 {
        let (status, ready) = readyz(&client, &a).await;
        assert_eq!(status, 200, "/readyz stays 200 with the store down");
        if ready["state"]["status"] == "degraded" {
            degraded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(degraded, "/readyz reports the store degraded");
    seen.push("degraded");
    tokio::time::sleep(Duration::from_millis(500)).await;
    shared.server().restart();
    let statuses = load.await.expect("join");
    let errors = statuses.iter().filter(|s| **s >= 500).count();
    assert_eq!(
        errors,
        0,
        "no 5xx from a store outage ({} requests)",
        statuses.len()
    );
    assert!(statuses.iter().all(|s| *s == 200));
    // Back: the store answers again within its breaker's cool-down, and cross-replica replay
    // works again.
    let back = Instant::now();
    let code = "AFTER-RESTART-code-0123456789";
    loop {
        let (status, ready) = readyz(&client, &a).await;
        assert_eq!(status, 200);
        // The breaker lets a probe through only when asked: requests make it ask.
        let (_, _, _) = post(
            &client,
            a.url("/api/v1/kick/refresh"),
            &refresh_body("probe-token"),
        )
        .await;
        if ready["state"]["status"] == "ok" {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(6),
            "the store never came back: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seen.push("ok");
    let before = token_calls(&upstream).await;
    let (s1, _, body_a) = post(&client, a.url("/api/v1/kick/token"), &exchange_body(code)).await;
    let (s2, _, body_b) = post(&client, b.url("/api/v1/kick/token"), &exchange_body(code)).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(body_a, body_b);
    assert_eq!(
        token_calls(&upstream).await,
        before + 1,
        "replayed across replicas again"
    );
    assert!(metric(&client, &a, "kick_proxy_state_fallback_total").await > 0.0);
    println!(
        "5: {} requests through kill and restart: 0 x 5xx; /readyz 200 throughout, state {seen:?}; \
         cross-replica replay back {:?} after the restart",
        statuses.len(),
        back.elapsed()
    );
}

// ---- 6. the store frozen ------------------------------------------------------------------------

pub async fn a_frozen_store_costs_only_the_first_few_requests_the_timeout() {
    let Some(mut shared) = Shared::redis() else {
        return;
    };
    let upstream = provider(Duration::ZERO).await;
    let a = Replica::start(&shared, &upstream.uri(), GENEROUS, 100).await;
    let client = http();
    // Warm: connected, scripts loaded.
    assert_eq!(
        post(
            &client,
            a.url("/api/v1/kick/refresh"),
            &refresh_body("warm-token")
        )
        .await
        .0,
        200
    );
    shared.server().stop();
    let mut slow = 0;
    let mut took = Vec::new();
    for i in 0..15 {
        let started = Instant::now();
        let (status, _, _) = post(
            &client,
            a.url("/api/v1/kick/refresh"),
            &refresh_body(&format!("frozen-{i}")),
        )
        .await;
        let elapsed = started.elapsed();
        assert_eq!(status, 200);
        took.push(elapsed.as_millis());
        if elapsed > Duration::from_millis(80) {
            slow += 1;
        }
    }
    shared.server().cont();
    assert!(slow <= 3, "only the first few pay the timeout: {took:?} ms");
    assert!(took.iter().skip(3).all(|ms| *ms < 80), "{took:?} ms");
    println!("6: store frozen: request times {took:?} ms ({slow} paid the 100 ms timeout)");
}

// ---- a claim that timed out but landed later ----------------------------------------------------

/// Replica A's claim times out while the store holds writes back (`CLIENT PAUSE WRITE` past
/// `op_timeout`) and still runs once the pause ends. A answers from the provider and completes
/// the flight it may hold, so the store has its answer, not an orphaned lease: the client's retry
/// on B is replayed instead of waiting out a lease nobody would complete and then spending the
/// code.
pub async fn a_claim_that_timed_out_but_landed_is_completed_for_a_retry_on_the_other_replica() {
    let Some(mut shared) = Shared::redis() else {
        return;
    };
    let upstream = provider(Duration::ZERO).await;
    let a = Replica::start(&shared, &upstream.uri(), GENEROUS, 100).await;
    let b = Replica::start(&shared, &upstream.uri(), GENEROUS, 100).await;
    let client = http();
    // Warm both: connected, scripts loaded (a script unknown to the server would fail after the
    // pause instead of running).
    for (replica, token) in [(&a, "warm-a"), (&b, "warm-b")] {
        let (status, _, body) = post(
            &client,
            replica.url("/api/v1/kick/refresh"),
            &refresh_body(token),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let warm_calls = token_calls(&upstream).await;
    let mut admin = raw(shared.server()).await;
    let paused_at = Instant::now();
    // Longer than A's claim may take (op_timeout 100 ms), shorter than claim + completion: the
    // claim times out and lands when the pause ends, the completion just waits for it.
    let pause = Duration::from_millis(150);
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(pause.as_millis() as u64)
        .arg("WRITE")
        .query_async(&mut admin)
        .await
        .expect("CLIENT PAUSE");
    let (status_a, _, body_a) =
        post(&client, a.url("/api/v1/kick/token"), &exchange_body(CODE)).await;
    let a_took = paused_at.elapsed();
    assert_eq!(status_a, 200, "{body_a}");
    assert!(
        a_took >= Duration::from_millis(100),
        "A's claim timed out during the pause: {a_took:?}"
    );
    tokio::time::sleep(pause.saturating_sub(a_took) + Duration::from_millis(300)).await;
    let started = Instant::now();
    let (status_b, _, body_b) =
        post(&client, b.url("/api/v1/kick/token"), &exchange_body(CODE)).await;
    assert_eq!(status_b, 200, "{body_b}");
    assert_eq!(body_a, body_b, "B replays A's answer byte for byte");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "B did not wait out a lease: {:?}",
        started.elapsed()
    );
    assert_eq!(
        token_calls(&upstream).await,
        warm_calls + 1,
        "one provider call for the code"
    );
    println!("claim timed out, landed later: A 200 in {a_took:?}, B replayed; one provider call");
}
