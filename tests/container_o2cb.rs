//! The o2cb restart from the DaemonSet's topology (tests/container/topology.rs):
//! the real daemon in a container mount namespace, enforcing with the
//! shipped ConfigMap's settings, decides an o2cb restart on the "host" (o2cb
//! configured in `/etc/default/o2cb`, not registered in configfs, an OCFS2
//! mount expected) and runs it with the host's `o2cb` from the host's PATH.
//! The container has its own `o2cb`, `mount` and `umount` at the same PATH
//! entry; they log `CONTAINER` and must never run. The host's fake `o2cb
//! register-cluster` registers the cluster with this node as its only, local
//! node (directories in a tmpfs standing in for configfs), so the restart's
//! rejoin check passes and the next snapshot sees the stack online.

mod support;
#[path = "container/topology.rs"]
mod topology;

use std::path::Path;
use std::time::Duration;

use ocfs2_watchdog::actions::audit::{AuditRecord, Phase};
use support::{
    enter_private_namespace, http_get, mount_tmpfs, overlay_in_scratch, wait_for, ScratchDir,
};
use topology::{
    config_from_configmap, daemon_log, executable, prepare_host, start_container, Layout,
    Propagation,
};

/// The host side of o2cb: configured, offline, and a fake `o2cb` tool.
fn prepare_o2cb_host(layout: &Layout, scratch: &Path) {
    // Every write under /etc below lands in the scratch tree, never on the
    // host's /etc (a private namespace hides mounts, not mkdir).
    overlay_in_scratch(Path::new("/etc"), scratch);
    // Only the bare `o2cb` tool: no init script, no systemd unit.
    for dir in ["/etc/init.d", "/etc/default"] {
        std::fs::create_dir_all(dir).unwrap();
        mount_tmpfs(Path::new(dir));
    }
    std::fs::write(
        "/etc/default/o2cb",
        "O2CB_ENABLED=true\nO2CB_BOOTCLUSTER=lab\n",
    )
    .unwrap();
    // A one-node cluster named like this host: the restart's cluster lease
    // has no peer to ask (with another node in it, the restart would wait
    // for that node's daemon to answer).
    std::fs::create_dir_all("/etc/ocfs2").unwrap();
    let hostname = std::fs::read_to_string("/etc/hostname")
        .ok()
        .and_then(|h| h.split('.').next().map(|s| s.trim().to_string()))
        .filter(|h| !h.is_empty())
        .expect("/etc/hostname names this host");
    std::fs::write(
        "/etc/ocfs2/cluster.conf",
        format!(
            "cluster:\n\tnode_count = 1\n\tname = lab\n\nnode:\n\tip_port = 7777\n\t\
             ip_address = 127.0.0.1\n\tnumber = 1\n\tname = {hostname}\n\tcluster = lab\n"
        ),
    )
    .unwrap();
    // configfs stand-in: this kernel may not have configfs at all.
    mount_tmpfs(Path::new("/sys/kernel"));
    std::fs::create_dir_all("/sys/kernel/config").unwrap();
    executable(
        &layout.tools().join("o2cb"),
        &format!(
            "#!/bin/sh\necho \"host o2cb $*\" >> '{}'\n\
             if [ \"$1\" = register-cluster ]; then c=/sys/kernel/config/cluster/$2; \
             mkdir -p $c/node/n1 $c/heartbeat; echo 1 > $c/node/n1/num; echo 1 > $c/node/n1/local; fi\n\
             exit 0\n",
            layout.log.display()
        ),
    );
}

#[test]
fn daemonset_topology_restarts_o2cb_with_host_tools_only() {
    if !enter_private_namespace("daemonset_topology_restarts_o2cb_with_host_tools_only") {
        return;
    }
    let dir = ScratchDir::new();
    let mut layout = Layout::new(dir.path());
    let (mut holder, _volume) = prepare_host(&mut layout, Propagation::Bidirectional);
    prepare_o2cb_host(&layout, dir.path());
    let volume = layout.dir.join("ocfs2");
    std::fs::create_dir_all(&volume).unwrap();
    let config = config_from_configmap(&layout, "127.0.0.1:0", |config| {
        let mounts = config["mounts"].as_table_mut().unwrap();
        let mut expected = toml::Table::new();
        expected.insert(
            "mountpoint".into(),
            volume.to_string_lossy().as_ref().into(),
        );
        expected.insert("source".into(), "UUID=0badc0de".into());
        expected.insert("fstype".into(), "ocfs2".into());
        mounts.insert("expected".into(), toml::Value::Array(vec![expected.into()]));
        let rules = config["remediation"]["rules"].as_table_mut().unwrap();
        let mut o2cb = toml::Table::new();
        o2cb.insert("for".into(), "500ms".into());
        rules.insert("o2cb_down".into(), o2cb.into());
        // The volume stays missing (no such device): not this test's action.
        let mut missing = toml::Table::new();
        missing.insert("alert_only".into(), true.into());
        rules.insert("missing_mount".into(), missing.into());
    });
    let mut daemon = start_container(&layout, Propagation::Bidirectional, &config);
    let address = support::listen::bound_address_in_log(&layout.dir.join("daemon.log"));
    let audit = layout.dir.join("state/audit.jsonl");
    let restarted = || {
        std::fs::read_to_string(&audit).is_ok_and(|text| {
            text.lines()
                .filter_map(|l| serde_json::from_str::<AuditRecord>(l).ok())
                .any(|r| r.action == "restart_o2cb" && r.phase == Phase::After)
        })
    };
    wait_for("the o2cb restart", Duration::from_secs(40), || {
        assert!(
            daemon.try_wait().unwrap().is_none(),
            "daemon exited: {}",
            daemon_log(&layout)
        );
        restarted()
    });
    let (_, _, status) = http_get(&address, "/status").unwrap_or_default();
    let _ = daemon.kill();
    let _ = daemon.wait();
    let _ = holder.kill();
    let _ = holder.wait();

    let calls = std::fs::read_to_string(&layout.log).unwrap_or_default();
    assert!(
        !calls.contains("CONTAINER"),
        "a container tool ran: {calls}"
    );
    assert!(
        calls.contains("host o2cb register-cluster lab\n")
            && calls.contains("host o2cb start-heartbeat lab\n"),
        "{calls}\n{}",
        daemon_log(&layout)
    );
    assert!(
        Path::new("/sys/kernel/config/cluster/lab").is_dir(),
        "registered on the host"
    );
    let records: Vec<AuditRecord> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let after = records
        .iter()
        .find(|r| r.action == "restart_o2cb" && r.phase == Phase::After)
        .unwrap();
    assert_eq!(after.outcome, "success", "{after:?}");
    assert!(status.contains("PID 1's mount namespace"), "{status}");
}
