//! Shared helpers for the integration tests.
//!
//! `ci` says whether a missing prerequisite skips (by hand) or fails (CI).
//! `enter_private_namespace` re-runs the calling test inside
//! `unshare --mount --pid --fork --mount-proc --propagation private`, so every
//! mount it makes dies with the namespace and `/proc/1/mountinfo` is the
//! test's own table (as the daemon reads it on a host). `fixtures` runs the
//! binary's `--once` on a fixture tree, `samples` reads what it printed, and
//! `copy_tree`/`wait_for` are the file and polling helpers every test shares;
//! `cluster` starts daemons with peers; `scratch` owns every tree a test
//! mounts under (`ScratchDir`), and deletes it without crossing a mount;
//! `listen` gives ports from the OS (a daemon on port 0, its bound address
//! read back) and `overlay_in_scratch` a writable `/etc` that is not the
//! host's.

#![allow(dead_code)]

pub mod ci;
pub mod cluster;
pub mod fixtures;
pub mod kubelet;
pub mod listen;
pub mod samples;
pub mod scratch;

#[allow(unused_imports)]
pub use ci::{in_ci, require};
#[allow(unused_imports)]
pub use samples::sample_value;
#[allow(unused_imports)]
pub use scratch::ScratchDir;

/// The Accept header Prometheus sends when it scrapes.
pub const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const INNER: &str = "OCFS2_WATCHDOG_TEST_INNER";

/// Copies a directory tree (files, directories, symlinks as links), creating `to`.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("creating {}: {e}", to.display()));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Polls `check` every 20 ms until it holds; fails the test after `limit`.
pub fn wait_for(what: &str, limit: Duration, check: impl FnMut() -> bool) {
    wait_for_every(what, limit, Duration::from_millis(20), check);
}

/// `wait_for_every` for waits that share one deadline: `limit` counted from
/// `start`, so a slow first wait leaves less time to the later ones.
pub fn wait_until(
    what: &str,
    start: Instant,
    limit: Duration,
    every: Duration,
    check: impl FnMut() -> bool,
) {
    wait_for_every(what, limit.saturating_sub(start.elapsed()), every, check);
}

/// `wait_for` with its own poll period, for checks that cost a request.
pub fn wait_for_every(
    what: &str,
    limit: Duration,
    every: Duration,
    mut check: impl FnMut() -> bool,
) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < limit,
            "timed out after {:?} waiting for {what}",
            started.elapsed()
        );
        std::thread::sleep(every);
    }
}

pub fn have_command(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// True in the re-run copy inside the namespace: the caller then runs its
/// body. In the outer copy it runs the inner one, asserts it passed and
/// returns false.
pub fn enter_private_namespace(test_name: &str) -> bool {
    enter_namespaces(test_name, &[])
}

/// As `enter_private_namespace`, with a network namespace of its own too:
/// only a loopback interface, down, and no route anywhere, so addresses
/// added there reach nothing outside it.
pub fn enter_private_network(test_name: &str) -> bool {
    enter_namespaces(test_name, &["--net"])
}

fn enter_namespaces(test_name: &str, extra: &[&str]) -> bool {
    if std::env::var_os(INNER).is_some() {
        return true;
    }
    if !require(nix::unistd::geteuid().is_root(), "root (mount namespaces)")
        || !require(have_command("unshare"), "unshare (util-linux)")
    {
        return false;
    }
    let exe = std::env::current_exe().expect("test executable path");
    let output = Command::new("unshare")
        .args(extra)
        .args([
            "--mount",
            "--pid",
            "--fork",
            "--mount-proc",
            "--propagation",
            "private",
        ])
        .arg(exe)
        .args([
            "--exact",
            test_name,
            "--nocapture",
            "--test-threads=1",
            "--include-ignored",
        ])
        .env(INNER, "1")
        .output()
        .expect("running unshare");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    print!("{stdout}");
    eprint!("{stderr}");
    assert!(
        output.status.success(),
        "{test_name} failed inside the namespace"
    );
    assert!(
        stdout.contains("1 passed"),
        "{test_name} did not run inside the namespace"
    );
    false
}

pub fn mount_tmpfs(path: &Path) {
    mount_tmpfs_sized(path, "size=1m");
}

pub fn mount_tmpfs_sized(path: &Path, options: &str) {
    nix::mount::mount(
        Some("tmpfs"),
        path,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some(options),
    )
    .unwrap_or_else(|e| panic!("mount tmpfs on {}: {e}", path.display()));
}

pub fn bind(source: &Path, target: &Path) {
    nix::mount::mount(
        Some(source),
        target,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap_or_else(|e| panic!("bind {} on {}: {e}", source.display(), target.display()));
}

/// Makes `target` (e.g. `/etc`) writable without writing the real one: an
/// overlay whose lower layer is `target` itself and whose upper layer is a
/// tmpfs in `scratch`. Only inside `enter_private_namespace`: a `mkdir` under
/// `target` then lands in the tmpfs, where a plain `mkdir` before a tmpfs
/// mount would create the directory on the host's filesystem.
pub fn overlay_in_scratch(target: &Path, scratch: &Path) {
    let layers = scratch.join(format!(
        "overlay{}",
        target.to_string_lossy().replace('/', "-")
    ));
    std::fs::create_dir_all(&layers).unwrap();
    mount_tmpfs_sized(&layers, "size=4m");
    let (upper, work) = (layers.join("upper"), layers.join("work"));
    std::fs::create_dir_all(&upper).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        target.display(),
        upper.display(),
        work.display()
    );
    nix::mount::mount(
        Some("overlay"),
        target,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(options.as_str()),
    )
    .unwrap_or_else(|e| panic!("overlay on {}: {e}", target.display()));
}

/// `parent` (a tmpfs made shared) and `peer`, a bind of it: the two are one
/// peer group, so every mount under one propagates to the other.
pub fn shared_parent_with_peer(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let parent = dir.join("parent");
    let peer = dir.join("peer");
    std::fs::create_dir_all(&parent).unwrap();
    std::fs::create_dir_all(&peer).unwrap();
    mount_tmpfs(&parent);
    make_shared(&parent);
    bind(&parent, &peer);
    (parent, peer)
}

pub fn make_shared(path: &Path) {
    nix::mount::mount(
        None::<&str>,
        path,
        None::<&str>,
        nix::mount::MsFlags::MS_SHARED,
        None::<&str>,
    )
    .unwrap_or_else(|e| panic!("make-shared {}: {e}", path.display()));
}

/// The status code of a raw HTTP response (0 when there is none).
pub fn status_code(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A plain HTTP/1.0 GET on loopback: (status, content type, body). HTTP/1.0
/// so no server answers with chunked encoding a test would have to undo.
pub fn http_get(address: &str, path: &str) -> std::io::Result<(u16, String, String)> {
    http_get_accepting(address, path, "*/*")
}

/// `http_get` with an `Accept` header, e.g. what Prometheus sends.
pub fn http_get_accepting(
    address: &str,
    path: &str,
    accept: &str,
) -> std::io::Result<(u16, String, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {address}\r\nAccept: {accept}\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = status_code(head);
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .unwrap_or("")
        .to_string();
    Ok((status, content_type, body.to_string()))
}

/// An ext4 filesystem on a loop device, standing in for a cluster volume in
/// tests that unmount and mount it again (a tmpfs would come back as another
/// device). The loop device is global, not per namespace: it is detached on
/// drop, even when an assertion failed.
pub struct LoopVolume {
    pub device: String,
}

impl LoopVolume {
    /// Makes `<dir>/<name>.img` (16 MiB, ext4) and attaches it.
    pub fn ext4(dir: &Path, name: &str) -> Self {
        let image = dir.join(format!("{name}.img"));
        let run = |args: &[&str]| {
            let out = Command::new(args[0])
                .args(&args[1..])
                .output()
                .expect(args[0]);
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        let image_path = image.to_string_lossy();
        run(&["truncate", "-s", "16M", &image_path]);
        run(&["mkfs.ext4", "-q", &image_path]);
        let device = run(&["losetup", "-f", "--show", &image_path]);
        Self { device }
    }

    /// Makes the device usable at the same path under a fixture root: a
    /// bind of the real node, since a symlink to `/dev/...` resolves inside
    /// the root (to itself) when the daemon reads the host under a root.
    pub fn expose_under(&self, root: &Path) -> std::path::PathBuf {
        let inside = root.join(self.device.trim_start_matches('/'));
        std::fs::create_dir_all(inside.parent().expect("device path has a parent")).unwrap();
        std::fs::write(&inside, "").unwrap();
        bind(Path::new(&self.device), &inside);
        inside
    }
}

impl Drop for LoopVolume {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
    }
}
