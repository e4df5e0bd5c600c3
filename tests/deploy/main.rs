//! Offline checks of what ships the proxy, one suite per module: `manifests` (`deploy/kubernetes/`,
//! parsed and cross-checked against the ConfigMap's `config.toml` run through the real config
//! validation), `image` (the release workflow, the Dockerfile, the README's deployment notes and
//! the scripts CI runs), `healthcheck` (the subcommand the image's `HEALTHCHECK` runs) and
//! `compose` (`compose.yaml`'s replicas, emulator and nginx, and the real-Kick override). No
//! kubectl, no docker, no network.

mod compose;
mod healthcheck;
mod image;
mod manifests;

/// The API tests' harness (`TestApp`), shared rather than rolled again.
#[allow(dead_code)]
#[path = "../api/helpers/mod.rs"]
mod helpers;

use std::path::Path;
use yaml_rust2::Yaml;

/// The binary under test.
const PROXY_BIN: &str = env!("CARGO_BIN_EXE_kick-oauth-proxy");
/// The distroless `nonroot` user the image runs as.
const NONROOT_UID: i64 = 65532;

/// A file of the repository, as text.
fn repo_file(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A YAML sequence's items (none if it is not one).
fn list(yaml: &Yaml) -> &[Yaml] {
    yaml.as_vec().map(Vec::as_slice).unwrap_or(&[])
}

/// A YAML string ("" if it is not one).
fn text(yaml: &Yaml) -> &str {
    yaml.as_str().unwrap_or_default()
}
