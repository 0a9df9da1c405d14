//! Two real daemons on 127.0.0.2 and 127.0.0.3 with a fixture cluster.conf
//! (issue #12): maintenance set on one node holds the other within a poll,
//! a daemon restarted without its record learns it from the peer at start,
//! `off` on the other node ends it on both, and a wrong cluster token
//! leaves the peers unreachable.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{free_port, http_get};

const CLUSTER_CONF: &str = "cluster:\n\tnode_count = 2\n\theartbeat_mode = local\n\tname = labclu\n\n\
node:\n\tip_port = 7777\n\tip_address = 127.0.0.2\n\tnumber = 1\n\tname = n1\n\tcluster = labclu\n\n\
node:\n\tip_port = 7777\n\tip_address = 127.0.0.3\n\tnumber = 2\n\tname = n2\n\tcluster = labclu\n";

struct Node {
    dir: PathBuf,
    config: PathBuf,
    web: String,
    child: Option<Child>,
}

fn node(base: &Path, name: &str, peer_port: u16, cluster_token: &str) -> Node {
    let dir = base.join(name);
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("etc/ocfs2")).unwrap();
    std::fs::create_dir_all(root.join("proc")).unwrap();
    std::fs::write(root.join("etc/hostname"), format!("{name}\n")).unwrap();
    std::fs::write(root.join("etc/ocfs2/cluster.conf"), CLUSTER_CONF).unwrap();
    std::fs::write(
        dir.join("admin-token"),
        "admin-admin-admin-admin-admin-admin\n",
    )
    .unwrap();
    std::fs::set_permissions(
        dir.join("admin-token"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    std::fs::write(dir.join("cluster-token"), format!("{cluster_token}\n")).unwrap();
    let admin = format!("127.0.0.1:{}", free_port());
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"state_dir = "{state}"
[sampler]
interval = "300ms"
[kernel_log]
enabled = false
[web]
admin_token_file = "{dir}/admin-token"
admin_listen = "{admin}"
[cluster]
token_file = "{dir}/cluster-token"
port = {peer_port}
poll_interval = "300ms"
request_timeout = "1s"
"#,
            state = dir.join("state").display(),
            dir = dir.display(),
        ),
    )
    .unwrap();
    Node {
        web: format!("127.0.0.1:{}", free_port()),
        dir,
        config,
        child: None,
    }
}

impl Node {
    fn start(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
            .args(["--config", self.config.to_str().unwrap()])
            .args(["--web.listen-address", &self.web])
            .arg("--path.rootfs")
            .arg(self.dir.join("root"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait(&format!("{} ready", self.web), || {
            http_get(&self.web, "/readyz").is_ok_and(|r| r.0 == 200)
        });
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
            .args(["--config", self.config.to_str().unwrap(), "maintenance"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn metrics(&self) -> String {
        http_get(&self.web, "/metrics")
            .map(|r| r.2)
            .unwrap_or_default()
    }

    /// A sample line starting with `prefix` (not a HELP line).
    fn has(&self, prefix: &str) -> bool {
        self.metrics().lines().any(|l| l.starts_with(prefix))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

fn wait(what: &str, check: impl Fn() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn maintenance_set_on_one_node_holds_the_other_and_off_anywhere_ends_it() {
    let base = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut n1 = node(base.path(), "n1", port, "cluster-s3cret");
    let mut n2 = node(base.path(), "n2", port, "cluster-s3cret");
    n1.start();
    n2.start();
    wait("peers up", || {
        n1.metrics().contains(&format!(
            "ocfs2_watchdog_cluster_peer_up{{peer=\"n2\",address=\"127.0.0.3:{port}\"}} 1"
        )) && n2.metrics().contains(&format!(
            "ocfs2_watchdog_cluster_peer_up{{peer=\"n1\",address=\"127.0.0.2:{port}\"}} 1"
        ))
    });

    let set = Instant::now();
    n1.cli(&["on", "--reason", "resize vol1", "--for", "1h"]);
    wait("n2 in maintenance", || {
        n2.has("ocfs2_watchdog_maintenance 1")
    });
    let propagation = set.elapsed();
    wait("n1 in maintenance", || {
        n1.has("ocfs2_watchdog_maintenance 1")
    });
    assert!(propagation < Duration::from_secs(3), "{propagation:?}");
    let m = n2.metrics();
    assert!(
        m.contains("node=\"n1\""),
        "set on n1: {}",
        m.lines()
            .filter(|l| l.contains("maintenance"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // n2 restarts without its record: it asks n1 at start.
    n2.stop();
    std::fs::remove_file(n2.dir.join("state/maintenance.json")).unwrap();
    n2.start();
    assert!(
        n2.has("ocfs2_watchdog_maintenance 1")
            || std::fs::read_to_string(n2.dir.join("state/maintenance.json"))
                .is_ok_and(|r| r.contains("resize vol1")),
        "learnt from the peer before the first scrape"
    );

    // Off on n2 ends it on n1 too.
    n2.cli(&["off"]);
    wait("n1 out of maintenance", || {
        n1.has("ocfs2_watchdog_maintenance 0")
    });
    let audit = std::fs::read_to_string(n1.dir.join("state/audit.jsonl")).unwrap();
    let off = audit
        .lines()
        .find(|l| l.contains("maintenance_off"))
        .unwrap_or_else(|| panic!("audited on n1: {audit}"));
    assert!(off.contains("peer n2 127.0.0.3"), "{off}");
}

#[test]
fn a_wrong_cluster_token_leaves_the_peer_down() {
    let base = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut n1 = node(base.path(), "n1", port, "one");
    let mut n2 = node(base.path(), "n2", port, "two");
    n1.start();
    n2.start();
    wait("peer down", || {
        n1.metrics().contains(&format!(
            "ocfs2_watchdog_cluster_peer_up{{peer=\"n2\",address=\"127.0.0.3:{port}\"}} 0"
        ))
    });
    n1.cli(&["on", "--reason", "x"]);
    std::thread::sleep(Duration::from_secs(1));
    assert!(n2.has("ocfs2_watchdog_maintenance 0"));
}

#[test]
fn the_state_endpoint_answers_the_lease_state_to_the_token_only() {
    use ocfs2_watchdog::cluster::client::request;
    use ocfs2_watchdog::cluster::lease::consensus::NodeState;

    let base = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut n2 = node(base.path(), "n2", port, "same");
    n2.start();
    let address = format!("127.0.0.3:{port}");
    let ask = |token: Option<&str>| {
        request(
            &address,
            "GET",
            "/cluster/v1/state",
            token,
            Duration::from_secs(2),
        )
    };
    wait("peer protocol listening", || ask(Some("same")).is_ok());
    let answer = ask(Some("same")).unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    let state: NodeState = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(state.node, "n2");
    assert!(!state.holds_lease && !state.acting && state.intent_at.is_none());
    assert!(state.disruptive_findings.is_empty());
    assert_eq!(ask(None).unwrap().status, 401);
    assert_eq!(ask(Some("other")).unwrap().status, 401);
    // Not enforcing and nothing firing: no attempt yet, nothing held.
    wait("the engine's first report", || {
        n2.has("ocfs2_watchdog_lease_held{route=\"peers\"} 0")
    });
    assert!(
        n2.has("ocfs2_watchdog_lease_acquisitions_total{route=\"peers\",result=\"acquired\"} 0")
    );
}
