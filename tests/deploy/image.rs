//! What builds and ships the image: the release workflow, the Dockerfile (its `HEALTHCHECK` and
//! config), the README's container notes, and the scripts CI and the benchmark run.

use crate::{list, repo_file, text, NONROOT_UID};
use yaml_rust2::{Yaml, YamlLoader};

#[test]
fn release_workflow_runs_ci_then_pushes_the_image_to_ghcr_on_version_tags() {
    let docs = YamlLoader::load_from_str(&repo_file(".github/workflows/release.yml"))
        .expect("release.yml is YAML");
    let workflow = &docs[0];
    // YAML 1.2: `on` is a string key (YAML 1.1 would read it as `true`; GitHub uses 1.2 here).
    let tags: Vec<&str> = list(&workflow["on"]["push"]["tags"])
        .iter()
        .map(text)
        .collect();
    assert_eq!(tags, ["v*"], "runs on v* tags");
    let jobs = workflow["jobs"].as_hash().expect("jobs");
    let steps = |job: &Yaml| -> Vec<Yaml> { list(&job["steps"]).to_vec() };
    let uses = |job: &Yaml, action: &str| {
        steps(job)
            .into_iter()
            .find(|s| text(&s["uses"]).starts_with(&format!("{action}@")))
    };

    let (test_job, _) = jobs
        .iter()
        .find(|(_, job)| steps(job).iter().any(|s| text(&s["run"]) == "bash .ci/run"))
        .expect("a job runs bash .ci/run");
    let (_, push) = jobs
        .iter()
        .find(|(_, job)| uses(job, "docker/build-push-action").is_some())
        .expect("a job runs docker/build-push-action");
    let needs: Vec<&Yaml> = match &push["needs"] {
        Yaml::Array(needs) => needs.iter().collect(),
        one => vec![one],
    };
    assert!(needs.contains(&test_job), "the push job needs the test job");
    assert_eq!(text(&push["permissions"]["packages"]), "write");
    assert_eq!(text(&push["permissions"]["contents"]), "read");

    assert!(uses(push, "actions/checkout").is_some());
    assert!(uses(push, "docker/setup-buildx-action").is_some());
    let login = uses(push, "docker/login-action").expect("docker/login-action");
    assert_eq!(text(&login["with"]["registry"]), "ghcr.io");
    assert_eq!(
        text(&login["with"]["password"]),
        "${{ secrets.GITHUB_TOKEN }}"
    );
    let meta = uses(push, "docker/metadata-action").expect("docker/metadata-action");
    assert_eq!(
        text(&meta["with"]["images"]),
        "ghcr.io/${{ github.repository }}"
    );
    let tag_rules = text(&meta["with"]["tags"]);
    assert!(tag_rules.contains("type=semver") && tag_rules.contains("type=sha"));
    let build = uses(push, "docker/build-push-action").expect("build-push");
    let meta_id = text(&meta["id"]);
    assert_eq!(build["with"]["push"].as_bool(), Some(true));
    assert_eq!(
        text(&build["with"]["tags"]),
        format!("${{{{ steps.{meta_id}.outputs.tags }}}}")
    );
    assert_eq!(text(&build["with"]["cache-from"]), "type=gha");
    assert!(text(&build["with"]["cache-to"]).starts_with("type=gha"));
}

#[test]
fn dockerfile_healthcheck_runs_the_binarys_healthcheck_subcommand() {
    let dockerfile = repo_file("Dockerfile");
    let binary = "/usr/local/bin/kick-oauth-proxy";
    assert!(
        dockerfile.contains(&format!("COPY --from=builder /kick-oauth-proxy {binary}")),
        "the binary is at {binary}"
    );
    let healthcheck = dockerfile
        .lines()
        .find(|l| l.starts_with("HEALTHCHECK "))
        .expect("a HEALTHCHECK");
    assert!(
        healthcheck.ends_with(&format!(r#"CMD ["{binary}", "healthcheck"]"#)),
        "{healthcheck}"
    );
    // Docker's --timeout must leave room for the subcommand's own 2 s deadline.
    assert!(healthcheck.contains("--timeout=3s"), "{healthcheck}");
}

/// The README's container example gives the secret file to the image's user before mounting it
/// where the image's config reads it (a root-owned 0600 file is unreadable to uid 65532:
/// `tests/api/config.rs` shows the refusal and that this fix works).
#[test]
fn readme_docker_run_mounts_a_secret_file_the_image_user_can_read() {
    let dockerfile = repo_file("Dockerfile");
    assert!(
        dockerfile
            .lines()
            .any(|l| l.trim() == "USER nonroot:nonroot")
            && dockerfile.contains(":nonroot AS runtime"),
        "the image runs as distroless nonroot, uid {NONROOT_UID}"
    );
    let readme = repo_file("README.md");
    let block = readme
        .split("```")
        .find(|block| block.starts_with("sh\n") && block.contains("docker run"))
        .expect("a sh block with docker run");
    let mount = block
        .split_whitespace()
        .find_map(|word| {
            word.trim_matches('"')
                .strip_prefix("$PWD/kick_client_secret:")
        })
        .expect("the block mounts ./kick_client_secret");
    let target = mount.trim_end_matches(":ro");
    let config: toml::Table = repo_file("config/default.toml")
        .parse()
        .expect("default.toml");
    assert_eq!(
        config["providers"]["kick"]["client_secret_file"].as_str(),
        Some(target),
        "mounted where the image's config reads the secret"
    );
    let chown = block.find(&format!(
        "chown {NONROOT_UID}:{NONROOT_UID} kick_client_secret"
    ));
    let run = block.find("docker run");
    assert!(
        chown.is_some() && chown < run,
        "the file is given to uid {NONROOT_UID} before docker run: {block}"
    );
    assert!(block.contains("chmod 0400 kick_client_secret"), "{block}");
}

#[test]
fn dockerfile_serve_and_healthcheck_read_the_same_config_file() {
    let dockerfile = repo_file("Dockerfile");
    // Instructions, continuation lines joined.
    let joined = dockerfile.replace("\\\n", " ");
    let instruction = |name: &str| -> Vec<String> {
        joined
            .lines()
            .filter(|l| l.starts_with(&format!("{name} ")))
            .map(str::to_owned)
            .collect()
    };
    let copied = instruction("COPY")
        .into_iter()
        .find_map(|l| {
            l.strip_prefix("COPY config/default.toml ")
                .map(|to| to.trim().to_owned())
        })
        .expect("the default config is copied in");
    // KICK_PROXY_CONFIG names it, for both subcommands…
    let env = instruction("ENV").join(" ");
    assert!(
        env.split_whitespace()
            .any(|kv| kv == format!("KICK_PROXY_CONFIG={copied}")),
        "ENV KICK_PROXY_CONFIG={copied} is not set: {env}"
    );
    // …and neither overrides it with a flag, or the HEALTHCHECK would probe another listener than
    // the one a KICK_PROXY_CONFIG set at `docker run` moved.
    for line in instruction("CMD")
        .into_iter()
        .chain(instruction("HEALTHCHECK"))
        .chain(instruction("ENTRYPOINT"))
    {
        assert!(
            !line.contains("--config") && !line.contains("--url"),
            "{line}"
        );
    }
    assert_eq!(instruction("CMD"), [r#"CMD ["serve"]"#]);
}

/// `ARG FEATURES` adds cargo features to an image that is otherwise built without the default
/// ones: empty by default (the production image has no `dev-tools`), and given alike to the
/// cargo-chef cook and the build, or the cached dependency build would not match. The flags are
/// run through `sh`, as the builder's `RUN` does, to see what cargo gets.
#[test]
fn dockerfile_features_arg_reaches_cook_and_build_alike_and_defaults_to_none() {
    let dockerfile = repo_file("Dockerfile");
    let joined = dockerfile.replace("\\\n", " ");
    let builder = joined
        .split("\nFROM ")
        .find(|stage| stage.starts_with("chef AS builder"))
        .expect("a builder stage");
    let args: Vec<&str> = builder
        .lines()
        .filter_map(|l| l.strip_prefix("ARG "))
        .collect();
    assert_eq!(
        args,
        [r#"FEATURES="""#],
        "one ARG FEATURES, empty by default"
    );
    // What follows `--no-default-features` up to the next fixed flag, on the cook and build lines.
    let flags = |command: &str, until: &str| -> String {
        let line = builder
            .lines()
            .find(|l| l.starts_with("RUN ") && l.contains(command))
            .unwrap_or_else(|| panic!("a RUN {command}"));
        let from = line
            .find("--no-default-features")
            .unwrap_or_else(|| panic!("{command} without --no-default-features: {line}"));
        let rest = &line[from..];
        rest[..rest.find(until).expect(until)].trim().to_owned()
    };
    let cook = flags("cargo chef cook", " --recipe-path");
    let build = flags("cargo build", " --bin");
    assert_eq!(cook, build, "cook and build name the same features");
    assert!(
        cook.contains("FEATURES"),
        "the features come from the ARG: {cook}"
    );

    let argv = |features: &str| -> Vec<String> {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s\\n' {cook}"))
            .env("FEATURES", features)
            .output()
            .expect("sh runs");
        assert!(out.status.success());
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .lines()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(argv(""), ["--no-default-features"]);
    assert_eq!(
        argv("dev-tools"),
        ["--no-default-features", "--features", "dev-tools"]
    );
    assert_eq!(
        argv("dev-tools,other"),
        ["--no-default-features", "--features", "dev-tools,other"]
    );
    // The feature the compose demo's emulator needs exists, and is a default one (so the
    // production image, built without defaults, lacks it).
    let cargo: toml::Table = repo_file("Cargo.toml").parse().expect("Cargo.toml");
    let defaults = cargo["features"]["default"].as_array().expect("default");
    assert!(defaults.iter().any(|f| f.as_str() == Some("dev-tools")));
    // The README's container notes document the argument.
    let readme = repo_file("README.md");
    assert!(
        readme.contains("--build-arg FEATURES=dev-tools"),
        "the README documents FEATURES"
    );
}

// ---------------------------------------------------------------------------------------------
// Tests: the scripts CI and the benchmark run

/// No script assumes where cargo builds (`CARGO_TARGET_DIR` or `build.target-dir` may move it off
/// `./target`) or listens on a fixed port (two runs on one machine would collide): they ask cargo
/// for its paths and let the servers bind port 0.
#[test]
fn scripts_use_cargos_target_dir_and_no_fixed_ports() {
    for script in [
        ".ci/run",
        "scripts/schemathesis.sh",
        "scripts/schemathesis.toml",
        "bench/run.sh",
        "bench/bench.py",
    ] {
        for (n, line) in repo_file(script).lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with('#') {
                continue;
            }
            let at = format!("{script}:{}: {line}", n + 1);
            assert!(!code.contains("target/"), "a path under target/: {at}");
            for listen in code.match_indices("127.0.0.1:") {
                let port = &code[listen.0 + listen.1.len()..];
                assert!(
                    !port.starts_with(|c: char| c.is_ascii_digit() && c != '0'),
                    "a fixed port: {at}"
                );
            }
            for default in code.match_indices("PORT:-") {
                let port = &code[default.0 + default.1.len()..];
                assert!(port.starts_with("0}"), "a fixed default port: {at}");
            }
        }
    }
}
