//! Real daemons with peers for the cluster tests: each node has its own
//! root (`/etc/hostname`, a cluster.conf naming every node at a loopback
//! address), admin and cluster token files, and a config with `[cluster]`
//! on a shared `port` (a port the OS gave, free on every node's address:
//! `listen::os_port_on`) and short poll intervals. The admin address is a
//! unique loopback address (the CLI reads it from the config); the web
//! port is the OS's, read back from the log at each start.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{http_get, listen};

/// cluster.conf of cluster `labclu` with `nodes` (name, ip) numbered from 1.
pub fn cluster_conf(nodes: &[(&str, &str)]) -> String {
    let mut text = format!(
        "cluster:\n\tnode_count = {}\n\theartbeat_mode = local\n\tname = labclu\n",
        nodes.len()
    );
    for (number, (name, ip)) in nodes.iter().enumerate() {
        text.push_str(&format!(
            "\nnode:\n\tip_port = 7777\n\tip_address = {ip}\n\tnumber = {}\n\tname = {name}\n\tcluster = labclu\n",
            number + 1
        ));
    }
    text
}

pub struct PeerNode {
    pub dir: PathBuf,
    pub config: PathBuf,
    /// The bound web address while running (empty before the first start).
    pub web: String,
    child: Option<Child>,
}

/// A daemon named `name` (its hostname) under `base`, not started.
pub fn peer_node(
    base: &Path,
    name: &str,
    cluster_conf: &str,
    peer_port: u16,
    cluster_token: &str,
) -> PeerNode {
    let dir = base.join(name);
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("etc/ocfs2")).unwrap();
    std::fs::create_dir_all(root.join("proc")).unwrap();
    std::fs::write(root.join("etc/hostname"), format!("{name}\n")).unwrap();
    std::fs::write(root.join("etc/ocfs2/cluster.conf"), cluster_conf).unwrap();
    // Both token files as the daemon accepts them: 32 bytes or more, 0600.
    write_token(
        &dir.join("admin-token"),
        "admin-admin-admin-admin-admin-admin",
    );
    write_token(&dir.join("cluster-token"), cluster_token);
    let admin = listen::loopback_address();
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
    PeerNode {
        web: String::new(),
        dir,
        config,
        child: None,
    }
}

impl PeerNode {
    pub fn start(&mut self) {
        let (child, web) = listen::spawn_listening(
            Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
                .args(["--config", self.config.to_str().unwrap()])
                .arg("--path.rootfs")
                .arg(self.dir.join("root"))
                .stdout(Stdio::null()),
        );
        self.web = web;
        self.child = Some(child);
        wait(&format!("{} ready", self.web), || {
            http_get(&self.web, "/readyz").is_ok_and(|r| r.0 == 200)
        });
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (e.g. `libc::SIGHUP`) to the running daemon.
    pub fn signal(&self, signal: i32) {
        let child = self.child.as_ref().expect("a running daemon");
        let pid = i32::try_from(child.id()).unwrap();
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
            .args(["--config", self.config.to_str().unwrap(), "maintenance"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn metrics(&self) -> String {
        http_get(&self.web, "/metrics")
            .map(|r| r.2)
            .unwrap_or_default()
    }

    /// A sample line starting with `prefix` (not a HELP line).
    pub fn has(&self, prefix: &str) -> bool {
        self.metrics().lines().any(|l| l.starts_with(prefix))
    }

    /// The value of the sample line starting with `prefix`.
    pub fn value(&self, prefix: &str) -> Option<f64> {
        self.metrics()
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }
}

impl Drop for PeerNode {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls `check` every 50 ms for up to 15 s.
pub fn wait(what: &str, check: impl Fn() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes a token file the daemon's token rules accept (mode 0600).
pub fn write_token(path: &Path, token: &str) {
    std::fs::write(path, format!("{token}\n")).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
}
