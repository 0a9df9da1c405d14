//! Does the shipped DaemonSet act on the host? The pod and its ConfigMap are
//! checked against the daemon's own rule for where actions run
//! (`Placement::for_rootfs`) and against what entering PID 1's mount
//! namespace needs: a config that would act in the container's namespace,
//! or a pod that cannot reach the host's, fails here.

use std::path::Path;

use ocfs2_watchdog::actions::hostns::Placement;
use serde_yaml::Value;

/// `Ok` when the DaemonSet and ConfigMap in `docs` make every action run in
/// the host's mount namespace; `Err` says why not.
pub fn acts_on_the_host(docs: &[Value]) -> Result<(), String> {
    let find = |kind: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind)
            .ok_or(format!("no {kind}"))
    };
    let spec = &find("DaemonSet")?["spec"]["template"]["spec"];
    if spec["hostPID"] != true {
        return Err(
            "hostPID is off: PID 1 is the pod's own init, so the host's mount \
                    namespace is out of reach and enforce refuses to start"
                .into(),
        );
    }
    let container = &spec["containers"][0];
    let caps: Vec<&str> = container["securityContext"]["capabilities"]["add"]
        .as_sequence()
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let privileged = container["securityContext"]["privileged"] == true;
    for cap in ["SYS_ADMIN", "SYS_CHROOT", "SYS_PTRACE"] {
        if !privileged && !caps.contains(&cap) {
            return Err(format!(
                "neither privileged nor CAP_{cap}: setns into PID 1's mount namespace is refused"
            ));
        }
    }
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let flag = |name: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(&format!("--{name}=")))
    };
    let rootfs = flag("path.rootfs").unwrap_or("/");
    if Placement::for_rootfs(Path::new(rootfs)) != Placement::HostNamespace {
        return Err(format!(
            "--path.rootfs={rootfs}: the daemon would take the container's root for the host's \
             and act in the container's mount namespace"
        ));
    }
    let mounts = container["volumeMounts"]
        .as_sequence()
        .cloned()
        .unwrap_or_default();
    let host_mount = mounts
        .iter()
        .find(|m| m["mountPath"] == rootfs)
        .ok_or(format!("nothing is mounted at --path.rootfs={rootfs}"))?;
    let volume = spec["volumes"]
        .as_sequence()
        .and_then(|v| v.iter().find(|v| v["name"] == host_mount["name"]))
        .ok_or("the host root's volume is missing")?;
    if volume["hostPath"]["path"] != "/" {
        return Err(format!("{rootfs} is not the host's root (hostPath /)"));
    }
    // Without propagation the pod's view of the host's mounts goes stale:
    // what the helper mounts on the host never shows under /host.
    if !matches!(
        host_mount["mountPropagation"].as_str(),
        Some("Bidirectional" | "HostToContainer")
    ) {
        return Err(format!(
            "{rootfs} does not receive the host's mounts (mountPropagation)"
        ));
    }
    if let Some(procfs) = flag("path.procfs") {
        if !Path::new(procfs).starts_with(rootfs) {
            return Err(format!(
                "--path.procfs={procfs} is not the host's /proc under {rootfs}"
            ));
        }
    }
    let text = find("ConfigMap")?["data"]["config.toml"]
        .as_str()
        .ok_or("the ConfigMap has no config.toml")?;
    let config = ocfs2_watchdog::config::Config::parse(text, Path::new("configmap"))
        .map_err(|e| e.to_string())?;
    if !config.remediation.command_prefix.is_empty() {
        return Err(format!(
            "command_prefix {:?}: actions already run in the host's mount namespace; a prefix \
             written for the container's view would run in the host's",
            config.remediation.command_prefix
        ));
    }
    Ok(())
}
