//! `status --cluster` and `check --cluster` against real daemons: n1 and n2
//! run on 127.0.0.2 and 127.0.0.3 with the cluster token, n3 is in
//! cluster.conf (127.0.0.4) but never started, as a powered-off node. The
//! view n1 serves lists all three, n3 unreachable and never omitted; the
//! verdict counts it at the `node_down` severity; the peer route answers
//! signed requests of the cluster's nodes only.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use support::{http_get, wait_for, wait_for_every};

/// The peer port every node shares: one the OS gave, free on all three
/// nodes' addresses.
fn peer_port() -> u16 {
    support::listen::os_port_on(&[
        "127.0.0.2".parse().unwrap(),
        "127.0.0.3".parse().unwrap(),
        "127.0.0.4".parse().unwrap(),
    ])
}

/// A cluster token the daemon accepts (32 bytes or more, file 0600).
const TOKEN: &str = "cluster-s3cret-0123456789abcdef0123456789";

const CLUSTER_CONF: &str = "cluster:\n\tnode_count = 3\n\theartbeat_mode = local\n\tname = labclu\n\n\
node:\n\tip_port = 7777\n\tip_address = 127.0.0.2\n\tnumber = 1\n\tname = n1\n\tcluster = labclu\n\n\
node:\n\tip_port = 7777\n\tip_address = 127.0.0.3\n\tnumber = 2\n\tname = n2\n\tcluster = labclu\n\n\
node:\n\tip_port = 7777\n\tip_address = 127.0.0.4\n\tnumber = 3\n\tname = n3\n\tcluster = labclu\n";

struct Daemon {
    config: PathBuf,
    web: String,
    child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A daemon for `name` on an empty root with cluster.conf; its own o2cb
/// stack (absent here) is not judged, so only the cluster view's findings
/// decide the verdict.
fn start(base: &Path, name: &str, peer_port: u16) -> Daemon {
    let dir = base.join(name);
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("etc/ocfs2")).unwrap();
    std::fs::create_dir_all(root.join("proc/1")).unwrap();
    std::fs::write(root.join("proc/1/mountinfo"), "").unwrap();
    std::fs::write(root.join("etc/hostname"), format!("{name}\n")).unwrap();
    std::fs::write(root.join("etc/ocfs2/cluster.conf"), CLUSTER_CONF).unwrap();
    support::cluster::write_token(&dir.join("cluster-token"), TOKEN);
    // In the config, where `status --cluster` finds the daemon: a unique
    // loopback address with a port from the OS.
    let web = support::listen::loopback_address();
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
listen_address = "{web}"
[cluster]
token_file = "{dir}/cluster-token"
port = {peer_port}
poll_interval = "300ms"
request_timeout = "1s"
[check.severity]
stack_offline = "ok"
# No stack here, so no heartbeat says n3 is dead: the storm brake holds
# disruptive actions for want of n3's report (peer_unknown), as it should;
# what this test judges is the cluster view, not that hold.
remediation_held = "ok"
"#,
            state = dir.join("state").display(),
            dir = dir.display(),
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
        .args(["--config", config.to_str().unwrap()])
        .arg("--path.rootfs")
        .arg(&root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let daemon = Daemon { config, web, child };
    wait_for(&format!("{name} ready"), Duration::from_secs(15), || {
        http_get(&daemon.web, "/readyz").is_ok_and(|r| r.0 == 200)
    });
    daemon
}

fn cli(daemon: &Daemon, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
        .args(args)
        // Global flags after the subcommand, as an operator types them.
        .args(["--config", daemon.config.to_str().unwrap()])
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn the_cluster_view_lists_every_node_and_a_silent_one_as_unreachable() {
    let base = tempfile::tempdir().unwrap();
    let port = peer_port();
    let n1 = start(base.path(), "n1", port);
    let _n2 = start(base.path(), "n2", port);

    let mut document = serde_json::Value::Null;
    wait_for_every(
        "n1 gathered n2",
        Duration::from_secs(15),
        Duration::from_millis(300),
        || {
            let out = cli(&n1, &["status", "--cluster", "--json"]);
            document = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let nodes = &document["cluster"]["nodes"];
            nodes[2]["error"] != "not asked yet"
                && nodes[0]["summary"]["peers"][0]["up"] == true
                && nodes[1]["summary"]["peers"][0]["up"] == true
        },
    );
    let nodes = document["cluster"]["nodes"].as_array().unwrap();
    let names: Vec<&str> = nodes.iter().map(|n| n["node"].as_str().unwrap()).collect();
    assert_eq!(names, ["n1", "n2", "n3"], "{document}");
    assert_eq!(nodes[0]["local"], true);
    assert_eq!(nodes[1]["summary"]["node"], "n2", "{document}");
    assert_eq!(nodes[1]["summary"]["state"], "OK", "{document}");
    assert_eq!(
        nodes[1]["summary"]["peers"],
        serde_json::json!([{"node": "n1", "up": true}, {"node": "n3", "up": false}]),
        "n2's own reach of its peers: {document}"
    );
    assert_eq!(nodes[2]["reachable"], false);
    assert!(nodes[2]["summary"].is_null());
    assert!(
        nodes[2]["error"].as_str().unwrap().contains("127.0.0.4"),
        "{document}"
    );
    assert_eq!(document["state"], "CRITICAL", "{document}");
    assert_eq!(document["exit_code"], 2);

    let out = cli(&n1, &["check", "--cluster"]);
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(
        line.starts_with("OCFS2 CRITICAL - n3 unreachable ("),
        "{line}"
    );
    assert!(line.contains("'nodes_answering'=2;;;0;3"), "{line}");
    assert_eq!(out.status.code(), Some(2), "{line}");

    let out = cli(&n1, &["status", "--cluster"]);
    let screen = String::from_utf8(out.stdout).unwrap();
    assert!(screen.contains("Cluster nodes (labclu)"), "{screen}");
    assert!(screen.contains("n1 (this node): OK"), "{screen}");
    assert!(screen.contains("n2: OK"), "{screen}");
    assert!(screen.contains("n3: UNREACHABLE ("), "{screen}");
    assert_eq!(out.status.code(), Some(2));

    // The page shows the same section.
    let page = http_get(&n1.web, "/").unwrap().2;
    assert!(page.contains("Cluster nodes (labclu)"), "{page}");
    assert!(page.contains("n3: UNREACHABLE"), "{page}");
}

#[test]
fn the_summary_route_answers_signed_requests_of_the_cluster_only() {
    use ocfs2_watchdog::cluster::client::exchange;
    use ocfs2_watchdog::cluster::peer_auth::{PeerKey, SignedAnswer};
    use ocfs2_watchdog::status::cluster::NodeSummary;

    let base = tempfile::tempdir().unwrap();
    let port = peer_port();
    let _n2 = start(base.path(), "n2", port);
    let address = format!("127.0.0.3:{port}");
    let path = "/cluster/v1/summary";
    // Asked as n1 would ask: signed with `token`, sent from n1's address.
    let ask = |token: Option<&str>| {
        let auth = token.map(|t| {
            PeerKey::new(t.as_bytes())
                .sign_request("GET", path, b"", "n1")
                .unwrap()
        });
        let headers = auth
            .as_ref()
            .map(|a| a.headers().to_vec())
            .unwrap_or_default();
        let answer = exchange(
            &address,
            Some("127.0.0.2".parse().unwrap()),
            "GET",
            path,
            &headers,
            Duration::from_secs(2),
            65536,
        );
        (auth, answer)
    };
    wait_for("peer protocol listening", Duration::from_secs(15), || {
        ask(Some(TOKEN)).1.is_ok_and(|a| a.status == 200)
    });
    let (auth, answer) = ask(Some(TOKEN));
    let (auth, answer) = (auth.unwrap(), answer.unwrap());
    PeerKey::new(TOKEN.as_bytes())
        .verify_response("n2", &auth.nonce, &SignedAnswer::of(&answer))
        .expect("signed by n2 for this request");
    let summary: NodeSummary = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(summary.node, "n2");
    assert_eq!(summary.cluster.as_deref(), Some("labclu"));
    assert_eq!(summary.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(ask(None).1.unwrap().status, 401);
    assert_eq!(
        ask(Some("another-token-0123456789abcdef0123456789"))
            .1
            .unwrap()
            .status,
        401
    );
}
