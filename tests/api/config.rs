//! Start-up validation: every refusal the contract lists names its key, exits non-zero, and never
//! prints the secret.

use crate::helpers::without_egress_proxy;
use kick_oauth_proxy::config::Settings;
use std::process::Command;

const SECRET: &str = "CANARY-secret-7f3a";

fn base() -> String {
    format!(
        r#"
[providers.kick]
client_id = "01KCLIENT"
client_secret = "{SECRET}"
allowed_redirect_uris = ["http://localhost:1420/auth/callback"]
"#
    )
}

fn load(toml: &str) -> Result<Settings, String> {
    load_env(toml, &[])
}

fn load_env(toml: &str, env: &[(&str, &str)]) -> Result<Settings, String> {
    Settings::from_toml_with_env(
        toml,
        env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    )
    .map_err(|e| e.to_string())
}

fn refused(toml: &str, key: &str) {
    let message = load(toml).expect_err("config must be refused");
    assert!(message.contains(key), "message `{message}` names `{key}`");
    assert!(
        !message.contains(SECRET),
        "message `{message}` leaks the secret"
    );
}

#[test]
fn the_shipped_default_config_is_valid_once_a_secret_is_given() {
    let text = std::fs::read_to_string("config/default.toml").expect("shipped config");
    let settings = load_env(
        &text,
        &[
            ("KICK_PROXY_PROVIDERS__KICK__CLIENT_ID", "01KCLIENT"),
            ("KICK_PROXY_PROVIDERS__KICK__CLIENT_SECRET_FILE", ""),
            ("KICK_PROXY_PROVIDERS__KICK__CLIENT_SECRET", SECRET),
        ],
    )
    .expect("valid");
    let kick = &settings.providers["kick"];
    assert_eq!(kick.token_url.as_str(), "https://id.kick.com/oauth/token");
    assert_eq!(kick.timeout.as_secs(), 10);
    assert_eq!(kick.client_secret.secret(), SECRET);
}

#[test]
fn config_refuses_a_missing_client_id() {
    refused(
        &base().replace("client_id = \"01KCLIENT\"", ""),
        "providers.kick.client_id",
    );
    refused(&base().replace("01KCLIENT", ""), "providers.kick.client_id");
}

#[test]
fn config_refuses_a_missing_secret() {
    refused(
        &base().replace(&format!("client_secret = \"{SECRET}\""), ""),
        "providers.kick.client_secret",
    );
}

#[test]
fn config_refuses_both_secret_and_secret_file() {
    refused(
        &base().replace(
            "client_id =",
            "client_secret_file = \"/etc/hostname\"\nclient_id =",
        ),
        "providers.kick.client_secret",
    );
}

#[test]
fn config_refuses_an_unreadable_secret_file() {
    let toml = base().replace(
        &format!("client_secret = \"{SECRET}\""),
        "client_secret_file = \"/nonexistent/kick_secret\"",
    );
    refused(&toml, "providers.kick.client_secret_file");
}

/// `check-config` on a config whose `client_secret_file` is a 0600 file owned by someone else: the
/// README's `docker run` case (a root-owned secret mounted into a container running as uid
/// 65532). As root the binary runs as 65532 (`setpriv`); as anyone else the file is made mode
/// 000. The refusal names the ids that could not read it; giving the file to them (as the README
/// says) makes the same config load.
#[test]
fn an_unreadable_secret_file_is_refused_naming_the_uid_and_gid_that_could_not_read_it() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    const NONROOT: u32 = 65532;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let secret = dir.path().join("kick_client_secret");
    std::fs::write(&secret, format!("{SECRET}\n")).expect("write");
    let config = dir.path().join("proxy.toml");
    let toml = base().replace(
        &format!("client_secret = \"{SECRET}\""),
        &format!("client_secret_file = \"{}\"", secret.display()),
    );
    std::fs::write(&config, toml).expect("write");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let me = std::fs::metadata(&secret).expect("stat");
    let as_root = me.uid() == 0;

    let check_config = || {
        let mut command = if as_root {
            let mut c = Command::new("setpriv");
            c.args([
                format!("--reuid={NONROOT}"),
                format!("--regid={NONROOT}"),
                "--clear-groups".to_owned(),
                env!("CARGO_BIN_EXE_kick-oauth-proxy").to_owned(),
            ]);
            c
        } else {
            Command::new(env!("CARGO_BIN_EXE_kick-oauth-proxy"))
        };
        let output = without_egress_proxy(&mut command)
            .args(["check-config", "--config", config.to_str().expect("utf8")])
            .output()
            .expect("check-config runs (as root: setpriv from util-linux is needed)");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!all.contains(SECRET), "{all}");
        (output.status.code(), all)
    };

    let (uid, gid) = if as_root {
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        (NONROOT, NONROOT)
    } else {
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).expect("chmod");
        (me.uid(), me.gid())
    };
    let (code, all) = check_config();
    assert_eq!(code, Some(2), "{all}");
    assert!(
        all.contains("`providers.kick.client_secret_file`")
            && all.contains("cannot read: permission denied")
            && all.contains(&format!("uid {uid}, gid {gid}")),
        "{all}"
    );

    // The fix the README gives: the file belongs to (or is readable by) the reader.
    if as_root {
        std::os::unix::fs::chown(&secret, Some(NONROOT), Some(NONROOT)).expect("chown");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o400)).expect("chmod");
    } else {
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o400)).expect("chmod");
    }
    let (code, all) = check_config();
    assert_eq!(code, Some(0), "{all}");
}

/// Files that are not small regular files: refused at once (a FIFO with no writer would block
/// start-up or a SIGHUP reload forever, `/dev/zero` would fill memory).
fn hostile_files(dir: &std::path::Path) -> Vec<(&'static str, std::path::PathBuf)> {
    let fifo = dir.join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success(), "mkfifo");
    let big = dir.join("big");
    std::fs::write(&big, vec![b'a'; 2 * 1024 * 1024]).expect("write");
    vec![
        ("a FIFO", fifo),
        ("a device", std::path::PathBuf::from("/dev/zero")),
        ("a directory", dir.to_path_buf()),
        ("a 2 MiB file", big),
    ]
}

#[test]
fn secret_and_ca_files_must_be_small_regular_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (what, path) in hostile_files(dir.path()) {
        let secret = base().replace(
            &format!("client_secret = \"{SECRET}\""),
            &format!("client_secret_file = \"{}\"", path.display()),
        );
        let message = load_within_5s(secret).expect_err(what);
        assert!(
            message.contains("providers.kick.client_secret_file"),
            "{what}: {message}"
        );
        let message = load_within_5s(with_ca_file(&path)).expect_err(what);
        assert!(
            message.contains("providers.kick.ca_file"),
            "{what}: {message}"
        );
    }
}

/// `load`, failing the test (instead of hanging it) if it has not returned within 5 s.
fn load_within_5s(toml: String) -> Result<Settings, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(load(&toml));
    });
    rx.recv_timeout(std::time::Duration::from_secs(5))
        .expect("the config loads or is refused within 5 s")
}

#[test]
fn a_secret_file_is_read_without_its_trailing_newline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("secret");
    std::fs::write(&file, format!("{SECRET}\n")).expect("write");
    let toml = base().replace(
        &format!("client_secret = \"{SECRET}\""),
        &format!("client_secret_file = \"{}\"", file.display()),
    );
    let settings = load(&toml).expect("valid");
    assert_eq!(settings.providers["kick"].client_secret.secret(), SECRET);
}

#[test]
fn config_refuses_an_empty_allowlist_and_fragments() {
    refused(
        &base().replace("[\"http://localhost:1420/auth/callback\"]", "[]"),
        "providers.kick.allowed_redirect_uris",
    );
    refused(
        &base().replace("/auth/callback\"", "/auth/callback#x\""),
        "providers.kick.allowed_redirect_uris[0]",
    );
}

#[test]
fn config_refuses_plain_http_upstreams_except_loopback() {
    let with = |url: &str| format!("{}token_url = \"{url}\"\n", base());
    refused(
        &with("http://id.kick.com/oauth/token"),
        "providers.kick.token_url",
    );
    refused(
        &with("http://10.0.0.1/oauth/token"),
        "providers.kick.token_url",
    );
    refused(
        &with("ftp://id.kick.com/oauth/token"),
        "providers.kick.token_url",
    );
    for ok in [
        "http://127.0.0.1:9999/oauth/token",
        "http://localhost:9999/oauth/token",
        "http://[::1]:9999/oauth/token",
        "https://id.kick.com/oauth/token",
    ] {
        assert!(load(&with(ok)).is_ok(), "{ok} is allowed");
    }
}

#[test]
fn config_refuses_a_timeout_outside_1_to_60_seconds() {
    for bad in ["0", "61", "-1", "\"ten\""] {
        refused(
            &format!("{}timeout_secs = {bad}\n", base()),
            "providers.kick.timeout_secs",
        );
    }
    assert!(load(&format!("{}timeout_secs = 60\n", base())).is_ok());
}

#[test]
fn config_refuses_replay_windows_and_breaker_cooldowns_over_an_hour() {
    refused(
        &format!("[replay]\nwindow_secs = 3601\n{}", base()),
        "replay.window_secs",
    );
    refused(
        &format!("[limits]\nbreaker_cooldown_secs = 99999999999\n{}", base()),
        "limits.breaker_cooldown_secs",
    );
}

/// Windows whose end no clock can represent: `i64::MAX` seconds (the largest TOML integer) would
/// overflow any `Instant` it is added to, and one more does not fit a 64-bit count at all. Each
/// is refused at start-up, never wrapped, saturated or turned into "off".
#[test]
fn config_refuses_windows_too_long_to_represent() {
    const I64_MAX: &str = "9223372036854775807";
    const U64_MAX_PLUS_ONE: &str = "18446744073709551616";
    for (table, field, env) in [
        ("replay", "window_secs", "KICK_PROXY_REPLAY__WINDOW_SECS"),
        (
            "limits",
            "breaker_cooldown_secs",
            "KICK_PROXY_LIMITS__BREAKER_COOLDOWN_SECS",
        ),
    ] {
        let key = format!("{table}.{field}");
        let in_file = |value: &str| format!("[{table}]\n{field} = {value}\n{}", base());

        refused(&in_file(I64_MAX), &key);
        let message = load_env(&base(), &[(env, I64_MAX)]).expect_err(&key);
        assert!(message.contains(&key), "{key} from the env: {message}");

        // TOML cannot hold the number: the file is refused at its line.
        let message = load(&in_file(U64_MAX_PLUS_ONE)).expect_err(&key);
        assert!(
            message.contains("line 2") && message.contains("too large"),
            "{key} in the file: {message}"
        );
        assert!(!message.contains(SECRET), "{message}");
        let message = load_env(&base(), &[(env, U64_MAX_PLUS_ONE)]).expect_err(&key);
        assert!(message.contains(&key), "{key} from the env: {message}");
        assert!(!message.contains(SECRET), "{message}");
    }
}

#[test]
fn config_refuses_unknown_keys_and_names_them() {
    refused(
        &format!("{}client_secert = \"x\"\n", base()),
        "client_secert",
    );
    refused(
        &format!("[server]\nlisn = \"x\"\n{}", base()),
        "server.lisn",
    );
}

#[test]
fn env_overrides_win_and_secrets_stay_strings_whatever_they_look_like() {
    let settings = load_env(
        &base(),
        &[
            ("KICK_PROXY_PROVIDERS__KICK__CLIENT_SECRET", "1e5"),
            ("KICK_PROXY_PROVIDERS__KICK__CLIENT_ID", "12345"),
            ("KICK_PROXY_PROVIDERS__KICK__TIMEOUT_SECS", "7"),
            (
                "KICK_PROXY_PROVIDERS__KICK__ALLOWED_REDIRECT_URIS",
                r#"["a://b", "c://d"]"#,
            ),
            ("KICK_PROXY_SERVER__LISTEN", "127.0.0.1:9000"),
            // What Kubernetes injects for a Service named kick-proxy: not ours, ignored.
            ("KICK_PROXY_PORT", "tcp://10.0.0.1:80"),
            ("KICK_PROXY_SERVICE_HOST", "10.0.0.1"),
        ],
    )
    .expect("valid");
    let kick = &settings.providers["kick"];
    assert_eq!(kick.client_secret.secret(), "1e5");
    assert_eq!(kick.client_id, "12345");
    assert_eq!(kick.timeout.as_secs(), 7);
    assert_eq!(kick.allowed_redirect_uris, ["a://b", "c://d"]);
    assert_eq!(settings.server.listen.to_string(), "127.0.0.1:9000");
}

#[test]
fn a_toml_syntax_error_is_reported_by_line_without_quoting_it() {
    let toml = base().replace(&format!("\"{SECRET}\""), &format!("\"{SECRET}"));
    let message = load(&toml).expect_err("refused");
    assert!(message.contains("line 4"), "{message}");
    assert!(!message.contains(SECRET), "{message}");
}

fn binary(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kick-oauth-proxy"));
    without_egress_proxy(&mut command).args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("binary runs")
}

#[test]
fn check_config_prints_the_effective_config_with_the_secret_redacted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("proxy.toml");
    std::fs::write(&file, base()).expect("write");
    let output = binary(
        &["check-config", "--config", file.to_str().expect("utf8")],
        &[("KICK_PROXY_PROVIDERS__KICK__TIMEOUT_SECS", "9")],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("client_secret = \"[redacted]\""),
        "{stdout}"
    );
    assert!(stdout.contains("timeout_secs = 9"), "{stdout}");
    assert!(stdout.contains("token_url = \"https://id.kick.com/oauth/token\""));
    assert!(!stdout.contains(SECRET));
}

/// `check-config --config FILE` with `env`: its printout, after asserting it succeeded.
fn check_config(file: &std::path::Path, env: &[(&str, &str)]) -> String {
    let output = binary(
        &["check-config", "--config", file.to_str().expect("utf8")],
        env,
    );
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!stdout.contains(SECRET), "{stdout}");
    stdout
}

#[test]
fn check_config_prints_a_config_that_loads_again_with_the_same_settings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret_file = dir.path().join("client_secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("write");
    let next_file = dir.path().join("next_client_secret");
    std::fs::write(&next_file, "CANARY-next-secret\n").expect("write");
    let from_files = base().replace(
        &format!("client_secret = \"{SECRET}\""),
        &format!(
            "client_secret_file = \"{}\"\nnext_client_secret_file = \"{}\"",
            secret_file.display(),
            next_file.display()
        ),
    );
    let inline = format!("{}next_client_secret = \"CANARY-next-secret\"\n", base());
    // Environment overrides end up in the printout, so it stands alone.
    let env = [
        ("KICK_PROXY_PROVIDERS__KICK__TIMEOUT_SECS", "9"),
        ("KICK_PROXY_SERVER__ADMIN_LISTEN", "127.0.0.1:9090"),
        ("KICK_PROXY_RATE_LIMIT__TOKEN__BURST", "3"),
    ];
    for (case, config, secret_key, next_key) in [
        (
            "files",
            &from_files,
            "client_secret_file",
            "next_client_secret_file",
        ),
        ("inline", &inline, "client_secret", "next_client_secret"),
    ] {
        let file = dir.path().join(format!("{case}.toml"));
        std::fs::write(&file, config).expect("write");
        let printed = check_config(&file, &env);
        assert!(!printed.contains("CANARY-next-secret"), "{case}: {printed}");
        // Each secret under the one key it was set with.
        let table = printed
            .parse::<toml::Table>()
            .expect("the printout is TOML");
        let kick = table["providers"]["kick"]
            .as_table()
            .expect("[providers.kick]");
        for (set, unset) in [
            (secret_key, "client_secret"),
            (secret_key, "client_secret_file"),
            (next_key, "next_client_secret"),
            (next_key, "next_client_secret_file"),
        ] {
            assert_eq!(kick.contains_key(unset), set == unset, "{case}: {printed}");
        }
        assert_eq!(kick["timeout_secs"].as_integer(), Some(9), "{case}");

        // Loaded again, without the environment: the same settings, so the same printout.
        let again = dir.path().join(format!("{case}-printed.toml"));
        std::fs::write(&again, &printed).expect("write");
        assert_eq!(check_config(&again, &[]), printed, "{case}");
        let settings = Settings::load_with_env(&again, []).expect("the printout loads");
        let kick = &settings.providers["kick"];
        assert_eq!(settings.server.admin_listen.map(|a| a.port()), Some(9090));
        assert_eq!(settings.rate_limit.token.burst, 3);
        if case == "files" {
            // The files are read again: the secrets themselves survive the round trip.
            assert_eq!(kick.client_secret.secret(), SECRET);
            assert_eq!(
                kick.next_client_secret.as_ref().map(|s| s.secret()),
                Some("CANARY-next-secret")
            );
        }
    }
}

#[test]
fn serve_and_check_config_exit_non_zero_naming_the_key_without_printing_the_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("proxy.toml");
    std::fs::write(&file, format!("{}timeout_secs = 0\n", base())).expect("write");
    for command in ["check-config", "serve"] {
        let output = binary(&[command, "--config", file.to_str().expect("utf8")], &[]);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!output.status.success(), "{command}: {all}");
        assert!(
            all.contains("providers.kick.timeout_secs"),
            "{command}: {all}"
        );
        assert!(!all.contains(SECRET), "{command}: {all}");
    }
}

/// Every `"replace-with-…"` value in the shipped config and under `deploy/`, with the key it is
/// given to (`client_id`, `client_secret`), commented-out examples included.
fn shipped_placeholders() -> Vec<(String, String)> {
    let mut files = vec![std::path::PathBuf::from("config/default.toml")];
    let mut dirs = vec![std::path::PathBuf::from("deploy")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable directory") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable");
        for line in text.lines() {
            let Some(start) = line.find("\"replace-with-") else {
                continue;
            };
            let value = &line[start + 1..];
            let value = &value[..value.find('"').expect("closing quote")];
            let key = line[..start]
                .trim_start_matches(['#', ' '])
                .trim_end_matches([' ', '=', ':']);
            found.push((key.to_owned(), value.to_owned()));
        }
    }
    found
}

#[test]
fn config_refuses_every_shipped_placeholder_naming_the_key() {
    let placeholders = shipped_placeholders();
    let keys: std::collections::BTreeSet<&str> =
        placeholders.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        ["client_id", "client_secret", "state_secret"].into(),
        "{placeholders:?}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    for (key, value) in &placeholders {
        if key == "state_secret" {
            // The shared state secret: refused inline and from a file, never quoted.
            let file = dir.path().join("state_secret");
            std::fs::write(&file, format!("{value}\n")).expect("write");
            for (line, named) in [
                (format!("secret = \"{value}\""), "state.secret"),
                (
                    format!("secret_file = \"{}\"", file.display()),
                    "state.secret_file",
                ),
            ] {
                let toml = format!(
                    "{}\n[state]\nbackend = \"redis\"\n{line}\n[state.redis]\nurl = \"redis://127.0.0.1:6379\"\n",
                    base()
                );
                let message = load(&toml).expect_err(value);
                assert!(
                    message.contains(&format!("`{named}`")) && message.contains("placeholder"),
                    "{value}: {message}"
                );
                assert!(!message.contains(value.as_str()), "{message}");
            }
            continue;
        }
        let refusal = |toml: &str, named: &str| {
            let message = load(toml).expect_err(value);
            assert!(
                message.contains(&format!("`providers.kick.{named}`"))
                    && message.contains("placeholder"),
                "{value}: {message}"
            );
            assert!(!message.contains(SECRET), "{message}");
            message
        };
        if key == "client_id" {
            let message = refusal(&base().replace("01KCLIENT", value), "client_id");
            assert!(
                message.contains("KICK_PROXY_PROVIDERS__KICK__CLIENT_ID"),
                "{message}"
            );
            continue;
        }
        // A secret placeholder is refused wherever it comes from, and never quoted.
        let inline = base().replace(SECRET, value);
        let message = refusal(&inline, "client_secret");
        assert!(!message.contains(value.as_str()), "{message}");
        let file = dir.path().join("secret");
        std::fs::write(&file, format!("{value}\n")).expect("write");
        let from_file = base().replace(
            &format!("client_secret = \"{SECRET}\""),
            &format!("client_secret_file = \"{}\"", file.display()),
        );
        let message = refusal(&from_file, "client_secret_file");
        assert!(!message.contains(value.as_str()), "{message}");
        refusal(
            &format!("{}next_client_secret = \"{value}\"\n", base()),
            "next_client_secret",
        );
        refusal(
            &format!(
                "{}next_client_secret_file = \"{}\"\n",
                base(),
                file.display()
            ),
            "next_client_secret_file",
        );
    }
}

/// `command --config config/default.toml` with a usable secret: only the placeholder client id is
/// wrong. `serve` would otherwise start (on a free port) and answer every login 502: it must exit
/// 2 within 10 s instead.
fn run_shipped_config(command: &str) -> (Option<i32>, String) {
    let mut child = without_egress_proxy(&mut Command::new(env!("CARGO_BIN_EXE_kick-oauth-proxy")))
        .args([command, "--config", "config/default.toml"])
        .env("KICK_PROXY_PROVIDERS__KICK__CLIENT_SECRET_FILE", "")
        .env("KICK_PROXY_PROVIDERS__KICK__CLIENT_SECRET", SECRET)
        .env("KICK_PROXY_SERVER__LISTEN", "127.0.0.1:0")
        .env("KICK_PROXY_LOG__FORMAT", "text")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("binary runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("output");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), all)
}

#[test]
fn check_config_and_serve_refuse_the_shipped_configs_placeholder_client_id() {
    for command in ["check-config", "serve"] {
        let (code, all) = run_shipped_config(command);
        assert_eq!(code, Some(2), "{command} must refuse at once: {all}");
        assert!(
            all.contains("`providers.kick.client_id`")
                && all.contains("placeholder \"replace-with-your-kick-client-id\""),
            "{command}: {all}"
        );
        assert!(!all.contains(SECRET), "{command}: {all}");
    }
}

fn provider_table(name: &str, extra: &str) -> String {
    format!(
        r#"{}
[providers.{name}]
client_id = "id"
client_secret = "{SECRET}"
allowed_redirect_uris = ["http://127.0.0.1:*/callback"]
{extra}
"#,
        base()
    )
}

#[test]
fn presets_come_from_the_preset_key_or_the_table_name() {
    let settings = load(&provider_table("twitch", "")).expect("valid");
    let twitch = &settings.providers["twitch"];
    assert_eq!(twitch.preset, "twitch");
    assert_eq!(
        twitch.token_url.as_str(),
        "https://id.twitch.tv/oauth2/token"
    );
    assert_eq!(
        twitch.revoke_url.as_ref().map(|u| u.as_str()),
        Some("https://id.twitch.tv/oauth2/revoke")
    );
    assert_eq!(twitch.display_name, "Twitch");

    let settings = load(&provider_table("youtube", "preset = \"google\"")).expect("valid");
    let youtube = &settings.providers["youtube"];
    assert_eq!(youtube.preset, "google");
    assert_eq!(
        youtube.token_url.as_str(),
        "https://oauth2.googleapis.com/token"
    );
    assert_eq!(
        youtube.revoke_url.as_ref().map(|u| u.as_str()),
        Some("https://oauth2.googleapis.com/revoke")
    );
    assert_eq!(youtube.display_name, "Google");
    assert_eq!(
        settings.providers["kick"].client_auth,
        kick_oauth_proxy::config::ClientAuth::ClientSecretPost
    );

    // Any endpoint can still be overridden.
    let settings = load(&provider_table(
        "youtube",
        "preset = \"google\"\ntoken_url = \"https://example.com/token\"",
    ))
    .expect("valid");
    assert_eq!(
        settings.providers["youtube"].token_url.as_str(),
        "https://example.com/token"
    );

    let settings = load(&provider_table(
        "acme",
        "preset = \"generic\"\nclient_auth = \"client_secret_basic\"\ntoken_url = \"https://acme.example/token\"",
    ))
    .expect("valid");
    let acme = &settings.providers["acme"];
    assert_eq!(acme.preset, "generic");
    assert_eq!(acme.display_name, "Acme");
    assert!(acme.revoke_url.is_none());
    assert_eq!(
        acme.client_auth,
        kick_oauth_proxy::config::ClientAuth::ClientSecretBasic
    );
}

#[test]
fn config_refuses_unknown_presets_and_a_generic_without_token_url() {
    refused(
        &provider_table("youtube", "preset = \"youtube\""),
        "providers.youtube.preset",
    );
    refused(
        &provider_table("acme", "preset = \"generic\""),
        "providers.acme.token_url",
    );
    refused(&provider_table("acme", ""), "providers.acme.token_url");
    refused(
        &provider_table("twitch", "client_auth = \"private_key_jwt\""),
        "providers.twitch.client_auth",
    );
}

#[test]
fn a_wildcard_is_only_allowed_as_a_loopback_port() {
    for ok in [
        "http://127.0.0.1:*/callback",
        "http://[::1]:*/callback",
        "http://localhost:*/",
    ] {
        let toml = provider_table("google", "").replace("http://127.0.0.1:*/callback", ok);
        load(&toml).unwrap_or_else(|e| panic!("{ok}: {e}"));
        // Kick compares redirect URIs exactly: no wildcard with its preset.
        let toml = base().replace("http://localhost:1420/auth/callback", ok);
        refused(&toml, "providers.kick.allowed_redirect_uris[0]");
    }
    for bad in [
        "http://example.com:*/callback",
        "https://127.0.0.1:*/callback",
        "http://127.0.0.1:*",
        "http://127.0.0.1:80*/callback",
        "http://127.0.0.1:*/call*",
        "http://localhost:1420/*",
        "battles-record://*",
    ] {
        let toml = provider_table("google", "").replace("http://127.0.0.1:*/callback", bad);
        refused(&toml, "providers.google.allowed_redirect_uris[0]");
    }
}

#[test]
fn the_shipped_twitch_and_youtube_examples_are_valid_once_uncommented() {
    let text = std::fs::read_to_string("config/default.toml").expect("shipped config");
    let start = text.find("# [providers.twitch]").expect("twitch example");
    let mut uncommented = text[..start].to_owned();
    for line in text[start..].lines() {
        let body = line.strip_prefix("# ").unwrap_or(line);
        let is_toml = body.starts_with("[providers.")
            || body
                .split_once(" = ")
                .is_some_and(|(k, _)| k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        uncommented.push_str(if is_toml { body } else { line });
        uncommented.push('\n');
    }
    let env = [
        ("KICK_PROXY_PROVIDERS__KICK__CLIENT_ID", "01KCLIENT"),
        ("KICK_PROXY_PROVIDERS__TWITCH__CLIENT_ID", "twitch-client"),
        (
            "KICK_PROXY_PROVIDERS__YOUTUBE__CLIENT_ID",
            "1234.apps.googleusercontent.com",
        ),
        ("KICK_PROXY_PROVIDERS__KICK__CLIENT_SECRET_FILE", ""),
        ("KICK_PROXY_PROVIDERS__KICK__CLIENT_SECRET", SECRET),
        ("KICK_PROXY_PROVIDERS__TWITCH__CLIENT_SECRET_FILE", ""),
        ("KICK_PROXY_PROVIDERS__TWITCH__CLIENT_SECRET", SECRET),
        ("KICK_PROXY_PROVIDERS__YOUTUBE__CLIENT_SECRET_FILE", ""),
        ("KICK_PROXY_PROVIDERS__YOUTUBE__CLIENT_SECRET", SECRET),
    ];
    let settings = load_env(&uncommented, &env).unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
    assert_eq!(settings.providers["twitch"].preset, "twitch");
    assert_eq!(settings.providers["youtube"].preset, "google");
    assert_eq!(
        settings.providers["youtube"].allowed_redirect_uris,
        ["http://127.0.0.1:*/callback"]
    );
}

/// `base()` with `ca_file = "path"` in `[providers.kick]`.
fn with_ca_file(path: &std::path::Path) -> String {
    format!("{}ca_file = \"{}\"\n", base(), path.display())
}

fn self_signed_pem(name: &str) -> (String, String) {
    let generated = rcgen::generate_simple_self_signed(vec![name.to_owned()]).expect("cert");
    (generated.cert.pem(), generated.signing_key.serialize_pem())
}

#[test]
fn config_refuses_an_unreadable_ca_file_naming_the_key_and_the_path() {
    let message =
        load(&with_ca_file(std::path::Path::new("/nonexistent/ca.pem"))).expect_err("refused");
    assert!(message.contains("providers.kick.ca_file"), "{message}");
    assert!(message.contains("/nonexistent/ca.pem"), "{message}");
    assert!(!message.contains(SECRET), "{message}");

    let dir = tempfile::tempdir().expect("tempdir");
    let message = load(&with_ca_file(dir.path())).expect_err("a directory is refused");
    assert!(message.contains("providers.kick.ca_file"), "{message}");
}

#[test]
fn config_refuses_a_ca_file_without_a_usable_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert_pem, key_pem) = self_signed_pem("localhost");
    let key_body = key_pem.lines().nth(1).expect("a base64 line").to_owned();
    let not_x509 = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
    let bad_base64 = "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n";
    for (name, content) in [
        ("empty", String::new()),
        ("garbage", "this is not PEM at all\n".to_owned()),
        ("a private key only", key_pem.clone()),
        ("a block that is not X.509", not_x509.to_owned()),
        ("a block that is not base64", bad_base64.to_owned()),
        (
            "a good certificate, then a broken one",
            format!("{cert_pem}{not_x509}"),
        ),
    ] {
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, &content).expect("write");
        let message = load(&with_ca_file(&path)).expect_err(name);
        assert!(
            message.contains("providers.kick.ca_file"),
            "{name}: {message}"
        );
        assert!(
            message.contains(&path.display().to_string()),
            "{name}: {message}"
        );
        assert!(
            !message.contains(&key_body),
            "{name} leaks the key: {message}"
        );
        assert!(
            !message.contains("aGVsbG8") && !message.contains("not base64!!!"),
            "{name} quotes the file: {message}"
        );
    }
}

#[test]
fn a_ca_file_bundle_is_loaded_whole_and_can_come_from_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (first, key) = self_signed_pem("ca-one.example");
    let (second, _) = self_signed_pem("ca-two.example");
    let path = dir.path().join("bundle.pem");
    // Text around the blocks and a private key in the same file are ignored.
    std::fs::write(&path, format!("# our CAs\n{first}\n{key}{second}")).expect("write");

    let settings = load(&with_ca_file(&path)).expect("valid");
    let kick = &settings.providers["kick"];
    assert_eq!(kick.ca_file.as_deref(), Some(path.as_path()));
    assert_eq!(kick.ca_certificates.len(), 2);
    assert_eq!(kick.ca_certificates.certificates().len(), 2);
    let shown = settings.redacted_toml();
    assert!(
        shown.contains(&format!("ca_file = \"{}\"", path.display())),
        "{shown}"
    );
    assert!(!shown.contains("BEGIN"), "{shown}");
    let debug = format!("{kick:?}");
    assert!(
        debug.contains("ca_certificates: CaCertificates(2 certificates)"),
        "{debug}"
    );

    let env_path = path.display().to_string();
    let settings = load_env(
        &base(),
        &[("KICK_PROXY_PROVIDERS__KICK__CA_FILE", env_path.as_str())],
    )
    .expect("valid");
    assert_eq!(settings.providers["kick"].ca_certificates.len(), 2);

    // An empty variable unsets the file's key.
    let settings = load_env(
        &with_ca_file(&path),
        &[("KICK_PROXY_PROVIDERS__KICK__CA_FILE", "")],
    )
    .expect("valid");
    assert!(settings.providers["kick"].ca_file.is_none());
    assert!(settings.providers["kick"].ca_certificates.is_empty());

    // Without the key: no extra roots.
    let settings = load(&base()).expect("valid");
    assert!(settings.providers["kick"].ca_certificates.is_empty());
}

#[tokio::test]
async fn a_reload_that_changes_state_reports_each_key_as_needing_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let secret_file = dir.path().join("state_secret");
    let with_state = |backend: &str, prefix: &str| {
        format!(
            "{}\n[state]\nbackend = \"{backend}\"\nkey_prefix = \"{prefix}\"\nsecret_file = {:?}\n\
             [state.redis]\nurl = \"redis://127.0.0.1:1\"\n",
            base(),
            secret_file.to_str().expect("utf-8"),
        )
    };
    std::fs::write(&secret_file, "a".repeat(32)).expect("write");
    let load = |toml: &str| Settings::from_toml_with_env(toml, []).expect("valid");
    let started = load(&with_state("redis", "kop"));
    let state = kick_oauth_proxy::api::AppState::new(&started, None).expect("state");

    assert_eq!(
        state.reload(&load(&with_state("redis", "kop"))),
        Vec::<String>::new()
    );
    // The same path with another secret in it: the derived keys would change.
    std::fs::write(&secret_file, "b".repeat(32)).expect("write");
    let rotated = load(&with_state("redis", "other"));
    let changed = state.reload(&rotated);
    assert_eq!(changed, ["state.secret", "state.key_prefix"]);
    // Compared with the start, not the last reload: said again until the restart.
    assert_eq!(state.reload(&rotated), changed);
    assert!(
        !changed
            .iter()
            .any(|key| key.contains("aaaa") || key.contains("bbbb")),
        "{changed:?}"
    );
    let memory = load(&base());
    assert_eq!(
        state.reload(&memory),
        [
            "state.backend",
            "state.secret",
            "state.key_prefix",
            "state.redis"
        ]
    );
}

#[tokio::test]
async fn a_reload_that_changes_limits_or_listeners_reports_each_key_until_the_restart() {
    let load = |toml: &str| Settings::from_toml_with_env(toml, []).expect("valid");
    let started = load(&base());
    let state = kick_oauth_proxy::api::AppState::new(&started, None).expect("state");
    let changed = format!(
        "{}\n[limits]\nmax_upstream_calls = 8\n[rate_limit]\ntoken = {{ per_minute = 7, burst = 7 }}\n",
        base().replace("[providers.kick]", "[server]\nlisten = \"127.0.0.1:1\"\n\n[providers.kick]")
    );

    let expected = [
        "limits.max_upstream_calls",
        "rate_limit.token.burst",
        "rate_limit.token.per_minute",
        "server.listen",
    ];
    assert_eq!(state.reload(&load(&changed)), expected);
    // Still not applied: said again on the next reload.
    assert_eq!(state.reload(&load(&changed)), expected);
    // Back to what it started with: nothing is owed.
    assert_eq!(state.reload(&started), Vec::<String>::new());
}

/// `TOKIO_WORKER_THREADS` (tokio's own variable, documented in the README for a machine whose
/// CPUs the proxy shares): a bad value stops the binary at start-up with a line that says why,
/// instead of tokio's panic.
#[test]
fn a_bad_worker_thread_count_is_refused_at_start_up_with_a_clear_message() {
    for value in ["0", "two", "-1", " 2"] {
        let output = binary(&["serve"], &[("TOKIO_WORKER_THREADS", value)]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{value:?}: {stderr}");
        assert!(
            stderr.contains("TOKIO_WORKER_THREADS must be a whole number of worker threads"),
            "{value:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{value:?}: {stderr}");
    }
}

/// A valid `TOKIO_WORKER_THREADS` is the number of worker threads the serving binary runs, as its
/// `listening` line reports them (tokio's own count: the blocking pool's threads carry the
/// workers' thread name, so `/proc` cannot tell them apart).
#[tokio::test]
async fn the_worker_thread_count_is_what_tokio_worker_threads_says() {
    let upstream = wiremock::MockServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("proxy.toml");
    std::fs::write(&config, crate::helpers::config_toml(&upstream.uri())).expect("write");
    let http = crate::helpers::proxyless_client();
    for threads in [1, 3] {
        let mut running =
            crate::helpers::start_binary(&config, &[("TOKIO_WORKER_THREADS", threads.to_string())]);
        let listening = running
            .wait_for_log_within("listening", std::time::Duration::from_secs(20))
            .await;
        assert_eq!(listening["worker_threads"], threads, "{listening}");
        let addr = listening["addr"].as_str().expect("addr");
        let health = http
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .expect("healthz");
        assert_eq!(health.status(), 200);
    }
}
