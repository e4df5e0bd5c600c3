//! `compose.yaml` (two replicas, nginx, Valkey and the Kick emulator, offline) and its real-Kick
//! override `compose.kick.yaml`: parsed and cross-checked against `deploy/compose/nginx.conf`,
//! the Dockerfile's `FEATURES` argument and the replicas' configuration run through the proxy's own
//! validation (`config/default.toml` with each replica's environment). Nothing calls docker.
//!
//! As in `manifests`, the checks collect problems instead of panicking, so
//! `every_compose_regression_is_caught` can break the shipped files one way at a time.

use crate::{list, repo_file, text};
use kick_oauth_proxy::config::Settings;
use std::collections::BTreeSet;
use std::path::Path;
use yaml_rust2::yaml::Hash;
use yaml_rust2::{Yaml, YamlLoader};

const REPLICAS: [&str; 2] = ["proxy-a", "proxy-b"];
/// Where Compose mounts a service's secret named `name`.
const SECRETS_DIR: &str = "/run/secrets";

macro_rules! ensure {
    ($problems:expr, $ok:expr, $($message:tt)+) => {
        if !$ok {
            $problems.push(format!($($message)+));
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Loading

/// The files under test, as text, so a test can break one and check again.
#[derive(Clone)]
struct Files {
    compose: String,
    kick: String,
    nginx: String,
}

impl Files {
    fn shipped() -> Self {
        Self {
            compose: repo_file("compose.yaml"),
            kick: repo_file("compose.kick.yaml"),
            nginx: repo_file("deploy/compose/nginx.conf"),
        }
    }

    /// A copy with `from` replaced by `to` once in `file` (`compose`, `kick` or `nginx`);
    /// panics if `from` is absent, so a mutation cannot silently stop applying.
    fn with(&self, file: &str, from: &str, to: &str) -> Self {
        let mut copy = self.clone();
        let text = match file {
            "compose" => &mut copy.compose,
            "kick" => &mut copy.kick,
            "nginx" => &mut copy.nginx,
            other => panic!("no file {other}"),
        };
        assert!(text.contains(from), "{file} has no {from:?}");
        *text = text.replacen(from, to, 1);
        copy
    }
}

/// One YAML document, with merge keys resolved.
fn parse(name: &str, text: &str, p: &mut Vec<String>) -> Yaml {
    match YamlLoader::load_from_str(text) {
        Ok(mut docs) if docs.len() == 1 => resolve_merges(docs.remove(0)),
        Ok(docs) => {
            p.push(format!("{name}: {} YAML documents, expected 1", docs.len()));
            Yaml::BadValue
        }
        Err(e) => {
            p.push(format!("{name}: not YAML: {e}"));
            Yaml::BadValue
        }
    }
}

/// YAML merge keys (`<<: *anchor`), which Compose applies and yaml-rust2 leaves as a `<<` key:
/// the merged mapping's entries are added under the keys the mapping does not set itself.
fn resolve_merges(yaml: Yaml) -> Yaml {
    match yaml {
        Yaml::Hash(hash) => {
            let merge_key = Yaml::String("<<".to_owned());
            let mut out = Hash::new();
            let mut inherited = Vec::new();
            for (key, value) in hash {
                if key == merge_key {
                    match value {
                        Yaml::Array(items) => inherited.extend(items),
                        one => inherited.push(one),
                    }
                } else {
                    out.insert(key, resolve_merges(value));
                }
            }
            for base in inherited {
                if let Yaml::Hash(base) = resolve_merges(base) {
                    for (key, value) in base {
                        out.entry(key).or_insert(value);
                    }
                }
            }
            Yaml::Hash(out)
        }
        Yaml::Array(items) => Yaml::Array(items.into_iter().map(resolve_merges).collect()),
        other => other,
    }
}

/// A Compose `environment` (mapping or `KEY=value` list) as pairs; scalars as Compose passes them.
fn environment(service: &Yaml) -> Vec<(String, String)> {
    match &service["environment"] {
        Yaml::Hash(hash) => hash
            .iter()
            .map(|(k, v)| (text(k).to_owned(), scalar(v)))
            .collect(),
        Yaml::Array(items) => items
            .iter()
            .filter_map(|item| text(item).split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        _ => Vec::new(),
    }
}

fn scalar(yaml: &Yaml) -> String {
    match yaml {
        Yaml::String(s) | Yaml::Real(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        _ => String::new(),
    }
}

fn env_value<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `${NAME}` and `${NAME:?message}` replaced from `vars`; an unset one is a problem, as it is an
/// error for Compose.
fn interpolate(value: &str, vars: &[(&str, &str)], p: &mut Vec<String>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('}') else {
            p.push(format!("unterminated ${{ in {value:?}"));
            return out;
        };
        let inner = &rest[start + 2..start + len];
        let name = inner.split([':', '-', '?']).next().unwrap_or_default();
        match vars.iter().find(|(k, _)| *k == name) {
            Some((_, v)) => out.push_str(v),
            None => p.push(format!("${{{name}}} is not set")),
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

/// A Compose file merged over another, as `docker compose -f base -f override` does for what
/// these files use: `environment` by key, `secrets` appended, other keys replaced.
fn merge_override(base: &Yaml, over: &Yaml) -> Yaml {
    let mut merged = base.clone();
    if let (Yaml::Hash(out), Yaml::Hash(over)) = (&mut merged, over) {
        for (key, value) in over {
            let combined = match (text(key), out.get(key)) {
                ("services", Some(services)) => {
                    let mut services = services.clone();
                    if let (Yaml::Hash(all), Yaml::Hash(overs)) = (&mut services, value) {
                        for (name, service) in overs {
                            let merged = match all.get(name) {
                                Some(existing) => merge_service(existing, service),
                                None => service.clone(),
                            };
                            all.insert(name.clone(), merged);
                        }
                    }
                    services
                }
                ("secrets", Some(Yaml::Hash(secrets))) => {
                    let mut secrets = secrets.clone();
                    if let Yaml::Hash(more) = value {
                        secrets.extend(more.clone());
                    }
                    Yaml::Hash(secrets)
                }
                _ => value.clone(),
            };
            out.insert(key.clone(), combined);
        }
    }
    merged
}

fn merge_service(base: &Yaml, over: &Yaml) -> Yaml {
    let mut merged = base.clone();
    if let (Yaml::Hash(out), Yaml::Hash(over)) = (&mut merged, over) {
        for (key, value) in over {
            let combined = match (text(key), out.get(key), value) {
                ("environment", Some(Yaml::Hash(env)), Yaml::Hash(more)) => {
                    let mut env = env.clone();
                    env.extend(more.clone());
                    Yaml::Hash(env)
                }
                ("secrets", Some(Yaml::Array(items)), Yaml::Array(more)) => {
                    let mut items = items.clone();
                    for secret in more {
                        if !items.contains(secret) {
                            items.push(secret.clone());
                        }
                    }
                    Yaml::Array(items)
                }
                _ => value.clone(),
            };
            out.insert(key.clone(), combined);
        }
    }
    merged
}

/// The `server host:port;` lines of nginx.conf's `upstream` block.
fn nginx_upstream_servers(nginx: &str) -> BTreeSet<String> {
    let Some(block) = nginx
        .split("upstream ")
        .nth(1)
        .and_then(|b| b.split_once('{'))
        .and_then(|(_, rest)| rest.split_once('}'))
        .map(|(block, _)| block)
    else {
        return BTreeSet::new();
    };
    block
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter_map(|l| l.strip_prefix("server "))
        .map(|s| {
            s.trim_end_matches(';')
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// The port of `host:port`.
fn port_of(address: &str) -> Option<u16> {
    address.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
}

// ---------------------------------------------------------------------------------------------
// The emulator service

/// The emulator's command line, as the `emulator` subcommand reads it.
#[derive(Debug, Default)]
struct EmulatorCommand {
    listen: String,
    client_id: String,
    client_secret: String,
    redirect_uris: Vec<String>,
}

fn emulator_command(emulator: &Yaml, p: &mut Vec<String>) -> EmulatorCommand {
    let args: Vec<&str> = list(&emulator["command"]).iter().map(text).collect();
    ensure!(
        p,
        args.first() == Some(&"emulator"),
        "emulator: command does not run the `emulator` subcommand: {args:?}"
    );
    let mut command = EmulatorCommand::default();
    let mut rest = args.iter().skip(1);
    while let Some(flag) = rest.next() {
        let Some(value) = rest.next().map(|v| (*v).to_owned()) else {
            p.push(format!("emulator: {flag} has no value"));
            break;
        };
        match *flag {
            "--listen" => command.listen = value,
            "--client-id" => command.client_id = value,
            "--client-secret" => command.client_secret = value,
            "--redirect-uri" => command.redirect_uris.push(value),
            other => p.push(format!("emulator: unknown flag {other}")),
        }
    }
    ensure!(
        p,
        !command.client_id.is_empty()
            && !command.client_secret.is_empty()
            && !command.redirect_uris.is_empty(),
        "emulator: the demo client's id, secret and redirect URIs are not all fixed: {command:?}"
    );
    command
}

fn check_emulator(compose: &Yaml, p: &mut Vec<String>) -> EmulatorCommand {
    let emulator = &compose["services"]["emulator"];
    let features = text(&emulator["build"]["args"]["FEATURES"]);
    ensure!(
        p,
        features == "dev-tools",
        "emulator: not built with FEATURES=dev-tools (the production image has no `emulator`): {features:?}"
    );
    let cargo: toml::Table = repo_file("Cargo.toml").parse().expect("Cargo.toml");
    ensure!(
        p,
        cargo["features"].get(features).is_some(),
        "emulator: FEATURES={features} is not a cargo feature"
    );
    ensure!(
        p,
        emulator["network_mode"].is_badvalue(),
        "emulator: it owns the network namespace the replicas join; it must not join another"
    );
    ensure!(
        p,
        emulator["healthcheck"]["disable"].as_bool() == Some(true),
        "emulator: the image's HEALTHCHECK probes a proxy's /healthz, which the emulator lacks: disable it"
    );
    let command = emulator_command(emulator, p);
    let port = port_of(&command.listen);
    ensure!(
        p,
        command.listen.starts_with("0.0.0.0:") && port.is_some(),
        "emulator: --listen {} is not reachable from the host's published port",
        command.listen
    );
    let published: Vec<&str> = list(&emulator["ports"]).iter().map(text).collect();
    let wanted = port.map(|port| format!("127.0.0.1:{port}:{port}"));
    ensure!(
        p,
        wanted.as_deref().is_some_and(|w| published.contains(&w)),
        "emulator: its authorize endpoint is not published on loopback as {wanted:?}: {published:?}"
    );
    command
}

// ---------------------------------------------------------------------------------------------
// The replicas

/// A replica's configuration as the container would load it: `config/default.toml` (the image's)
/// with the replica's environment, its `/run/secrets/<name>` files standing in for by files in
/// `secrets_dir` (one per secret the service mounts).
fn replica_settings(
    name: &str,
    service: &Yaml,
    vars: &[(&str, &str)],
    secrets_dir: &Path,
    p: &mut Vec<String>,
) -> Option<Settings> {
    let mounted: Vec<&str> = list(&service["secrets"]).iter().map(text).collect();
    let mut env = Vec::new();
    for (key, value) in environment(service) {
        let value = interpolate(&value, vars, p);
        let value = match value.strip_prefix(&format!("{SECRETS_DIR}/")) {
            Some(secret) => {
                ensure!(
                    p,
                    mounted.contains(&secret),
                    "{name}: {key} reads {value}, but the service does not mount the secret {secret}"
                );
                secrets_dir.join(secret).display().to_string()
            }
            None => value,
        };
        env.push((key, value));
    }
    match Settings::from_toml_with_env(&repo_file("config/default.toml"), env) {
        Ok(settings) => Some(settings),
        Err(e) => {
            p.push(format!(
                "{name}: config/default.toml with its environment does not validate: {e}"
            ));
            None
        }
    }
}

/// Stand-ins for the compose secrets: a state secret of 32 random-looking bytes and a client
/// secret, at the paths `replica_settings` maps `/run/secrets/<name>` to.
fn secrets_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("state_secret"),
        "c3RhdGUtc2VjcmV0LWZvci10ZXN0cy0wMTIzNDU2Nzg5YWJjZGVm\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("kick_client_secret"), "real-kick-secret").expect("write");
    dir
}

fn check_replica_wiring(compose: &Yaml, nginx: &str, p: &mut Vec<String>) {
    let services = &compose["services"];
    let mut ports = BTreeSet::new();
    for name in REPLICAS {
        let replica = &services[name];
        ensure!(
            p,
            text(&replica["network_mode"]) == "service:emulator",
            "{name}: not in the emulator's network namespace (network_mode: service:emulator), so the emulator is not loopback to it"
        );
        ensure!(
            p,
            list(&replica["ports"]).is_empty(),
            "{name}: publishes ports of its own (a service sharing another's namespace cannot; use nginx)"
        );
        ensure!(
            p,
            replica["build"].as_str() == Some(".") && replica["build"]["args"].is_badvalue(),
            "{name}: not the production image (build: . without FEATURES)"
        );
        let listen = env_value(&environment(replica), "KICK_PROXY_SERVER__LISTEN")
            .unwrap_or_default()
            .to_owned();
        match port_of(&listen) {
            Some(port) => {
                ensure!(
                    p,
                    ports.insert(port),
                    "{name}: listens on {port}, as another replica in the same namespace does"
                );
            }
            None => p.push(format!(
                "{name}: KICK_PROXY_SERVER__LISTEN is not set (both replicas would take 8080 in one namespace)"
            )),
        }
    }
    let expected: BTreeSet<String> = ports.iter().map(|p| format!("emulator:{p}")).collect();
    let upstream = nginx_upstream_servers(nginx);
    ensure!(
        p,
        upstream == expected,
        "nginx.conf: the upstream lists {upstream:?}, the replicas listen on {expected:?}"
    );
    let nginx_service = &services["nginx"];
    let mounts: Vec<&str> = list(&nginx_service["volumes"]).iter().map(text).collect();
    ensure!(
        p,
        mounts
            .iter()
            .any(|m| m.starts_with("./deploy/compose/nginx.conf:")),
        "nginx: does not mount deploy/compose/nginx.conf: {mounts:?}"
    );
    let forwarded: Vec<&str> = nginx
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("proxy_set_header X-Forwarded-For "))
        .collect();
    ensure!(
        p,
        forwarded == ["proxy_set_header X-Forwarded-For $remote_addr;"],
        "nginx.conf: X-Forwarded-For must be the hop nginx saw ($remote_addr), not a list the \
         client can prepend to: {forwarded:?}"
    );
}

fn check_offline_config(
    compose: &Yaml,
    emulator: &EmulatorCommand,
    dir: &Path,
    p: &mut Vec<String>,
) {
    let emulator_port = port_of(&emulator.listen);
    for name in REPLICAS {
        let Some(settings) = replica_settings(name, &compose["services"][name], &[], dir, p) else {
            continue;
        };
        let Some(kick) = settings.providers.get("kick") else {
            p.push(format!("{name}: no kick provider"));
            continue;
        };
        let on_emulator = |url: &url::Url, path: &str| {
            url.scheme() == "http"
                && url.host_str() == Some("127.0.0.1")
                && url.port() == emulator_port
                && url.path() == path
        };
        ensure!(
            p,
            on_emulator(&kick.token_url, "/oauth/token"),
            "{name}: token_url {} is not the emulator on loopback",
            kick.token_url
        );
        ensure!(
            p,
            kick.revoke_url
                .as_ref()
                .is_some_and(|u| on_emulator(u, "/oauth/revoke")),
            "{name}: revoke_url {:?} is not the emulator on loopback",
            kick.revoke_url.as_ref().map(url::Url::as_str)
        );
        ensure!(
            p,
            kick.client_id == emulator.client_id,
            "{name}: client id {} is not the emulator's {}",
            kick.client_id,
            emulator.client_id
        );
        ensure!(
            p,
            kick.client_secret.secret() == emulator.client_secret,
            "{name}: client secret is not the emulator's"
        );
        let mine: BTreeSet<&String> = kick.allowed_redirect_uris.iter().collect();
        let registered: BTreeSet<&String> = emulator.redirect_uris.iter().collect();
        ensure!(
            p,
            mine == registered,
            "{name}: allowed redirect URIs {mine:?} are not the emulator's {registered:?}"
        );
        check_state(name, &settings, compose, p);
    }
}

fn check_state(name: &str, settings: &Settings, compose: &Yaml, p: &mut Vec<String>) {
    ensure!(
        p,
        settings.state.backend() == "redis" && settings.state.secret().is_some(),
        "{name}: [state] backend is {}, not redis with a secret",
        settings.state.backend()
    );
    if let Some(redis) = settings.state.redis() {
        let host = url::Url::parse(redis.url())
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        ensure!(
            p,
            text(&compose["services"][host.as_str()]["image"]).starts_with("valkey/valkey:"),
            "{name}: state.redis.url {} is not the valkey service",
            redis.url()
        );
    }
    ensure!(
        p,
        !settings.rate_limit.trusted_proxies.is_empty(),
        "{name}: no trusted_proxies: behind nginx every client would share one rate-limit bucket"
    );
}

fn check_kick_override(compose: &Yaml, kick: &Yaml, dir: &Path, p: &mut Vec<String>) {
    let merged = merge_override(compose, kick);
    let vars = [("KICK_CLIENT_ID", "01KTESTCLIENT")];
    for name in REPLICAS {
        let replica = &merged["services"][name];
        ensure!(
            p,
            text(&replica["network_mode"]) == "service:emulator",
            "compose.kick.yaml: {name} leaves the namespace nginx reaches it in"
        );
        let Some(settings) = replica_settings(name, replica, &vars, dir, p) else {
            continue;
        };
        let Some(kick) = settings.providers.get("kick") else {
            p.push(format!("compose.kick.yaml: {name}: no kick provider"));
            continue;
        };
        ensure!(
            p,
            kick.token_url.as_str() == "https://id.kick.com/oauth/token"
                && kick.revoke_url.as_ref().map(url::Url::as_str)
                    == Some("https://id.kick.com/oauth/revoke"),
            "compose.kick.yaml: {name} does not call id.kick.com: {}",
            kick.token_url
        );
        ensure!(
            p,
            kick.client_id == "01KTESTCLIENT",
            "compose.kick.yaml: {name}: the client id is not $KICK_CLIENT_ID"
        );
        ensure!(
            p,
            kick.client_secret_file.is_some() && kick.client_secret.secret() == "real-kick-secret",
            "compose.kick.yaml: {name}: the client secret is not the mounted kick_client_secret"
        );
        check_state(name, &settings, &merged, p);
    }
    let declared = text(&merged["secrets"]["kick_client_secret"]["file"]);
    ensure!(
        p,
        declared == "./deploy/compose/kick_client_secret",
        "compose.kick.yaml: the kick_client_secret secret is not ./deploy/compose/kick_client_secret: {declared:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Everything

fn problems(files: &Files) -> Vec<String> {
    let mut p = Vec::new();
    let compose = parse("compose.yaml", &files.compose, &mut p);
    let kick = parse("compose.kick.yaml", &files.kick, &mut p);
    for name in ["emulator", "proxy-a", "proxy-b", "valkey", "nginx"] {
        ensure!(
            p,
            compose["services"][name].as_hash().is_some(),
            "compose.yaml: no service {name}"
        );
    }
    ensure!(
        p,
        !files.compose.contains("${"),
        "compose.yaml: the offline demo needs a variable set"
    );
    let emulator = check_emulator(&compose, &mut p);
    check_replica_wiring(&compose, &files.nginx, &mut p);
    let dir = secrets_dir();
    check_offline_config(&compose, &emulator, dir.path(), &mut p);
    check_kick_override(&compose, &kick, dir.path(), &mut p);
    p
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn shipped_compose_files_pass_every_check() {
    let problems = problems(&Files::shipped());
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Each check fails when what it guards is broken.
#[test]
fn every_compose_regression_is_caught() {
    let shipped = Files::shipped();
    let cases = [
        (
            "compose",
            "network_mode: \"service:emulator\"",
            "network_mode: bridge",
            "namespace",
        ),
        (
            "compose",
            "KICK_PROXY_SERVER__LISTEN: 0.0.0.0:8083",
            "KICK_PROXY_SERVER__LISTEN: 0.0.0.0:8082",
            "as another replica",
        ),
        (
            "nginx",
            "X-Forwarded-For $remote_addr;",
            "X-Forwarded-For $proxy_add_x_forwarded_for;",
            "X-Forwarded-For must be the hop nginx saw",
        ),
        (
            "nginx",
            "server emulator:8083;",
            "server proxy-b:8080;",
            "nginx.conf: the upstream",
        ),
        (
            "compose",
            "FEATURES: dev-tools",
            "FEATURES: \"\"",
            "FEATURES=dev-tools",
        ),
        (
            "compose",
            "\"--client-secret\", *demo-client-secret",
            "\"--client-secret\", other-secret",
            "client secret is not the emulator's",
        ),
        (
            "compose",
            "\"--redirect-uri\", *demo-redirect-desktop",
            "\"--redirect-uri\", \"app://other\"",
            "allowed redirect URIs",
        ),
        (
            "compose",
            "TOKEN_URL: http://127.0.0.1:8081/oauth/token",
            "TOKEN_URL: http://127.0.0.1:9999/oauth/token",
            "token_url",
        ),
        (
            "compose",
            "  KICK_PROXY_PROVIDERS__KICK__CLIENT_SECRET_FILE: \"\"\n",
            "",
            "does not validate",
        ),
        (
            "compose",
            "KICK_PROXY_STATE__BACKEND: redis",
            "KICK_PROXY_STATE__BACKEND: memory",
            "not redis",
        ),
        (
            "compose",
            "  secrets:\n    - state_secret\n",
            "",
            "does not mount the secret state_secret",
        ),
        ("compose", "disable: true", "disable: false", "HEALTHCHECK"),
        (
            "kick",
            "  KICK_PROXY_PROVIDERS__KICK__TOKEN_URL: https://id.kick.com/oauth/token\n",
            "",
            "does not call id.kick.com",
        ),
        (
            "kick",
            "  KICK_PROXY_PROVIDERS__KICK__CLIENT_SECRET: \"\"\n",
            "",
            "does not validate",
        ),
    ];
    for (file, from, to, expected) in cases {
        let broken = shipped.with(file, from, to);
        let found = problems(&broken);
        assert!(
            !found.iter().any(|p| p.contains("not YAML")),
            "{file}: {from:?} -> {to:?} broke the YAML itself: {found:#?}"
        );
        assert!(
            found.iter().any(|p| p.contains(expected)),
            "{file}: {from:?} -> {to:?} should report {expected:?}, got {found:#?}"
        );
    }
}

#[test]
fn merge_keys_resolve_with_the_mappings_own_keys_winning() {
    let yaml = YamlLoader::load_from_str(
        "base: &base {a: 1, b: 2}\nuse: {<<: *base, b: 3, c: 4}\nmany: {<<: [*base], a: 0}\n",
    )
    .expect("yaml");
    let yaml = resolve_merges(yaml[0].clone());
    assert_eq!(yaml["use"]["a"].as_i64(), Some(1));
    assert_eq!(yaml["use"]["b"].as_i64(), Some(3));
    assert_eq!(yaml["use"]["c"].as_i64(), Some(4));
    assert!(yaml["use"]["<<"].is_badvalue());
    assert_eq!(yaml["many"]["a"].as_i64(), Some(0));
    assert_eq!(yaml["many"]["b"].as_i64(), Some(2));
}
