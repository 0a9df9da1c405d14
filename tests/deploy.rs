//! The deployment files in deploy/: the systemd unit passes
//! `systemd-analyze verify`, the Kubernetes manifests pass a schema check
//! (`kubernetes-validate --strict`) and agree with each other and with the
//! daemon (names, ports, paths, probes that the router serves), and the
//! Containerfile's stages and command line fit the binary. No container
//! engine runs here, so the image itself is not built.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_yaml::Value;
use support::{have_command, require};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn watchdog() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
}

/// Runs the binary with `args` plus `--check-config`; panics with its stderr.
fn check_config(args: &[String]) -> String {
    // The configurations name the admin token where the install creates it
    // (/etc/ocfs2-watchdog/..., a Kubernetes Secret); a scratch token stands in.
    let scratch = tempfile::tempdir().unwrap();
    let token = scratch.path().join("admin-token");
    std::fs::write(&token, "0123456789abcdef0123456789abcdef\n").unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let rewrite = |path: &str| {
        let text: String = std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|line| {
                if line.trim_start().starts_with("admin_token_file") {
                    format!("admin_token_file = \"{}\"\n", token.display())
                } else {
                    format!("{line}\n")
                }
            })
            .collect();
        let copy = scratch.path().join("config.toml");
        std::fs::write(&copy, text).unwrap();
        copy.display().to_string()
    };
    let mut rewritten: Vec<String> = Vec::new();
    for arg in args {
        if let Some(path) = arg.strip_prefix("--config=") {
            rewritten.push(format!("--config={}", rewrite(path)));
        } else if rewritten
            .last()
            .is_some_and(|previous| previous == "--config")
        {
            rewritten.push(rewrite(arg));
        } else {
            rewritten.push(arg.clone());
        }
    }
    let args = rewritten;
    let output = watchdog()
        .args(&args)
        .arg("--check-config")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{args:?}: {stderr}");
    String::from_utf8(output.stdout).unwrap()
}

// --- systemd -----------------------------------------------------------------

const UNIT: &str = "deploy/systemd/ocfs2-watchdog.service";

/// `key=value` lines of the unit, comments dropped.
fn unit_settings() -> Vec<(String, String)> {
    read(UNIT)
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn setting(settings: &[(String, String)], key: &str) -> Option<String> {
    settings
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    if !require(
        have_command("systemd-analyze"),
        "systemd-analyze (Debian package systemd)",
    ) {
        return;
    }
    // verify checks that ExecStart's binary exists: point it at this build.
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("ocfs2-watchdog.service");
    std::fs::write(
        &unit,
        read(UNIT).replace(
            "/usr/local/bin/ocfs2-watchdog",
            env!("CARGO_BIN_EXE_ocfs2-watchdog"),
        ),
    )
    .unwrap();
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // Unknown keys and unparsable values are only warnings: fail on them.
    let about_unit: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("ocfs2-watchdog.service"))
        .collect();
    assert!(about_unit.is_empty(), "{}", about_unit.join("\n"));
}

#[test]
fn systemd_unit_keeps_the_settings_the_daemon_relies_on() {
    let settings = unit_settings();
    let get = |key| setting(&settings, key).unwrap_or_else(|| panic!("{key} missing"));
    assert_eq!(get("Type"), "notify");
    assert_eq!(get("Restart"), "on-failure");
    assert_eq!(get("StateDirectory"), "ocfs2-watchdog");
    assert!(
        get("After").contains("o2cb.service") && get("After").contains("network-online.target")
    );
    assert_eq!(get("Wants"), "network-online.target");
    // Ordering only: a broken o2cb must not stop the watchdog.
    assert!(setting(&settings, "Requires").is_none());
    assert!(setting(&settings, "BindsTo").is_none());
    let watchdog = humantime::parse_duration(&get("WatchdogSec")).unwrap();
    let defaults = ocfs2_watchdog::config::Config::default();
    assert!(watchdog >= defaults.sampler.interval * 3);
    let mut caps: Vec<String> = get("CapabilityBoundingSet")
        .split_whitespace()
        .map(String::from)
        .collect();
    caps.sort();
    assert_eq!(
        caps,
        [
            "CAP_DAC_READ_SEARCH",
            "CAP_SYSLOG",
            "CAP_SYS_ADMIN",
            "CAP_SYS_PTRACE"
        ]
    );
    // Each of these runs the daemon in its own mount namespace or hides
    // what it must see (docs in the unit); they must stay out.
    for forbidden in [
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "PrivateMounts",
        "PrivateNetwork",
        "ProtectKernelTunables",
        "ProtectKernelLogs",
        "ProtectKernelModules",
        "DevicePolicy",
        "MountFlags",
    ] {
        assert!(
            setting(&settings, forbidden).is_none(),
            "{forbidden} would break mounts"
        );
    }
    // The open-file limit holds the default connection caps and the
    // reserve without lowering the scrape cap.
    let limit: u64 = get("LimitNOFILE").parse().unwrap();
    let budget =
        ocfs2_watchdog::http::fdlimit::budget(limit, defaults.web.limits.max_connections).unwrap();
    assert_eq!(budget.scrape, defaults.web.limits.max_connections);
    // The default state_dir is the StateDirectory.
    assert_eq!(
        defaults.state_dir.0,
        Path::new("/var/lib").join(get("StateDirectory"))
    );
    // ExecStart's flags parse, with the shipped example config.
    let exec: Vec<String> = get("ExecStart")
        .split_whitespace()
        .skip(1)
        .map(|arg| {
            arg.replace(
                "/etc/ocfs2-watchdog/config.toml",
                &repo("deploy/config.example.toml").display().to_string(),
            )
        })
        .collect();
    let effective = check_config(&exec);
    assert!(
        effective.contains("max_concurrent_scrapes = 8"),
        "{effective}"
    );
}

// --- Kubernetes --------------------------------------------------------------

const DAEMONSET: &str = "deploy/kubernetes/daemonset.yaml";
const SERVICEMONITOR: &str = "deploy/kubernetes/servicemonitor.yaml";

#[test]
fn kubernetes_manifests_pass_the_schema_check() {
    if !require(
        have_command("kubernetes-validate"),
        "kubernetes-validate (pip install kubernetes-validate)",
    ) {
        return;
    }
    // ServiceMonitor is a CRD without a bundled schema: checked below.
    let output = Command::new("kubernetes-validate")
        .args(["--strict", "--quiet"])
        .arg(repo(DAEMONSET))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn documents(path: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(&read(path))
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{path}: {e}")))
        .collect()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value:?}"))
}

fn seq(value: &Value) -> &Vec<Value> {
    value
        .as_sequence()
        .unwrap_or_else(|| panic!("not a list: {value:?}"))
}

fn named<'a>(list: &'a Value, name: &str) -> &'a Value {
    seq(list)
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no entry named {name} in {list:?}"))
}

#[test]
fn kubernetes_manifests_agree_with_each_other_and_the_daemon() {
    let docs = documents(DAEMONSET);
    let namespace = text(&kind(&docs, "Namespace")["metadata"]["name"]);
    for doc in &docs[1..] {
        assert_eq!(text(&doc["metadata"]["namespace"]), namespace);
    }
    let daemonset = kind(&docs, "DaemonSet");
    let pod = &daemonset["spec"]["template"];
    let spec = &pod["spec"];
    assert_eq!(spec["hostPID"], true);
    assert_eq!(spec["hostNetwork"], true);
    assert!(seq(&spec["tolerations"])
        .iter()
        .any(|t| t["operator"] == "Exists" && t.get("key").is_none()));
    let labels = &pod["metadata"]["labels"];
    for (key, value) in daemonset["spec"]["selector"]["matchLabels"]
        .as_mapping()
        .unwrap()
    {
        assert_eq!(&labels[key.as_str().unwrap()], value);
    }
    let containers = seq(&spec["containers"]);
    assert_eq!(containers.len(), 1);
    let container = &containers[0];
    assert_eq!(container["securityContext"]["privileged"], true);
    for resources in ["requests", "limits"] {
        assert!(container["resources"][resources]["memory"].is_string());
    }

    // Host root at /host, Bidirectional, and the daemon told so.
    let host_root = named(&container["volumeMounts"], "host-root");
    assert_eq!(text(&host_root["mountPath"]), "/host");
    assert_eq!(text(&host_root["mountPropagation"]), "Bidirectional");
    assert_eq!(
        text(&named(&spec["volumes"], "host-root")["hostPath"]["path"]),
        "/"
    );
    let args: Vec<String> = seq(&container["args"])
        .iter()
        .map(|a| text(a).to_string())
        .collect();
    assert!(
        args.contains(&"--path.rootfs=/host".to_string()),
        "{args:?}"
    );

    // The config comes from the ConfigMap, mounted where --config says.
    let configmap = kind(&docs, "ConfigMap");
    let config_volume = named(&spec["volumes"], "config");
    assert_eq!(
        config_volume["configMap"]["name"],
        configmap["metadata"]["name"]
    );
    let config_dir = text(&named(&container["volumeMounts"], "config")["mountPath"]);
    let config_path = format!("{config_dir}/config.toml");
    assert!(
        args.contains(&format!("--config={config_path}")),
        "{args:?}"
    );
    let config_text = text(&configmap["data"]["config.toml"]);
    let config: ocfs2_watchdog::config::Config =
        ocfs2_watchdog::config::Config::parse(config_text, Path::new("configmap")).unwrap();

    // The token files it names come from the Secret's keys.
    let secret = kind(&docs, "Secret");
    let tokens_volume = named(&spec["volumes"], "tokens");
    assert_eq!(
        tokens_volume["secret"]["secretName"],
        secret["metadata"]["name"]
    );
    let tokens_dir = text(&named(&container["volumeMounts"], "tokens")["mountPath"]);
    let token_file = config.web.auth.bearer_token_file.clone().unwrap();
    let token_key = token_file
        .strip_prefix(tokens_dir)
        .unwrap_or_else(|_| panic!("{} not under {tokens_dir}", token_file.display()));
    assert!(secret["stringData"][token_key.to_str().unwrap()].is_string());
    assert!(
        config_text.contains(&format!("{tokens_dir}/admin-token"))
            && secret["stringData"]["admin-token"].is_string(),
        "the admin token file is prepared"
    );

    // State on the host, where the config puts it.
    let state = named(&spec["volumes"], "state");
    assert_eq!(
        Path::new(text(&state["hostPath"]["path"])),
        config.state_dir.0
    );
    assert_eq!(
        Path::new(text(
            &named(&container["volumeMounts"], "state")["mountPath"]
        )),
        config.state_dir.0
    );

    // One port everywhere: config, container, annotations, Service.
    let port: u16 = config
        .web
        .listen_address
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let container_port = named(&container["ports"], "metrics");
    assert_eq!(container_port["containerPort"].as_u64(), Some(port.into()));
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(text(&annotations["prometheus.io/port"]), port.to_string());
    assert_eq!(text(&annotations["prometheus.io/scrape"]), "true");
    let service = kind(&docs, "Service");
    let service_port = named(&service["spec"]["ports"], "metrics");
    assert_eq!(service_port["targetPort"], "metrics");
    assert_eq!(
        service["spec"]["selector"],
        daemonset["spec"]["selector"]["matchLabels"]
    );

    // Probes name the port and paths the router serves without credentials.
    let probe_paths: Vec<&str> = ["livenessProbe", "readinessProbe"]
        .iter()
        .map(|probe| {
            let get = &container[*probe]["httpGet"];
            assert_eq!(get["port"], "metrics");
            assert_eq!(
                get["scheme"],
                if config.web.tls.is_some() {
                    "HTTPS"
                } else {
                    "HTTP"
                }
            );
            text(&get["path"])
        })
        .collect();
    assert_eq!(probe_paths, ["/healthz", "/readyz"]);
    assert_probes_answer_without_credentials(&config, &probe_paths);

    // The ServiceMonitor scrapes this Service with the Secret's token.
    let monitor = &documents(SERVICEMONITOR)[0];
    assert_eq!(text(&monitor["kind"]), "ServiceMonitor");
    assert_eq!(monitor["metadata"]["namespace"], namespace);
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"],
        service["metadata"]["labels"]
    );
    let endpoint = &seq(&monitor["spec"]["endpoints"])[0];
    assert_eq!(endpoint["port"], service_port["name"]);
    assert_eq!(text(&endpoint["path"]), "/metrics");
    let credentials = &endpoint["authorization"]["credentials"];
    assert_eq!(credentials["name"], secret["metadata"]["name"]);
    assert_eq!(text(&credentials["key"]), token_key.to_str().unwrap());

    // And the daemon accepts exactly these args with this config.
    let dir = tempfile::tempdir().unwrap();
    let local_token = dir.path().join(token_key);
    std::fs::write(&local_token, "t").unwrap();
    let local_config = dir.path().join("config.toml");
    std::fs::write(
        &local_config,
        config_text.replace(token_file.to_str().unwrap(), local_token.to_str().unwrap()),
    )
    .unwrap();
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace(&config_path, local_config.to_str().unwrap()))
        .collect();
    check_config(&args);
}

/// Serves the router with the manifest's `[web]` settings (token file
/// replaced) and checks the probe paths answer 200 or 503, never 401/404.
fn assert_probes_answer_without_credentials(
    config: &ocfs2_watchdog::config::Config,
    paths: &[&str],
) {
    use ocfs2_watchdog::http::{router_with, AppState, Security};
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "0123456789abcdef0123456789abcdef").unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut web = config.web.clone();
    web.auth.bearer_token_file = Some(token.clone());
    web.admin_token_file = web.admin_token_file.as_ref().map(|_| token);
    let security = Security::from_config(&web).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_publish, snapshots) =
        tokio::sync::watch::channel(Arc::new(ocfs2_watchdog::snapshot::Snapshot::empty()));
    let state = AppState {
        snapshots,
        health: Arc::new(ocfs2_watchdog::sampler::Health::default()),
        interval: Duration::from_secs(2),
        started: Instant::now(),
        check: Default::default(),
    };
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let app = router_with(state, &security, axum::Router::new());
    std::thread::spawn(move || {
        runtime.block_on(async move {
            let _ = axum::serve(listener, app).await;
        })
    });
    for path in paths {
        let status = support::http_get(&address, path).unwrap().0;
        assert!(status == 200 || status == 503, "{path}: {status}");
    }
    assert_eq!(support::http_get(&address, "/metrics").unwrap().0, 401);
}

// --- Container ---------------------------------------------------------------

const CONTAINERFILE: &str = "deploy/container/Containerfile";

/// Containerfile instructions, continuation lines joined, comments dropped.
fn instructions() -> Vec<(String, String)> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in read(CONTAINERFILE).lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(start) = line.strip_suffix('\\') {
            current.push_str(start);
            current.push(' ');
            continue;
        }
        current.push_str(line);
        joined.push(std::mem::take(&mut current));
    }
    joined
        .into_iter()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (op, rest) = l.split_once(' ').unwrap_or((&l, ""));
            (op.to_uppercase(), rest.trim().to_string())
        })
        .collect()
}

#[test]
fn containerfile_stages_and_command_fit_the_binary() {
    let instructions = instructions();
    // Stages: FROM <image> AS <name>; COPY --from names an earlier stage.
    let mut stages: Vec<String> = Vec::new();
    let mut copied_binary = None;
    let mut built_binary = None;
    for (op, rest) in &instructions {
        match op.as_str() {
            "FROM" => {
                let words: Vec<&str> = rest.split_whitespace().collect();
                assert!(
                    words.len() == 3 && words[1].eq_ignore_ascii_case("as"),
                    "unnamed stage: FROM {rest}"
                );
                stages.push(words[2].to_string());
            }
            "RUN" if rest.contains("cargo build") => {
                assert!(rest.contains("--locked") && rest.contains("--release"));
                assert!(rest.contains(&format!("--bin {}", env!("CARGO_PKG_NAME"))));
                let install = rest
                    .split("install ")
                    .nth(1)
                    .expect("install of the binary");
                built_binary = install.split_whitespace().last().map(String::from);
            }
            "COPY" if rest.starts_with("--from=") => {
                let words: Vec<&str> = rest.split_whitespace().collect();
                let from = words[0].trim_start_matches("--from=");
                assert!(
                    stages[..stages.len() - 1].iter().any(|s| s == from),
                    "COPY --from={from}: no earlier stage of that name in {stages:?}"
                );
                assert_eq!(
                    Some(words[1].to_string()),
                    built_binary,
                    "copies what was built"
                );
                copied_binary = Some(words[2].to_string());
            }
            _ => {}
        }
    }
    assert_eq!(stages, ["builder", "runtime"]);
    let copied_binary = copied_binary.expect("the binary is copied into the runtime stage");

    // The builder's toolchain is at least the crate's rust-version.
    let arg = instructions
        .iter()
        .find_map(|(op, rest)| {
            (op == "ARG")
                .then(|| rest.strip_prefix("RUST_VERSION="))
                .flatten()
        })
        .expect("ARG RUST_VERSION");
    let manifest = read("Cargo.toml");
    let msrv = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    let version = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap()).collect() };
    assert!(version(arg) >= version(msrv), "{arg} < {msrv}");

    // ENTRYPOINT runs the copied binary (under tini), CMD gives the flags.
    let exec_form = |op: &str| -> Vec<String> {
        let rest = &instructions
            .iter()
            .rfind(|(o, _)| o == op)
            .unwrap_or_else(|| panic!("no {op}"))
            .1;
        serde_json::from_str(rest).unwrap_or_else(|e| panic!("{op} is not exec form: {e}"))
    };
    let entrypoint = exec_form("ENTRYPOINT");
    assert_eq!(entrypoint.last(), Some(&copied_binary), "{entrypoint:?}");
    assert_eq!(entrypoint[0], "/usr/bin/tini");
    let cmd = exec_form("CMD");
    assert!(cmd.contains(&"--path.rootfs=/host".to_string()), "{cmd:?}");
    // The same flags the DaemonSet passes, so both agree.
    let daemonset_args: Vec<String> = seq(&kind(&documents(DAEMONSET), "DaemonSet")["spec"]
        ["template"]["spec"]["containers"][0]["args"])
    .iter()
    .map(|a| text(a).to_string())
    .collect();
    assert_eq!(cmd, daemonset_args);
    let example = repo("deploy/config.example.toml");
    let cmd: Vec<String> = cmd
        .iter()
        .map(|a| a.replace("/etc/ocfs2-watchdog/config.toml", example.to_str().unwrap()))
        .collect();
    check_config(&cmd);

    // The build context leaves the local build and history out.
    let ignore = read(".dockerignore");
    assert!(ignore.lines().any(|l| l.trim() == "target/"));
}

// --- Actions on the host -------------------------------------------------------

#[path = "deploy/host_namespace.rs"]
mod host_namespace;

#[test]
fn the_daemonset_acts_in_the_host_namespace() {
    let docs = documents(DAEMONSET);
    host_namespace::acts_on_the_host(&docs).unwrap();

    // Each way a DaemonSet can end up acting in the container fails.
    fn spec(docs: &mut [Value]) -> &mut Value {
        let daemonset = docs.iter_mut().find(|d| d["kind"] == "DaemonSet").unwrap();
        &mut daemonset["spec"]["template"]["spec"]
    }
    let fails = |docs: Vec<Value>, why: &str| {
        let error = host_namespace::acts_on_the_host(&docs).unwrap_err();
        assert!(error.contains(why), "{error}");
    };
    let mut no_host_pid = docs.clone();
    spec(&mut no_host_pid)["hostPID"] = Value::Bool(false);
    fails(no_host_pid, "hostPID");
    let mut own_root = docs.clone();
    spec(&mut own_root)["containers"][0]["args"] =
        serde_yaml::from_str("[--config=/etc/ocfs2-watchdog/config.toml]").unwrap();
    fails(own_root, "container's mount namespace");
    let mut unprivileged = docs.clone();
    spec(&mut unprivileged)["containers"][0]["securityContext"]["privileged"] = Value::Bool(false);
    fails(unprivileged, "CAP_SYS_ADMIN");
    let mut no_propagation = docs.clone();
    let mounts = &mut spec(&mut no_propagation)["containers"][0]["volumeMounts"];
    for mount in mounts.as_sequence_mut().unwrap() {
        if let Some(map) = mount.as_mapping_mut() {
            map.remove("mountPropagation");
        }
    }
    fails(no_propagation, "mountPropagation");
    let mut prefixed = docs.clone();
    let configmap = prefixed
        .iter_mut()
        .find(|d| d["kind"] == "ConfigMap")
        .unwrap();
    let text = text(&configmap["data"]["config.toml"]).replace(
        "[remediation]\n",
        "[remediation]\ncommand_prefix = [\"chroot\", \"/host\"]\n",
    );
    configmap["data"]["config.toml"] = Value::String(text);
    fails(prefixed, "command_prefix");

    // The image brings no tool an action could run by mistake.
    for (op, rest) in instructions() {
        if op == "RUN" && rest.contains("apt-get install") {
            for tool in [
                "ocfs2-tools",
                "open-iscsi",
                "util-linux",
                "mount ",
                "procps",
            ] {
                assert!(!rest.contains(tool), "the image installs {tool}: {rest}");
            }
        }
    }
}

/// Every placeholder token shipped in the repository is one the daemon
/// refuses, so a deployment that kept one fails at start instead of running
/// with a secret anyone can read.
#[test]
fn every_shipped_placeholder_token_is_refused() {
    use ocfs2_watchdog::secret::PLACEHOLDER_TOKENS;
    let placeholder = regex::Regex::new(r"CHANGE-ME-[A-Za-z0-9_-]+").unwrap();
    let mut files = vec![repo("README.md"), repo("deploy/config.example.toml")];
    for dir in ["deploy", "deploy/kubernetes", "deploy/systemd", "docs"] {
        for entry in std::fs::read_dir(repo(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                files.push(path);
            }
        }
    }
    let mut found = 0;
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for token in placeholder.find_iter(&text) {
            found += 1;
            assert!(
                PLACEHOLDER_TOKENS.contains(&token.as_str()),
                "{}: {} is not in secret::PLACEHOLDER_TOKENS",
                file.display(),
                token.as_str()
            );
        }
    }
    assert!(found > 0, "the scan finds the DaemonSet's placeholders");
    // Whatever the shipped Secret holds, whatever its spelling.
    let docs = documents(DAEMONSET);
    let secret = kind(&docs, "Secret");
    for (key, value) in secret["stringData"].as_mapping().unwrap() {
        assert!(
            PLACEHOLDER_TOKENS.contains(&text(value)),
            "{key:?} of the shipped Secret is not a known placeholder"
        );
    }
    // --check-config refuses the shipped admin token as it is.
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("admin-token");
    std::fs::write(&token, text(&secret["stringData"]["admin-token"])).unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o400)).unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[web]\nadmin_token_file = \"{}\"\n", token.display()),
    )
    .unwrap();
    let output = watchdog()
        .arg("--config")
        .arg(&config)
        .arg("--check-config")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("placeholder") && stderr.contains("openssl rand"),
        "{stderr}"
    );
}
