//! `kick-oauth-proxy login` end to end and headless: the binary against `dev` mode's emulator and
//! proxy, through the loopback callback, with the token file checked on disk.

use crate::helpers::without_egress_proxy;
use kick_oauth_proxy::cli::dev::DevEnvironment;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

async fn login(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        without_egress_proxy(&mut Command::new(env!("CARGO_BIN_EXE_kick-oauth-proxy")))
            .arg("login")
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .expect("binary runs")
    })
    .await
    .expect("join")
}

fn stored(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("token file")).expect("JSON token file")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_refresh_and_revoke_work_headless_against_dev_mode() {
    let env = DevEnvironment::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("dev environment");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("kick-tokens.json");
    let common = |extra: &[&str]| {
        let mut args = vec![
            "--proxy".to_owned(),
            env.proxy_url(),
            "--store".to_owned(),
            store.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    };

    // Log in.
    let authorize = env.emulator.authorize_url();
    let output = login(common(&[
        "--client-id",
        &env.client.client_id,
        "--authorize-url",
        &authorize,
        "--auto-approve",
        "--scope",
        "user:read",
        "--scope",
        "channel:read",
    ]))
    .await;
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    assert!(printed.contains("Logged in."), "{printed}");
    let first = stored(&store);
    let access = first["access_token"].as_str().expect("access token stored");
    let refresh = first["refresh_token"]
        .as_str()
        .expect("refresh token stored")
        .to_owned();
    assert_eq!(access.len(), 48);
    assert!(!printed.contains(access), "the access token was printed");
    assert!(!printed.contains(&refresh), "the refresh token was printed");
    assert_eq!(first["scope"], "user:read channel:read");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&store)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "token file mode {mode:o}");
    }
    assert_eq!(env.emulator.stats().authorization_code_grants_ok, 1);

    // Refresh: a new pair on disk.
    let output = login(common(&["--refresh"])).await;
    assert!(output.status.success(), "{}", text(&output));
    let second = stored(&store);
    assert_ne!(second["access_token"], first["access_token"]);
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_eq!(env.emulator.stats().refresh_grants_ok, 1);

    // Revoke: the file is gone and the grant is dead at the provider.
    let output = login(common(&["--revoke"])).await;
    assert!(output.status.success(), "{}", text(&output));
    assert!(!store.exists(), "the token file is removed");
    let dead = reqwest::Client::new()
        .post(format!("{}/api/v1/kick/refresh", env.proxy_url()))
        .json(&serde_json::json!({"refresh_token": second["refresh_token"]}))
        .send()
        .await
        .expect("proxy answers");
    assert_eq!(dead.status(), 400);
    assert_eq!(
        dead.json::<Value>().await.expect("json")["error"],
        "invalid_grant"
    );

    // Refresh with nothing stored: a clear failure.
    let output = login(common(&["--refresh"])).await;
    assert!(!output.status.success());
    assert!(text(&output).contains("log in first"), "{}", text(&output));

    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_relay_logs_in_on_an_ephemeral_port_without_a_client_id() {
    let env = DevEnvironment::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("dev environment");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("kick-tokens.json");
    let output = login(vec![
        "--proxy".to_owned(),
        env.proxy_url(),
        "--store".to_owned(),
        store.display().to_string(),
        "--relay".to_owned(),
        "--auto-approve".to_owned(),
    ])
    .await;
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    assert!(printed.contains("Logged in."), "{printed}");
    assert!(
        printed.contains(&format!(
            "exchanged with redirect_uri {}",
            env.relay_callback_url
        )),
        "{printed}"
    );
    assert!(printed.contains("http://127.0.0.1:"), "{printed}");
    assert!(
        !printed.contains(":0/callback"),
        "the bound port is shown: {printed}"
    );
    let tokens = stored(&store);
    let access = tokens["access_token"].as_str().expect("access token");
    assert!(!printed.contains(access), "the access token was printed");
    assert_eq!(env.emulator.stats().authorization_code_grants_ok, 1);
    env.shutdown().await;
}
