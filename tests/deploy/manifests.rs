//! `deploy/kubernetes/`: parsed, cross-checked against the ConfigMap's `config.toml` run through
//! the real config validation, and summarised correctly in the READMEs.
//!
//! The manifest checks collect problems instead of panicking, so `every_manifest_regression_is_caught`
//! can break the shipped files one way at a time and prove each check fails when it should.

use crate::{list, repo_file, text, NONROOT_UID};
use kick_oauth_proxy::config::{LogFormat, Settings};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use yaml_rust2::{Yaml, YamlLoader};

const DEPLOY_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes");
const KUSTOMIZATION: &str = "kustomization.yaml";

macro_rules! ensure {
    ($problems:expr, $ok:expr, $($message:tt)+) => {
        if !$ok {
            $problems.push(format!($($message)+));
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Loading

/// The manifest files by name, as text, so a test can break one and check again.
#[derive(Clone)]
struct Files(BTreeMap<String, String>);

impl Files {
    /// Every manifest, by its path under deploy/kubernetes: `deployment.yaml`, and one level of
    /// optional kustomize components, `monitoring/servicemonitor.yaml`.
    fn shipped() -> Self {
        let mut files = BTreeMap::new();
        let yaml = |path: &Path| path.extension().is_some_and(|e| e == "yaml" || e == "yml");
        for entry in std::fs::read_dir(DEPLOY_DIR).expect("deploy/kubernetes exists") {
            let path = entry.expect("readable directory").path();
            if yaml(&path) {
                let text = std::fs::read_to_string(&path).expect("readable manifest");
                files.insert(file_name(&path), text);
            } else if path.is_dir() {
                let dir = file_name(&path);
                for entry in std::fs::read_dir(&path).expect("readable component") {
                    let path = entry.expect("readable directory").path();
                    if yaml(&path) {
                        let text = std::fs::read_to_string(&path).expect("readable manifest");
                        files.insert(format!("{dir}/{}", file_name(&path)), text);
                    }
                }
            }
        }
        Self(files)
    }

    /// A copy with the first `from` in `file` replaced (`all`: every one). Panics when `from` is
    /// not there: the regression table is out of date, not the manifests.
    fn with(&self, file: &str, from: &str, to: &str, all: bool) -> Self {
        let mut files = self.clone();
        let text = files.0.get_mut(file).expect("file in the table exists");
        assert!(
            text.contains(from),
            "regression table: {file} has no {from:?}"
        );
        *text = if all {
            text.replace(from, to)
        } else {
            text.replacen(from, to, 1)
        };
        files
    }
}

/// The ConfigMap's client id as shipped, and what an operator puts there instead (step 2 of
/// deploy/kubernetes/README.md). The proxy refuses the placeholder at start-up.
const PLACEHOLDER_CLIENT_ID: &str = "replace-with-your-kick-client-id";
const OPERATOR_CLIENT_ID: &str = "01KOPERATORCLIENTID";

impl Files {
    /// The shipped manifests with the placeholder client id filled in, as they are applied.
    fn filled_in() -> Self {
        Self::shipped().with(
            "configmap.yaml",
            PLACEHOLDER_CLIENT_ID,
            OPERATOR_CLIENT_ID,
            true,
        )
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned()
}

/// Every parsed Kubernetes object (the kustomizations apart).
struct Manifests {
    docs: Vec<Doc>,
    kustomization: Yaml,
    /// Optional kustomize components: directory → its `kustomization.yaml`.
    components: BTreeMap<String, Yaml>,
}

struct Doc {
    file: String,
    yaml: Yaml,
}

impl Doc {
    fn kind(&self) -> &str {
        self.yaml["kind"].as_str().unwrap_or_default()
    }
    fn name(&self) -> &str {
        self.yaml["metadata"]["name"].as_str().unwrap_or_default()
    }
}

impl Manifests {
    fn parse(files: &Files, problems: &mut Vec<String>) -> Self {
        let mut docs = Vec::new();
        let mut kustomization = Yaml::BadValue;
        let mut components = BTreeMap::new();
        for (file, text) in &files.0 {
            let parsed = match YamlLoader::load_from_str(text) {
                Ok(parsed) => parsed,
                Err(error) => {
                    problems.push(format!("{file}: not valid YAML: {error}"));
                    continue;
                }
            };
            for yaml in parsed.into_iter().filter(|y| !y.is_null()) {
                if file == KUSTOMIZATION {
                    kustomization = yaml;
                } else if let Some(dir) = file.strip_suffix(&format!("/{KUSTOMIZATION}")) {
                    components.insert(dir.to_owned(), yaml);
                } else {
                    docs.push(Doc {
                        file: file.clone(),
                        yaml,
                    });
                }
            }
        }
        Self {
            docs,
            kustomization,
            components,
        }
    }

    fn of_kind(&self, kind: &str) -> Vec<&Doc> {
        self.docs.iter().filter(|d| d.kind() == kind).collect()
    }

    /// The only object of `kind` in the base (optional components add their own, checked apart).
    fn one(&self, kind: &str, problems: &mut Vec<String>) -> Option<&Yaml> {
        let found: Vec<&Doc> = self
            .of_kind(kind)
            .into_iter()
            .filter(|d| !d.file.contains('/'))
            .collect();
        ensure!(
            problems,
            found.len() == 1,
            "expected exactly one {kind}, found {}",
            found.len()
        );
        found.first().map(|d| &d.yaml)
    }

    fn named(&self, kind: &str, name: &str) -> Option<&Yaml> {
        self.of_kind(kind)
            .into_iter()
            .find(|d| d.name() == name)
            .map(|d| &d.yaml)
    }
}

// ---------------------------------------------------------------------------------------------
// Small YAML helpers

/// A string map such as `matchLabels` or `data`.
fn string_map(yaml: &Yaml) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for (k, v) in yaml.as_hash().into_iter().flatten() {
        if let (Some(k), Some(v)) = (k.as_str(), v.as_str()) {
            map.insert(k.to_owned(), v.to_owned());
        }
    }
    map
}

/// A label selector (`matchLabels`) that is non-empty and selects the pods.
fn selects(selector: &Yaml, pod_labels: &BTreeMap<String, String>) -> bool {
    let wanted = string_map(selector);
    !wanted.is_empty() && wanted.iter().all(|(k, v)| pod_labels.get(k) == Some(v))
}

fn parent_and_name(path: &str) -> (String, String) {
    let path = Path::new(path);
    let parent = path
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    (parent, file_name(path))
}

// ---------------------------------------------------------------------------------------------
// The checks

/// Everything wrong with a set of manifest files; empty when they are fit to ship.
fn problems(files: &Files) -> Vec<String> {
    let mut p = Vec::new();
    let m = Manifests::parse(files, &mut p);
    check_documents(&m, &mut p);
    check_kustomization(files, &m, &mut p);
    let Some(deployment) = m.one("Deployment", &mut p) else {
        return p;
    };
    let pod = Pod::of(deployment);
    let config = Config::check(&m, &pod, &mut p);
    check_deployment(&m, deployment, &pod, config.as_ref(), &mut p);
    check_services(&m, &pod, &mut p);
    check_ingress(&m, &mut p);
    check_autoscaling(&m, deployment, &pod, &mut p);
    check_network_policy(&m, &pod, config.as_ref(), &mut p);
    check_metrics(&m, &pod, config.as_ref(), &mut p);
    p
}

/// The HPA that scales `deployment`, if one does.
fn hpa_of<'a>(m: &'a Manifests, deployment: &Yaml) -> Option<&'a Yaml> {
    let name = text(&deployment["metadata"]["name"]);
    m.of_kind("HorizontalPodAutoscaler")
        .into_iter()
        .map(|d| &d.yaml)
        .find(|hpa| {
            let target = &hpa["spec"]["scaleTargetRef"];
            text(&target["kind"]) == "Deployment" && text(&target["name"]) == name
        })
}

/// The fewest pods there will be: the HPA's `minReplicas` when one scales the Deployment, else
/// its `replicas` (1 when absent).
fn replica_floor(m: &Manifests, deployment: &Yaml) -> i64 {
    match hpa_of(m, deployment) {
        Some(hpa) => hpa["spec"]["minReplicas"].as_i64().unwrap_or(1),
        None => deployment["spec"]["replicas"].as_i64().unwrap_or(1),
    }
}

fn check_documents(m: &Manifests, p: &mut Vec<String>) {
    let namespace = text(&m.kustomization["namespace"]);
    let mut seen = BTreeSet::new();
    for doc in &m.docs {
        let file = &doc.file;
        ensure!(
            p,
            !text(&doc.yaml["apiVersion"]).is_empty(),
            "{file}: no apiVersion"
        );
        ensure!(p, !doc.kind().is_empty(), "{file}: no kind");
        ensure!(p, !doc.name().is_empty(), "{file}: no metadata.name");
        ensure!(
            p,
            seen.insert((doc.kind().to_owned(), doc.name().to_owned())),
            "{file}: a second {} named {}",
            doc.kind(),
            doc.name()
        );
        let own_namespace = text(&doc.yaml["metadata"]["namespace"]);
        if doc.kind() == "Namespace" {
            ensure!(
                p,
                doc.name() == namespace,
                "{file}: Namespace {} is not the kustomization's namespace {namespace}",
                doc.name()
            );
        } else {
            // Plain `kubectl apply -f` must land in the same namespace as `apply -k`.
            ensure!(
                p,
                own_namespace == namespace,
                "{file}: metadata.namespace {own_namespace:?} is not the kustomization's {namespace:?}"
            );
        }
    }
}

fn check_kustomization(files: &Files, m: &Manifests, p: &mut Vec<String>) {
    let k = &m.kustomization;
    ensure!(
        p,
        text(&k["kind"]) == "Kustomization",
        "{KUSTOMIZATION}: kind is not Kustomization"
    );
    let listed: BTreeSet<&str> = list(&k["resources"]).iter().map(text).collect();
    for example in listed.iter().filter(|f| f.contains(".example.")) {
        p.push(format!(
            "{KUSTOMIZATION}: lists {example}; `kubectl apply -k` would overwrite the real Secret with the placeholder"
        ));
    }
    let expected: BTreeSet<&str> = files
        .0
        .keys()
        .map(String::as_str)
        .filter(|f| *f != KUSTOMIZATION && !f.contains(".example.") && !f.contains('/'))
        .collect();
    for missing in expected.difference(&listed) {
        p.push(format!(
            "{KUSTOMIZATION}: does not list {missing}, so `kubectl apply -k` skips it"
        ));
    }
    for unknown in listed.difference(&expected) {
        if !unknown.contains(".example.") {
            p.push(format!(
                "{KUSTOMIZATION}: lists {unknown}, which does not exist"
            ));
        }
    }
    // A component is opt-in: each lists exactly the files of its directory.
    for (dir, component) in &m.components {
        ensure!(
            p,
            text(&component["kind"]) == "Component"
                && text(&component["apiVersion"]) == "kustomize.config.k8s.io/v1alpha1",
            "{dir}/{KUSTOMIZATION}: not a kustomize Component (kustomize.config.k8s.io/v1alpha1)"
        );
        let listed: BTreeSet<String> = list(&component["resources"])
            .iter()
            .map(|r| format!("{dir}/{}", text(r)))
            .collect();
        let present: BTreeSet<String> = files
            .0
            .keys()
            .filter(|f| f.starts_with(&format!("{dir}/")) && !f.ends_with(KUSTOMIZATION))
            .cloned()
            .collect();
        ensure!(
            p,
            listed == present,
            "{dir}/{KUSTOMIZATION}: lists {listed:?}, the directory holds {present:?}"
        );
    }
    // The Prometheus Operator's CRD may not exist: a ServiceMonitor in the base would make the
    // whole `kubectl apply -k` fail there.
    for doc in m.docs.iter().filter(|d| d.kind() == "ServiceMonitor") {
        ensure!(
            p,
            doc.file.contains('/'),
            "{}: a ServiceMonitor in the base; keep it in the optional monitoring component",
            doc.file
        );
    }
}

/// The pod template's parts most checks need.
struct Pod<'a> {
    spec: &'a Yaml,
    container: &'a Yaml,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

impl<'a> Pod<'a> {
    fn of(deployment: &'a Yaml) -> Self {
        let template = &deployment["spec"]["template"];
        let spec = &template["spec"];
        Self {
            spec,
            container: &spec["containers"][0],
            labels: string_map(&template["metadata"]["labels"]),
            annotations: string_map(&template["metadata"]["annotations"]),
        }
    }

    /// The container's setting, else the pod's (how Kubernetes resolves them).
    fn security(&self, key: &str) -> &'a Yaml {
        let own = &self.container["securityContext"][key];
        if own.is_badvalue() {
            &self.spec["securityContext"][key]
        } else {
            own
        }
    }

    fn volume(&self, name: &str) -> &'a Yaml {
        list(&self.spec["volumes"])
            .iter()
            .find(|v| text(&v["name"]) == name)
            .unwrap_or(&Yaml::BadValue)
    }

    /// The env the container gets: KICK_PROXY_* values resolved from the manifests.
    fn env(&self, m: &Manifests, p: &mut Vec<String>) -> Vec<(String, String)> {
        let mut env = Vec::new();
        for var in list(&self.container["env"]) {
            let name = text(&var["name"]);
            if !name.starts_with("KICK_PROXY_") {
                continue;
            }
            // Without a `__` the config ignores the variable (it is not KICK_PROXY_<SECTION>__<KEY>).
            ensure!(
                p,
                name.contains("__"),
                "deployment: env {name} has no `__`, so it overrides no config key"
            );
            let value = if let Some(value) = var["value"].as_str() {
                Some(value.to_owned())
            } else if !var["valueFrom"]["configMapKeyRef"].is_badvalue() {
                let r = &var["valueFrom"]["configMapKeyRef"];
                let (map, key) = (text(&r["name"]), text(&r["key"]));
                let found = m
                    .named("ConfigMap", map)
                    .and_then(|c| string_map(&c["data"]).remove(key));
                ensure!(
                    p,
                    found.is_some(),
                    "deployment: env {name}: ConfigMap {map} has no key {key}"
                );
                found
            } else if !var["valueFrom"]["secretKeyRef"].is_badvalue() {
                let r = &var["valueFrom"]["secretKeyRef"];
                let (secret, key) = (text(&r["name"]), text(&r["key"]));
                let found = m
                    .named("Secret", secret)
                    .is_some_and(|s| secret_keys(s).contains(key));
                ensure!(
                    p,
                    found,
                    "deployment: env {name}: Secret {secret} has no key {key}"
                );
                found.then(|| "secret-from-the-manifests".to_owned())
            } else {
                p.push(format!(
                    "deployment: env {name}: neither a value nor a ConfigMap/Secret key"
                ));
                None
            };
            if let Some(value) = value {
                env.push((name.to_owned(), value));
            }
        }
        env
    }
}

fn secret_keys(secret: &Yaml) -> BTreeSet<String> {
    let mut keys: BTreeSet<String> = string_map(&secret["stringData"]).into_keys().collect();
    keys.extend(string_map(&secret["data"]).into_keys());
    keys
}

/// The ConfigMap's `config.toml` and what the proxy makes of it in the pod.
struct Config {
    /// The ConfigMap holding `config.toml`.
    map_name: String,
    /// Validated with the Deployment's env and a real secret file.
    settings: Settings,
    /// provider name → the `client_secret_file` the pod reads.
    secret_files: BTreeMap<String, String>,
}

impl Config {
    fn check(m: &Manifests, pod: &Pod, p: &mut Vec<String>) -> Option<Self> {
        let maps: Vec<&Doc> = m
            .of_kind("ConfigMap")
            .into_iter()
            .filter(|d| d.yaml["data"]["config.toml"].as_str().is_some())
            .collect();
        ensure!(
            p,
            maps.len() == 1,
            "expected one ConfigMap with a config.toml key, found {}",
            maps.len()
        );
        let map = maps.first()?;
        let toml_text = text(&map.yaml["data"]["config.toml"]);
        let raw: toml::Table = match toml_text.parse() {
            Ok(raw) => raw,
            Err(error) => {
                p.push(format!("configmap: config.toml is not TOML: {error}"));
                return None;
            }
        };
        let env = pod.env(m, p);
        let providers = raw
            .get("providers")
            .and_then(|v| v.as_table())
            .cloned()
            .unwrap_or_default();
        let secret = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(secret.path(), "test-client-secret\n").expect("write temp file");
        let mut validation_env = env.clone();
        let mut secret_files = BTreeMap::new();
        for (name, table) in &providers {
            // A secret inline in a ConfigMap is readable by anyone who can read ConfigMaps.
            ensure!(
                p,
                table.get("client_secret").is_none(),
                "configmap: providers.{name}.client_secret is inline; mount it as a file"
            );
            let var = format!(
                "KICK_PROXY_PROVIDERS__{}__CLIENT_SECRET_FILE",
                name.to_uppercase()
            );
            let file = env
                .iter()
                .find(|(k, _)| *k == var)
                .map(|(_, v)| v.clone())
                .or_else(|| {
                    table
                        .get("client_secret_file")
                        .and_then(|v| v.as_str())
                        .map(str::to_owned)
                });
            match file {
                Some(file) => {
                    secret_files.insert(name.clone(), file);
                }
                None => p.push(format!(
                    "configmap: providers.{name}.client_secret_file is not set"
                )),
            }
            validation_env.push((var, secret.path().display().to_string()));
        }
        let settings = match Settings::from_toml_with_env(toml_text, validation_env) {
            Ok(settings) => settings,
            Err(error) => {
                p.push(format!(
                    "configmap: config.toml with the Deployment's env does not validate: {error}"
                ));
                return None;
            }
        };
        ensure!(
            p,
            settings.log.format == LogFormat::Json,
            "configmap: log.format is not json (one object per line for the log pipeline)"
        );
        ensure!(
            p,
            !settings.rate_limit.trusted_proxies.is_empty(),
            "configmap: rate_limit.trusted_proxies is empty: behind the ingress every client would share one rate-limit bucket"
        );
        ensure!(
            p,
            settings.server.drain_delay_secs > 0,
            "configmap: server.drain_delay_secs is 0: the ingress keeps routing to a closing pod"
        );
        Some(Self {
            map_name: map.name().to_owned(),
            settings,
            secret_files,
        })
    }
}

fn check_deployment(
    m: &Manifests,
    deployment: &Yaml,
    pod: &Pod,
    config: Option<&Config>,
    p: &mut Vec<String>,
) {
    let replicas = &deployment["spec"]["replicas"];
    if hpa_of(m, deployment).is_some() {
        // kubectl apply would set the count again each time, undoing the HPA's scaling.
        ensure!(
            p,
            replicas.is_badvalue(),
            "deployment: spec.replicas is set while an HPA scales it: every apply resets the count"
        );
    } else {
        let replicas = replicas.as_i64().unwrap_or(1);
        ensure!(
            p,
            replicas >= 2,
            "deployment: replicas {replicas} < 2: one pod is an outage on every drain"
        );
    }
    ensure!(
        p,
        selects(&deployment["spec"]["selector"]["matchLabels"], &pod.labels),
        "deployment: spec.selector does not match the pod template's labels"
    );
    let spec = pod.spec;
    ensure!(
        p,
        spec["automountServiceAccountToken"].as_bool() == Some(false),
        "deployment: automountServiceAccountToken is not false"
    );
    if let Some(sa) = spec["serviceAccountName"].as_str() {
        ensure!(
            p,
            m.named("ServiceAccount", sa).is_some(),
            "deployment: ServiceAccount {sa} is not in the manifests"
        );
    }
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        ensure!(
            p,
            spec[host].as_bool() != Some(true),
            "deployment: {host} is true"
        );
    }
    ensure!(
        p,
        list(&spec["containers"]).len() == 1 && list(&spec["initContainers"]).is_empty(),
        "deployment: expected exactly one container (the proxy)"
    );

    // Security context: what the "restricted" Pod Security Standard asks, and then some.
    let c = pod.container;
    ensure!(
        p,
        pod.security("runAsNonRoot").as_bool() == Some(true),
        "deployment: runAsNonRoot is not true"
    );
    ensure!(
        p,
        pod.security("runAsUser").as_i64() == Some(NONROOT_UID),
        "deployment: runAsUser is not {NONROOT_UID} (the image's nonroot user)"
    );
    ensure!(
        p,
        text(&pod.security("seccompProfile")["type"]) == "RuntimeDefault",
        "deployment: seccompProfile is not RuntimeDefault"
    );
    let sc = &c["securityContext"];
    ensure!(
        p,
        sc["readOnlyRootFilesystem"].as_bool() == Some(true),
        "deployment: readOnlyRootFilesystem is not true"
    );
    ensure!(
        p,
        sc["allowPrivilegeEscalation"].as_bool() == Some(false),
        "deployment: allowPrivilegeEscalation is not false"
    );
    ensure!(
        p,
        sc["privileged"].as_bool() != Some(true),
        "deployment: privileged"
    );
    ensure!(
        p,
        list(&sc["capabilities"]["drop"])
            .iter()
            .any(|d| text(d) == "ALL")
            && list(&sc["capabilities"]["add"]).is_empty(),
        "deployment: capabilities do not drop ALL (or add some back)"
    );

    // Resources: requests for scheduling and the HPA, limits against a runaway pod.
    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            let v = &c["resources"][kind][resource];
            ensure!(
                p,
                v.as_str().is_some() || v.as_i64().is_some(),
                "deployment: resources.{kind}.{resource} is not set"
            );
        }
    }

    // The port the config listens on, named so probes and the Service follow it.
    let http = list(&c["ports"])
        .iter()
        .find(|port| text(&port["name"]) == "http");
    ensure!(
        p,
        http.is_some(),
        "deployment: no container port named http"
    );
    if let (Some(http), Some(config)) = (http, config) {
        let listen = config.settings.server.listen.port();
        ensure!(
            p,
            http["containerPort"].as_i64() == Some(i64::from(listen)),
            "deployment: containerPort http is not server.listen's port {listen}"
        );
    }

    // Probes: liveness on /healthz (never restarts pods for a Kick outage), readiness on /readyz.
    for (probe, path, required) in [
        ("livenessProbe", "/healthz", true),
        ("readinessProbe", "/readyz", true),
        ("startupProbe", "/healthz", false),
    ] {
        let get = &c[probe]["httpGet"];
        if !required && c[probe].is_badvalue() {
            continue;
        }
        ensure!(
            p,
            text(&get["path"]) == path && text(&get["port"]) == "http",
            "deployment: {probe} is not GET {path} on the port named http"
        );
    }

    check_pod_mounts(m, pod, config, p);

    // Shutdown timings (README "Deploying"): see deploy/kubernetes/README.md.
    if let Some(config) = config {
        let server = &config.settings.server;
        let readiness = &c["readinessProbe"];
        let period = readiness["periodSeconds"].as_i64().unwrap_or(10);
        let failures = readiness["failureThreshold"].as_i64().unwrap_or(3);
        let drain = i64::try_from(server.drain_delay_secs).unwrap_or(i64::MAX);
        ensure!(
            p,
            drain >= period * failures,
            "deployment: readiness takes up to {period} s x {failures} to notice a drain, longer than server.drain_delay_secs ({drain})"
        );
        let needed = server.drain_delay_secs + server.shutdown_grace_secs;
        let grace = spec["terminationGracePeriodSeconds"].as_i64().unwrap_or(30);
        ensure!(
            p,
            u64::try_from(grace).is_ok_and(|g| g > needed),
            "deployment: terminationGracePeriodSeconds {grace} is not above drain_delay_secs + shutdown_grace_secs ({needed})"
        );
    }

    // Replicas on different nodes.
    let spread = list(&spec["topologySpreadConstraints"]).iter().any(|t| {
        text(&t["topologyKey"]) == "kubernetes.io/hostname"
            && selects(&t["labelSelector"]["matchLabels"], &pod.labels)
    });
    let anti = &spec["affinity"]["podAntiAffinity"];
    let anti_affinity = list(&anti["requiredDuringSchedulingIgnoredDuringExecution"])
        .iter()
        .chain(
            list(&anti["preferredDuringSchedulingIgnoredDuringExecution"])
                .iter()
                .map(|w| &w["podAffinityTerm"]),
        )
        .any(|t| {
            text(&t["topologyKey"]) == "kubernetes.io/hostname"
                && selects(&t["labelSelector"]["matchLabels"], &pod.labels)
        });
    ensure!(
        p,
        spread || anti_affinity,
        "deployment: nothing spreads the replicas across nodes (topologySpreadConstraints or podAntiAffinity on kubernetes.io/hostname)"
    );
}

/// `--config` points into the ConfigMap's mount; each `client_secret_file` into a read-only Secret
/// mount holding that key.
fn check_pod_mounts(m: &Manifests, pod: &Pod, config: Option<&Config>, p: &mut Vec<String>) {
    let c = pod.container;
    let mounts = list(&c["volumeMounts"]);
    let mount_at = |dir: &str| mounts.iter().find(|v| text(&v["mountPath"]) == dir);

    let args: Vec<&str> = list(&c["args"]).iter().map(text).collect();
    let config_path = args
        .iter()
        .position(|a| *a == "--config")
        .and_then(|i| args.get(i + 1).copied())
        .or_else(|| args.iter().find_map(|a| a.strip_prefix("--config=")));
    ensure!(
        p,
        args.first() == Some(&"serve") && config_path.is_some(),
        "deployment: args are not `serve --config FILE`"
    );
    if let (Some(path), Some(config)) = (config_path, config) {
        let (dir, file) = parent_and_name(path);
        let volume = mount_at(&dir).map(|v| pod.volume(text(&v["name"])));
        let from_map = volume.is_some_and(|v| {
            text(&v["configMap"]["name"]) == config.map_name
                && key_at(v, "configMap", &file) == "config.toml"
        });
        ensure!(
            p,
            from_map,
            "deployment: --config {path} is not config.toml of the ConfigMap {} mounted at {dir}",
            config.map_name
        );
    }

    let Some(config) = config else { return };
    for (provider, path) in &config.secret_files {
        let (dir, file) = parent_and_name(path);
        let Some(mount) = mount_at(&dir) else {
            p.push(format!(
                "deployment: nothing is mounted at {dir}, where providers.{provider}.client_secret_file ({path}) points"
            ));
            continue;
        };
        ensure!(
            p,
            mount["readOnly"].as_bool() == Some(true),
            "deployment: the secret mount at {dir} is not readOnly"
        );
        let volume = pod.volume(text(&mount["name"]));
        let secret_name = text(&volume["secret"]["secretName"]);
        let key = key_at(volume, "secret", &file);
        let has_key = m
            .named("Secret", secret_name)
            .is_some_and(|s| secret_keys(s).contains(&key));
        ensure!(
            p,
            has_key,
            "deployment: {path} (client_secret_file) is not a key of a Secret in the manifests (volume {:?} key {key:?})",
            text(&mount["name"])
        );
        let modes = std::iter::once(&volume["secret"]["defaultMode"])
            .chain(list(&volume["secret"]["items"]).iter().map(|i| &i["mode"]));
        for mode in modes.filter_map(Yaml::as_i64) {
            ensure!(
                p,
                mode & 0o007 == 0,
                "deployment: secret volume defaultMode/mode {mode:#o} lets every user in the pod read the secret"
            );
        }
    }
}

/// Which key of a ConfigMap/Secret volume appears as `file` in its mount ("" if none).
fn key_at(volume: &Yaml, source: &str, file: &str) -> String {
    let items = list(&volume[source]["items"]);
    if items.is_empty() {
        return file.to_owned();
    }
    items
        .iter()
        .find(|i| text(&i["path"]) == file)
        .map(|i| text(&i["key"]).to_owned())
        .unwrap_or_default()
}

/// A Service port reaching the container port named `name` (by name, or by its number).
fn targets(port: &Yaml, name: &str, number: Option<i64>) -> bool {
    text(&port["targetPort"]) == name || (number.is_some() && port["targetPort"].as_i64() == number)
}

fn check_services(m: &Manifests, pod: &Pod, p: &mut Vec<String>) {
    // The proxy's Services (an optional component's, such as Valkey's, are checked apart).
    let services: Vec<&Doc> = m
        .of_kind("Service")
        .into_iter()
        .filter(|d| !d.file.contains('/') || d.file.starts_with("monitoring/"))
        .collect();
    ensure!(p, !services.is_empty(), "service: there is none");
    for service in &services {
        let (name, service) = (service.name(), &service.yaml);
        let kind = service["spec"]["type"].as_str().unwrap_or("ClusterIP");
        ensure!(
            p,
            kind == "ClusterIP",
            "service: type {kind}, not ClusterIP: {name} must be reached through the TLS ingress only"
        );
        ensure!(
            p,
            selects(&service["spec"]["selector"], &pod.labels),
            "service: selector does not match the pods ({name})"
        );
    }
    let ok = services.iter().any(|service| {
        list(&service.yaml["spec"]["ports"])
            .iter()
            .any(|port| port["port"].as_i64() == Some(80) && text(&port["targetPort"]) == "http")
    });
    ensure!(
        p,
        ok,
        "service: no port 80 with targetPort http (the container's named port)"
    );
}

fn check_ingress(m: &Manifests, p: &mut Vec<String>) {
    let Some(ingress) = m.one("Ingress", p) else {
        return;
    };
    let spec = &ingress["spec"];
    ensure!(
        p,
        text(&spec["ingressClassName"]) == "nginx",
        "ingress: ingressClassName is not nginx (the annotations are ingress-nginx's)"
    );
    let tls_hosts: BTreeSet<&str> = list(&spec["tls"])
        .iter()
        .filter(|t| !text(&t["secretName"]).is_empty())
        .flat_map(|t| list(&t["hosts"]).iter().map(text))
        .collect();
    ensure!(
        p,
        !tls_hosts.is_empty(),
        "ingress: no tls entry with hosts and a secretName"
    );
    for rule in list(&spec["rules"]) {
        let host = text(&rule["host"]);
        ensure!(
            p,
            tls_hosts.contains(host),
            "ingress: host {host:?} is not covered by tls"
        );
        for path in list(&rule["http"]["paths"]) {
            let backend = &path["backend"]["service"];
            let name = text(&backend["name"]);
            let ports = m
                .named("Service", name)
                .map(|s| list(&s["spec"]["ports"]))
                .unwrap_or_default();
            let routed = ports.iter().find(|port| {
                (text(&backend["port"]["name"]) == text(&port["name"])
                    && !text(&port["name"]).is_empty())
                    || (backend["port"]["number"].as_i64().is_some()
                        && backend["port"]["number"] == port["port"])
            });
            ensure!(
                p,
                routed.is_some_and(|port| text(&port["targetPort"]) == "http"),
                "ingress: a path does not route to a Service port targeting http (Service {name:?})"
            );
            // Whatever Service the Ingress reaches must not also reach the admin listener.
            ensure!(
                p,
                !ports
                    .iter()
                    .any(|port| text(&port["targetPort"]) == "metrics"),
                "ingress: routes to Service {name}, which also exposes the metrics port"
            );
        }
    }
    let annotations = string_map(&ingress["metadata"]["annotations"]);
    let annotation = |k: &str| {
        annotations
            .get(&format!("nginx.ingress.kubernetes.io/{k}"))
            .map(String::as_str)
    };
    ensure!(
        p,
        annotation("proxy-body-size") == Some("16k"),
        "ingress: proxy-body-size is not 16k (the proxy's own body limit)"
    );
    ensure!(
        p,
        annotation("force-ssl-redirect") == Some("true"),
        "ingress: force-ssl-redirect is not \"true\""
    );
}

fn check_autoscaling(m: &Manifests, deployment: &Yaml, pod: &Pod, p: &mut Vec<String>) {
    let name = text(&deployment["metadata"]["name"]);
    let replicas = replica_floor(m, deployment);
    if let Some(hpa) = m.one("HorizontalPodAutoscaler", p) {
        let spec = &hpa["spec"];
        ensure!(
            p,
            text(&hpa["apiVersion"]) == "autoscaling/v2",
            "hpa: apiVersion is not autoscaling/v2"
        );
        ensure!(
            p,
            text(&spec["scaleTargetRef"]["kind"]) == "Deployment"
                && text(&spec["scaleTargetRef"]["name"]) == name,
            "hpa: scaleTargetRef is not Deployment {name}"
        );
        let min = spec["minReplicas"].as_i64().unwrap_or(1);
        let max = spec["maxReplicas"].as_i64().unwrap_or(0);
        ensure!(p, min >= 2, "hpa: minReplicas {min} < 2");
        ensure!(p, max >= min, "hpa: maxReplicas {max} < minReplicas {min}");
        let cpu = list(&spec["metrics"]).iter().any(|metric| {
            let r = &metric["resource"];
            text(&r["name"]) == "cpu"
                && text(&r["target"]["type"]) == "Utilization"
                && r["target"]["averageUtilization"]
                    .as_i64()
                    .is_some_and(|u| (1..=100).contains(&u))
        });
        ensure!(
            p,
            cpu,
            "hpa: no CPU utilization target (needs the container's cpu request)"
        );
    }
    if let Some(pdb) = m.one("PodDisruptionBudget", p) {
        let min = pdb["spec"]["minAvailable"].as_i64().unwrap_or(0);
        ensure!(p, min >= 1, "pdb: minAvailable {min} < 1");
        // minAvailable equal to the replica count blocks every node drain.
        ensure!(
            p,
            min < replicas,
            "pdb: minAvailable {min} is not below replicas {replicas}: drains would block"
        );
        ensure!(
            p,
            selects(&pdb["spec"]["selector"]["matchLabels"], &pod.labels),
            "pdb: selector does not match the pods"
        );
    }
}

fn check_network_policy(m: &Manifests, pod: &Pod, config: Option<&Config>, p: &mut Vec<String>) {
    let Some(policy) = m.one("NetworkPolicy", p) else {
        return;
    };
    let spec = &policy["spec"];
    ensure!(
        p,
        selects(&spec["podSelector"]["matchLabels"], &pod.labels),
        "networkpolicy: podSelector does not match the pods"
    );
    let types: BTreeSet<&str> = list(&spec["policyTypes"]).iter().map(text).collect();
    ensure!(
        p,
        types.contains("Ingress") && types.contains("Egress"),
        "networkpolicy: policyTypes is not both Ingress and Egress"
    );

    let port = config.map_or(8080, |c| i64::from(c.settings.server.listen.port()));
    // The admin listener (metrics), when configured, may be opened too.
    let admin_port = config
        .and_then(|c| c.settings.server.admin_listen)
        .map(|a| i64::from(a.port()));
    let ingress = list(&spec["ingress"]);
    ensure!(p, !ingress.is_empty(), "networkpolicy: no ingress rule");
    for rule in ingress {
        let from = list(&rule["from"]);
        ensure!(
            p,
            !from.is_empty()
                && from
                    .iter()
                    .all(|f| f["ipBlock"].is_badvalue() && !f["namespaceSelector"].is_badvalue()),
            "networkpolicy: an ingress rule admits more than the ingress controller's namespace"
        );
        let ports = list(&rule["ports"]);
        ensure!(
            p,
            !ports.is_empty()
                && ports.iter().all(|x| {
                    x["port"].as_i64() == Some(port)
                        || text(&x["port"]) == "http"
                        || (admin_port.is_some() && x["port"].as_i64() == admin_port)
                }),
            "networkpolicy: an ingress rule opens more than port {port} (and the admin port)"
        );
    }

    // Egress: only (TCP, 443) and (UDP|TCP, 53). A rule without ports allows every port.
    let allowed = [("TCP", 443), ("UDP", 53), ("TCP", 53)];
    let mut seen = BTreeSet::new();
    let egress = list(&spec["egress"]);
    for rule in egress {
        let ports = list(&rule["ports"]);
        ensure!(
            p,
            !ports.is_empty(),
            "networkpolicy: an egress rule has no ports, so it allows every port"
        );
        for x in ports {
            let protocol = x["protocol"].as_str().unwrap_or("TCP");
            let number = x["port"].as_i64().unwrap_or(-1);
            ensure!(
                p,
                allowed.contains(&(protocol, number)) && x["endPort"].is_badvalue(),
                "networkpolicy: egress allows {protocol} {:?}; only TCP 443 and DNS 53 are needed",
                x["port"]
            );
            seen.insert((protocol, number));
        }
    }
    for needed in allowed {
        ensure!(
            p,
            seen.contains(&needed),
            "networkpolicy: egress does not allow {} {} (HTTPS to the provider, DNS over UDP and TCP)",
            needed.0,
            needed.1
        );
    }
}

/// The admin listener (`GET /metrics`, `server.admin_listen`) can be scraped: a container port
/// named metrics on its port, the pod's `prometheus.io/*` annotations, a Service for it, the
/// NetworkPolicy letting Prometheus in, and (optional component) a ServiceMonitor on that Service.
fn check_metrics(m: &Manifests, pod: &Pod, config: Option<&Config>, p: &mut Vec<String>) {
    let Some(admin) = config.and_then(|c| c.settings.server.admin_listen) else {
        return;
    };
    let admin = i64::from(admin.port());
    let port = list(&pod.container["ports"])
        .iter()
        .find(|x| text(&x["name"]) == "metrics");
    ensure!(
        p,
        port.is_some_and(|x| x["containerPort"].as_i64() == Some(admin)),
        "deployment: no containerPort named metrics on server.admin_listen's port {admin}"
    );
    for (key, want) in [
        ("prometheus.io/scrape", "true".to_owned()),
        ("prometheus.io/port", admin.to_string()),
        ("prometheus.io/path", "/metrics".to_owned()),
    ] {
        ensure!(
            p,
            pod.annotations.get(key) == Some(&want),
            "deployment: pod annotation {key} is not {want:?} (annotation-based Prometheus discovery)"
        );
    }

    let metrics_services: Vec<&Doc> = m
        .of_kind("Service")
        .into_iter()
        .filter(|s| {
            list(&s.yaml["spec"]["ports"])
                .iter()
                .any(|x| targets(x, "metrics", Some(admin)))
        })
        .collect();
    ensure!(
        p,
        !metrics_services.is_empty(),
        "service: no Service exposes the metrics port (server.admin_listen, {admin})"
    );
    for monitor in m.of_kind("ServiceMonitor") {
        let monitor = &monitor.yaml;
        ensure!(
            p,
            text(&monitor["apiVersion"]) == "monitoring.coreos.com/v1",
            "servicemonitor: apiVersion is not monitoring.coreos.com/v1"
        );
        let selector = &monitor["spec"]["selector"]["matchLabels"];
        let port_names: BTreeSet<&str> = metrics_services
            .iter()
            .filter(|s| selects(selector, &string_map(&s.yaml["metadata"]["labels"])))
            .flat_map(|s| list(&s.yaml["spec"]["ports"]))
            .filter(|x| targets(x, "metrics", Some(admin)))
            .map(|x| text(&x["name"]))
            .collect();
        ensure!(
            p,
            !port_names.is_empty(),
            "servicemonitor: selector matches no Service exposing the metrics port"
        );
        let endpoints = list(&monitor["spec"]["endpoints"]);
        ensure!(
            p,
            !endpoints.is_empty()
                && endpoints.iter().all(|e| {
                    port_names.contains(text(&e["port"])) && text(&e["path"]) == "/metrics"
                }),
            "servicemonitor: an endpoint is not GET /metrics on the metrics Service's port {port_names:?}"
        );
    }
    if let Some(policy) = m.of_kind("NetworkPolicy").first() {
        let admitted = list(&policy.yaml["spec"]["ingress"]).iter().any(|rule| {
            list(&rule["ports"])
                .iter()
                .any(|x| x["port"].as_i64() == Some(admin))
        });
        ensure!(
            p,
            admitted,
            "networkpolicy: no ingress rule admits the metrics port {admin}: Prometheus cannot scrape"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Tests: the manifests

#[test]
fn shipped_manifests_pass_every_check() {
    let problems = problems(&Files::filled_in());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn shipped_manifests_are_refused_at_start_up_until_the_client_id_is_filled_in() {
    let problems = problems(&Files::shipped());
    assert!(
        problems.iter().any(|p| p.contains("does not validate")
            && p.contains("`providers.kick.client_id`")
            && p.contains(&format!("placeholder {PLACEHOLDER_CLIENT_ID:?}"))),
        "{problems:?}"
    );
}

#[test]
fn configmap_config_validates_with_the_deployments_env_and_a_mounted_secret() {
    let files = Files::filled_in();
    let mut p = Vec::new();
    let m = Manifests::parse(&files, &mut p);
    let deployment = m.one("Deployment", &mut p).expect("a Deployment");
    let pod = Pod::of(deployment);
    let config = Config::check(&m, &pod, &mut p).expect("config.toml validates");
    assert!(p.is_empty(), "{}", p.join("\n"));

    let kick = &config.settings.providers["kick"];
    let client_id = string_map(&m.named("ConfigMap", &config.map_name).expect("map")["data"])
        ["client_id"]
        .clone();
    assert_eq!(
        kick.client_id, client_id,
        "the client id comes from the ConfigMap through KICK_PROXY_PROVIDERS__KICK__CLIENT_ID"
    );
    assert_eq!(
        config.secret_files["kick"],
        "/run/secrets/kick/client_secret"
    );
    assert_eq!(config.settings.server.drain_delay_secs, 5);
    assert_eq!(config.settings.log.format, LogFormat::Json);
}

/// Each line breaks the shipped manifests one way; the checks must name the breakage.
/// (file, text to replace, replacement, every occurrence, words the problem must contain)
#[rustfmt::skip]
const REGRESSIONS: &[(&str, &str, &str, bool, &str)] = &[
    ("service.yaml", "spec:", "spec: [", false, "not valid YAML"),
    ("service.yaml", "metadata:\n  name: kick-oauth-proxy\n", "metadata:\n", false, "no metadata.name"),
    ("pdb.yaml", "namespace: kick-oauth-proxy", "namespace: default", false, "metadata.namespace"),
    ("kustomization.yaml", "  - hpa.yaml\n", "", false, "does not list hpa.yaml"),
    ("kustomization.yaml", "  - pdb.yaml\n", "  - pdb.yaml\n  - secret.example.yaml\n", false, "overwrite the real Secret"),
    ("deployment.yaml", "  revisionHistoryLimit: 5", "  replicas: 2\n  revisionHistoryLimit: 5", false, "every apply resets the count"),
    ("kustomization.yaml", "  - service-metrics.yaml\n", "", false, "does not list service-metrics.yaml"),
    ("monitoring/kustomization.yaml", "  - servicemonitor.yaml\n", "", false, "the directory holds"),
    ("monitoring/kustomization.yaml", "kind: Component", "kind: Kustomization", false, "not a kustomize Component"),
    ("deployment.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", false, "readOnlyRootFilesystem"),
    ("deployment.yaml", "            readOnlyRootFilesystem: true\n", "", false, "readOnlyRootFilesystem"),
    ("deployment.yaml", "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true", false, "allowPrivilegeEscalation"),
    ("deployment.yaml", "drop: [\"ALL\"]", "drop: [\"NET_RAW\"]", false, "drop ALL"),
    ("deployment.yaml", "runAsNonRoot: true", "runAsNonRoot: false", true, "runAsNonRoot"),
    ("deployment.yaml", "runAsUser: 65532", "runAsUser: 0", true, "runAsUser"),
    ("deployment.yaml", "type: RuntimeDefault", "type: Unconfined", true, "seccompProfile"),
    ("deployment.yaml", "automountServiceAccountToken: false", "automountServiceAccountToken: true", false, "automountServiceAccountToken"),
    ("deployment.yaml", "livenessProbe:\n            httpGet:\n              path: /healthz", "livenessProbe:\n            httpGet:\n              path: /readyz", false, "livenessProbe"),
    ("deployment.yaml", "path: /readyz", "path: /healthz", false, "readinessProbe"),
    ("deployment.yaml", "path: /readyz\n              port: http", "path: /readyz\n              port: 8080", false, "readinessProbe"),
    ("deployment.yaml", "periodSeconds: 2", "periodSeconds: 10", false, "drain_delay_secs"),
    ("deployment.yaml", "terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds: 25", false, "terminationGracePeriodSeconds 25"),
    ("configmap.yaml", "shutdown_grace_secs = 20", "shutdown_grace_secs = 40", false, "terminationGracePeriodSeconds 30"),
    ("configmap.yaml", "drain_delay_secs = 5", "drain_delay_secs = 0", false, "drain_delay_secs is 0"),
    ("deployment.yaml", "              memory: 128Mi\n", "", false, "resources.limits.memory"),
    ("deployment.yaml", "              cpu: 50m\n", "", false, "resources.requests.cpu"),
    ("deployment.yaml", "mountPath: /run/secrets/kick\n              readOnly: true", "mountPath: /run/secrets/kick\n              readOnly: false", false, "not readOnly"),
    ("deployment.yaml", "mountPath: /run/secrets/kick", "mountPath: /run/secrets/other", false, "nothing is mounted at /run/secrets/kick"),
    ("configmap.yaml", "/run/secrets/kick/client_secret", "/run/secrets/kick_client_secret", false, "nothing is mounted at /run/secrets"),
    ("deployment.yaml", "- key: client_secret", "- key: secret", false, "not a key of a Secret"),
    ("deployment.yaml", "defaultMode: 288", "defaultMode: 420", false, "defaultMode"),
    ("deployment.yaml", "/etc/kick-oauth-proxy/config.toml", "/etc/other/config.toml", false, "--config"),
    ("deployment.yaml", "path: config.toml", "path: settings.toml", false, "--config"),
    ("deployment.yaml", "name: KICK_PROXY_PROVIDERS__KICK__CLIENT_ID", "name: KICK_PROXY_PROVIDERS__KICK__CLIENTID", false, "does not validate"),
    ("deployment.yaml", "name: KICK_PROXY_PROVIDERS__KICK__CLIENT_ID", "name: KICK_PROXY_CLIENT_ID", false, "no `__`"),
    ("deployment.yaml", "key: client_id", "key: clientid", false, "has no key clientid"),
    ("configmap.yaml", "format = \"json\"", "format = \"text\"", false, "log.format"),
    ("configmap.yaml", "trusted_proxies = [\"10.244.0.0/16\"]", "trusted_proxies = []", false, "trusted_proxies"),
    ("configmap.yaml", "drain_delay_secs = 5", "drain_delay = 5", false, "does not validate"),
    ("configmap.yaml", "    client_secret_file = ", "    client_secret = \"x\"\n    client_secret_file = ", false, "inline"),
    ("deployment.yaml", "containerPort: 8080", "containerPort: 9090", false, "server.listen"),
    ("deployment.yaml", "topologyKey: kubernetes.io/hostname", "topologyKey: example.com/rack", false, "across nodes"),
    ("service.yaml", "targetPort: http", "targetPort: 8080", false, "targetPort"),
    ("service.yaml", "      protocol: TCP\n", "      protocol: TCP\n    - name: metrics\n      port: 9090\n      targetPort: metrics\n", false, "also exposes the metrics port"),
    ("service-metrics.yaml", "targetPort: metrics", "targetPort: http", false, "no Service exposes the metrics port"),
    ("service-metrics.yaml", "type: ClusterIP", "type: NodePort", false, "not ClusterIP"),
    ("deployment.yaml", "containerPort: 9090", "containerPort: 9091", false, "containerPort named metrics"),
    ("deployment.yaml", "prometheus.io/scrape: \"true\"", "prometheus.io/scrape: \"false\"", false, "prometheus.io/scrape"),
    ("deployment.yaml", "prometheus.io/port: \"9090\"", "prometheus.io/port: \"8080\"", false, "prometheus.io/port"),
    ("deployment.yaml", "prometheus.io/path: /metrics", "prometheus.io/path: /", false, "prometheus.io/path"),
    ("monitoring/servicemonitor.yaml", "    - port: metrics", "    - port: http", false, "servicemonitor: an endpoint"),
    ("monitoring/servicemonitor.yaml", "path: /metrics", "path: /healthz", false, "servicemonitor: an endpoint"),
    ("monitoring/servicemonitor.yaml", "      app.kubernetes.io/component: metrics", "      app.kubernetes.io/component: web", false, "servicemonitor: selector"),
    ("monitoring/servicemonitor.yaml", "namespace: kick-oauth-proxy", "namespace: monitoring", false, "metadata.namespace"),
    ("networkpolicy.yaml", "      ports:\n        - protocol: TCP\n          port: 9090\n", "      ports:\n        - protocol: TCP\n          port: 8080\n", false, "admits the metrics port"),
    ("service.yaml", "type: ClusterIP", "type: LoadBalancer", false, "not ClusterIP"),
    ("service.yaml", "  selector:\n    app.kubernetes.io/name: kick-oauth-proxy", "  selector:\n    app.kubernetes.io/name: other", false, "service: selector"),
    ("ingress.yaml", "  tls:\n    - hosts:\n        - proxy.example.com\n      secretName: kick-oauth-proxy-tls\n", "", false, "no tls"),
    ("ingress.yaml", "secretName: kick-oauth-proxy-tls", "secretName: \"\"", false, "no tls"),
    ("ingress.yaml", "proxy-body-size: \"16k\"", "proxy-body-size: \"1m\"", false, "proxy-body-size"),
    ("ingress.yaml", "force-ssl-redirect: \"true\"", "force-ssl-redirect: \"false\"", false, "force-ssl-redirect"),
    ("ingress.yaml", "ingressClassName: nginx", "ingressClassName: traefik", false, "ingressClassName"),
    ("hpa.yaml", "minReplicas: 2", "minReplicas: 1", false, "minReplicas 1 < 2"),
    ("hpa.yaml", "kind: Deployment\n    name: kick-oauth-proxy", "kind: Deployment\n    name: other", false, "scaleTargetRef"),
    ("pdb.yaml", "minAvailable: 1", "minAvailable: 0", false, "minAvailable 0 < 1"),
    ("pdb.yaml", "minAvailable: 1", "minAvailable: 2", false, "drains would block"),
    ("networkpolicy.yaml", "port: 443", "port: 80", false, "egress allows TCP"),
    ("networkpolicy.yaml", "      ports:\n        - protocol: TCP\n          port: 443\n", "", false, "allows every port"),
    ("networkpolicy.yaml", "        - protocol: TCP\n          port: 53\n", "", false, "does not allow TCP 53"),
    ("networkpolicy.yaml", "policyTypes: [\"Ingress\", \"Egress\"]", "policyTypes: [\"Ingress\"]", false, "policyTypes"),
    ("networkpolicy.yaml", "port: 8080", "port: 9000", false, "opens more than port 8080"),
    ("networkpolicy.yaml", "        - namespaceSelector:", "        - ipBlock:\n            cidr: 0.0.0.0/0\n        - namespaceSelector:", false, "admits more"),
];

/// The READMEs summarise the NetworkPolicy in one line each: they name every port it admits, and
/// the HTTPS egress.
#[test]
fn readme_network_policy_summaries_name_every_port_the_policy_opens() {
    let mut p = Vec::new();
    let m = Manifests::parse(&Files::filled_in(), &mut p);
    let policy = m.one("NetworkPolicy", &mut p).expect("a NetworkPolicy");
    let mut ports: BTreeSet<i64> = list(&policy["spec"]["ingress"])
        .iter()
        .flat_map(|rule| list(&rule["ports"]))
        .filter_map(|x| x["port"].as_i64())
        .collect();
    ports.insert(443);
    assert!(ports.len() >= 3, "{ports:?}");

    let one_line = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    let readme = one_line(&repo_file("README.md"));
    let main = readme
        .split_once("NetworkPolicy (in:")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(summary, _)| summary.to_owned())
        .expect("README: `NetworkPolicy (in: …)`");
    let kubernetes = repo_file("deploy/kubernetes/README.md")
        .lines()
        .find(|l| l.starts_with("| `networkpolicy.yaml` |"))
        .expect("deploy/kubernetes/README.md: the networkpolicy.yaml row")
        .to_owned();
    for (readme, summary) in [
        ("README.md", main),
        ("deploy/kubernetes/README.md", kubernetes),
    ] {
        for port in &ports {
            assert!(
                summary.contains(&port.to_string()),
                "{readme}: the NetworkPolicy summary does not name port {port}: {summary}"
            );
        }
    }
}

#[test]
fn every_manifest_regression_is_caught() {
    let shipped = Files::filled_in();
    let mut missed = Vec::new();
    for (file, from, to, all, expected) in REGRESSIONS {
        let problems = problems(&shipped.with(file, from, to, *all));
        if !problems.iter().any(|p| p.contains(expected)) {
            missed.push(format!(
                "{file}: {from:?} -> {to:?} was not reported as {expected:?}; problems: {problems:?}"
            ));
        }
    }
    assert!(missed.is_empty(), "{}", missed.join("\n"));
}

/// The optional `state` component: a Valkey with no persistence and a memory cap, reachable from
/// the proxy's pods only (its own policy) and by them (an egress rule on 6379, since the base policy
/// excludes private ranges), and the proxy pointed at it with the state secret mounted.
#[test]
fn the_state_component_runs_valkey_without_persistence_and_opens_egress_to_it() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/state");
    let component = std::fs::read_to_string(dir.join("kustomization.yaml")).expect("component");
    let valkey = std::fs::read_to_string(dir.join("valkey.yaml")).expect("valkey.yaml");
    let docs = YamlLoader::load_from_str(&valkey).expect("YAML");
    let of =
        |kind: &str| -> Vec<&Yaml> { docs.iter().filter(|d| text(&d["kind"]) == kind).collect() };
    let deployment = of("Deployment")[0];
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &list(&pod["containers"])[0];
    let args: Vec<&str> = list(&container["args"]).iter().map(text).collect();
    for pair in [
        ["--save", ""],
        ["--appendonly", "no"],
        ["--maxmemory-policy", "noeviction"],
    ] {
        assert!(
            args.windows(2).any(|w| w == pair),
            "valkey args {args:?} lack {pair:?}"
        );
    }
    assert!(args.contains(&"--maxmemory"), "a memory cap: {args:?}");
    assert!(
        !text(&container["resources"]["limits"]["memory"]).is_empty(),
        "a memory limit"
    );
    for volume in list(&pod["volumes"]) {
        assert!(
            volume["persistentVolumeClaim"].is_badvalue(),
            "no persistence"
        );
    }
    let service = of("Service")[0];
    assert_eq!(
        text(&service["metadata"]["name"]),
        "kick-oauth-proxy-valkey"
    );
    let egress = of("NetworkPolicy")
        .into_iter()
        .find(|p| text(&p["metadata"]["name"]) == "kick-oauth-proxy-to-valkey")
        .expect("an egress policy for the proxy");
    assert_eq!(
        text(&egress["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"]),
        "kick-oauth-proxy"
    );
    let rule = &list(&egress["spec"]["egress"])[0];
    assert_eq!(list(&rule["ports"])[0]["port"].as_i64(), Some(6379));
    assert_eq!(
        text(&list(&rule["to"])[0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"]),
        "kick-oauth-proxy-valkey"
    );
    for needed in [
        "KICK_PROXY_STATE__BACKEND, value: redis",
        "redis://kick-oauth-proxy-valkey:6379",
        "KICK_PROXY_STATE__SECRET_FILE, value: /run/secrets/kick/state_secret",
        "{key: state_secret, path: state_secret}",
    ] {
        assert!(component.contains(needed), "the component sets {needed}");
    }
    let secret = std::fs::read_to_string(dir.join("../secret.example.yaml")).expect("secret");
    assert!(
        secret.contains("state_secret:"),
        "the Secret example has the state secret"
    );
    // What the component sets validates, and the shipped placeholder is refused.
    let env = |secret_file: &str| {
        vec![
            ("KICK_PROXY_STATE__BACKEND".to_owned(), "redis".to_owned()),
            (
                "KICK_PROXY_STATE__REDIS__URL".to_owned(),
                "redis://kick-oauth-proxy-valkey:6379".to_owned(),
            ),
            (
                "KICK_PROXY_STATE__SECRET_FILE".to_owned(),
                secret_file.to_owned(),
            ),
        ]
    };
    let tmp = tempfile::tempdir().expect("dir");
    let good = tmp.path().join("state_secret");
    std::fs::write(
        &good,
        "c3RhdGUtc2VjcmV0LWZvci10ZXN0cy0wMTIzNDU2Nzg5YWJjZGVm\n",
    )
    .expect("write");
    let placeholder = tmp.path().join("placeholder");
    std::fs::write(
        &placeholder,
        "replace-with-32-random-bytes-shared-by-every-replica",
    )
    .expect("write");
    let base = "[providers.kick]\nclient_id = \"01KX\"\nclient_secret = \"s\"\nallowed_redirect_uris = [\"http://localhost:1420/cb\"]\n";
    let ok = Settings::from_toml_with_env(base, env(good.to_str().expect("utf-8"))).expect("valid");
    assert_eq!(ok.state.backend(), "redis");
    let refused = Settings::from_toml_with_env(base, env(placeholder.to_str().expect("utf-8")))
        .expect_err("placeholder refused");
    assert_eq!(refused.key, "state.secret_file");
}
