//! What Redis holds: nothing readable (T7), and nothing planted there can produce a wrong
//! answer or lock anyone out (T8).

use crate::server::{Listen, RedisServer};
use crate::{derive, fresh_index, keys, open, redis_store, seal, SECRET};
use kick_oauth_proxy::state::{
    Claim, Completion, Decision, Pending, RateQuota, Record, SharedStore,
};
use redis::aio::MultiplexedConnection;
use std::num::NonZeroU32;
use std::time::Duration;

pub(crate) async fn raw(server: &RedisServer) -> MultiplexedConnection {
    redis::Client::open(server.unix_url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection")
}

/// Every key in the server with its (string) value.
pub(crate) async fn dump(c: &mut MultiplexedConnection) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut cursor = 0u64;
    let mut all = Vec::new();
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(c)
            .await
            .expect("SCAN");
        for key in keys {
            let value: Vec<u8> = redis::cmd("GET")
                .arg(&key)
                .query_async(c)
                .await
                .expect("every key is a string");
            all.push((key, value));
        }
        if next == 0 {
            return all;
        }
        cursor = next;
    }
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn the_store_holds_no_code_verifier_token_secret_or_client_ip() {
    let Some(server) = RedisServer::start(Listen::Unix) else {
        return;
    };
    let store = redis_store(&server.unix_url(), 2000);
    let keys = keys();
    let salt = keys.replay_salt();
    let code = "CANARY-CODE-8f2b";
    let verifier = "CANARY-VERIFIER-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    let redirect = "battles-record://oauth/callback";
    let refresh_in = "CANARY-REFRESH-IN-77aa";
    let answer = br#"{"access_token":"CANARY-ACCESS-TOKEN","refresh_token":"CANARY-REFRESH-OUT","token_type":"Bearer","expires_in":7200}"#;
    let error = br#"{"error":"invalid_grant","error_description":"CANARY-ERROR-TEXT"}"#;

    // An exchange answered, a refresh that failed, a refresh in flight.
    let (exchange, exchange_key) = derive(&salt, &["kick", "token", code, verifier, redirect]);
    let a = Pending::new(Duration::from_secs(12)).expect("randomness");
    assert_eq!(store.claim(&exchange, &a).await, Ok(Claim::Held));
    let sealed = seal(&exchange_key, &exchange, answer);
    assert_eq!(
        store
            .complete(
                &exchange,
                &a,
                Completion::Answer(sealed),
                Duration::from_secs(60)
            )
            .await,
        Ok(true)
    );
    let (refresh, refresh_key) = derive(&salt, &["kick", "refresh", refresh_in]);
    let b = Pending::new(Duration::from_secs(12)).expect("randomness");
    assert_eq!(store.claim(&refresh, &b).await, Ok(Claim::Held));
    let sealed = seal(&refresh_key, &refresh, error);
    assert_eq!(
        store
            .complete(
                &refresh,
                &b,
                Completion::Error(sealed),
                Duration::from_secs(5)
            )
            .await,
        Ok(true)
    );
    let (in_flight, _) = derive(&salt, &["kick", "refresh", "CANARY-REFRESH-IN-FLIGHT"]);
    let c = Pending::new(Duration::from_secs(12)).expect("randomness");
    assert_eq!(store.claim(&in_flight, &c).await, Ok(Claim::Held));
    // Buckets for an IPv4 and an IPv6 client on two endpoints.
    let quota = RateQuota::per_minute(
        NonZeroU32::new(30).expect("30"),
        NonZeroU32::new(10).expect("10"),
    );
    for ip in ["198.51.100.77", "2001:db8:cafe:1::77"] {
        for endpoint in ["token", "refresh"] {
            let key = keys.rate_key(endpoint, ip.parse().expect("ip"));
            assert_eq!(store.gcra(&key, quota).await, Ok(Decision::Allow));
        }
    }

    let mut c = raw(&server).await;
    let stored = dump(&mut c).await;
    assert_eq!(stored.len(), 3 + 4, "3 flights and 4 buckets");
    let needles: Vec<&[u8]> = vec![
        code.as_bytes(),
        verifier.as_bytes(),
        refresh_in.as_bytes(),
        b"CANARY",
        b"access_token",
        b"invalid_grant",
        SECRET.as_bytes(),
        &salt,
        &exchange_key,
        b"198.51.100.77",
        b"2001:db8:cafe",
        &[198, 51, 100, 77],
        &[0x20, 0x01, 0x0d, 0xb8, 0xca, 0xfe, 0x00, 0x01],
    ];
    for (key, value) in &stored {
        assert!(
            key.starts_with(b"kop:v1:"),
            "{}",
            String::from_utf8_lossy(key)
        );
        for needle in &needles {
            assert!(
                !contains(key, needle) && !contains(value, needle),
                "{} or its value holds {:?}",
                String::from_utf8_lossy(key),
                String::from_utf8_lossy(needle)
            );
        }
    }
    // What is there still opens for whoever holds the request's inputs, and only for them.
    let Ok(Some(Record::Answer(found))) = store.peek(&exchange).await else {
        panic!("the exchange's answer is stored");
    };
    assert_eq!(
        open(&exchange_key, &exchange, &found).as_deref(),
        Some(&answer[..])
    );
    println!(
        "T7: {} keys, none holding a canary:\n{}",
        stored.len(),
        stored
            .iter()
            .map(|(k, v)| format!("  {} ({} bytes)", String::from_utf8_lossy(k), v.len()))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test]
async fn tampered_records_are_misses_and_a_planted_tat_locks_nobody_out() {
    let Some(server) = RedisServer::start(Listen::Unix) else {
        return;
    };
    let store = redis_store(&server.unix_url(), 2000);
    let mut c = raw(&server).await;
    let salt = keys().replay_salt();
    let (index, key) = derive(&salt, &["kick", "refresh", "r-1"]);
    let holder = Pending::new(Duration::from_secs(12)).expect("randomness");
    assert_eq!(store.claim(&index, &holder).await, Ok(Claim::Held));
    let sealed = seal(&key, &index, br#"{"access_token":"a"}"#);
    assert_eq!(
        store
            .complete(
                &index,
                &holder,
                Completion::Answer(sealed),
                Duration::from_secs(60)
            )
            .await,
        Ok(true)
    );
    let flight_key: Vec<u8> = dump(&mut c)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .find(|k| k.starts_with(b"kop:v1:f:"))
        .expect("the flight key");
    // One flipped bit in the ciphertext: the record frames, but does not open.
    let mut value: Vec<u8> = redis::cmd("GET")
        .arg(&flight_key)
        .query_async(&mut c)
        .await
        .expect("GET");
    let last = value.len() - 1;
    value[last] ^= 1;
    let () = redis::cmd("SET")
        .arg(&flight_key)
        .arg(&value)
        .arg("KEEPTTL")
        .query_async(&mut c)
        .await
        .expect("SET");
    let retry = Pending::new(Duration::from_secs(12)).expect("randomness");
    let Ok(Claim::Done(found)) = store.claim(&index, &retry).await else {
        panic!("the tampered D still frames");
    };
    assert_eq!(open(&key, &index, &found), None, "AEAD refuses it");
    assert_eq!(
        store.discard(&index, &Record::Answer(found)).await,
        Ok(true)
    );
    assert_eq!(store.claim(&index, &retry).await, Ok(Claim::Held), "a miss");

    // Values this code never writes: absent to peek, vacant to claim.
    let year_ahead = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis()
        + 365 * 86_400_000;
    for planted in [
        b"garbage".to_vec(),
        b"Dtoo-short".to_vec(),
        format!("P0123456789abcdef{year_ahead}").into_bytes(),
        b"P0123456789abcdef1000".to_vec(),
        b"PZZZZ".to_vec(),
    ] {
        let () = redis::cmd("SET")
            .arg(&flight_key)
            .arg(&planted)
            .query_async(&mut c)
            .await
            .expect("SET");
        assert_eq!(store.peek(&index).await, Ok(None));
        let p = Pending::new(Duration::from_secs(12)).expect("randomness");
        assert_eq!(
            store.claim(&index, &p).await,
            Ok(Claim::Held),
            "{}",
            String::from_utf8_lossy(&planted)
        );
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&flight_key)
            .query_async(&mut c)
            .await
            .expect("PTTL");
        assert!(
            ttl > 10_000 && ttl <= 12_000,
            "the claim expires with its lease: {ttl}"
        );
    }

    // A bucket's TAT set a year ahead (or not a number): the client is not locked out, and the
    // bucket works normally afterwards.
    let keys = keys();
    let client = keys.rate_key("token", "203.0.113.50".parse().expect("ip"));
    let quota = RateQuota::per_minute(
        NonZeroU32::new(1).expect("1"),
        NonZeroU32::new(2).expect("2"),
    );
    assert_eq!(store.gcra(&client, quota).await, Ok(Decision::Allow));
    let bucket = format!("kop:v1:rl:{}", client.as_str());
    let exists: bool = redis::cmd("EXISTS")
        .arg(&bucket)
        .query_async(&mut c)
        .await
        .expect("EXISTS");
    assert!(exists, "the bucket is where the docs say");
    let year_us = 365 * 86_400 * 1_000_000_u64;
    let now_us = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_micros(),
    )
    .expect("fits");
    for planted in [
        (now_us + year_us).to_string(),
        "not-a-number".to_owned(),
        "nan".to_owned(),
    ] {
        let () = redis::cmd("SET")
            .arg(&bucket)
            .arg(&planted)
            .query_async(&mut c)
            .await
            .expect("SET");
        assert_eq!(
            store.gcra(&client, quota).await,
            Ok(Decision::Allow),
            "{planted}"
        );
    }
    assert_eq!(store.gcra(&client, quota).await, Ok(Decision::Allow));
    assert!(
        matches!(store.gcra(&client, quota).await, Ok(Decision::Deny { .. })),
        "after the reset the bucket counts again"
    );
    // A peek of a flight never claimed is still nothing.
    assert_eq!(store.peek(&fresh_index()).await, Ok(None));
}
