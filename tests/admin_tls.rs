//! A TCP admin listener on a non-loopback address, served over TLS, against
//! the real daemon. The daemon runs in a network namespace of its own (no
//! route out of it) where a private address is added, so the listener is a
//! network one (`AdminListen::Network`: TLS required) yet reachable from
//! nothing but this test. `POST /pause` over TLS with the admin token pauses
//! and is audited with the caller's address; a wrong or missing token is
//! 401; plain HTTP to that listener gets no HTTP answer; the control routes
//! are not on the scrape port.

mod support;
mod tls_kit;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ocfs2_watchdog::actions::audit::AuditRecord;
use support::{enter_private_network, wait_for};
use tls_kit::{https_get, https_request, runtime, TestCa};

/// In 10.0.0.0/8: not loopback, so the daemon takes it for a network
/// address; it exists only inside the test's network namespace.
const ADMIN_IP: &str = "10.77.0.9";
/// Admin tokens must be 32 bytes or more in a file only root can read.
const TOKEN: &str = "tls-admin-token-0123456789abcdefghij";

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn write_config(dir: &Path, admin: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir.join("state")).unwrap();
    let token = dir.join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = format!(
        r#"state_dir = "{state}"
[sampler]
interval = "300ms"
[mounts]
fstypes = ["tmpfs"]
use_fstab = false
[kernel_log]
enabled = false
[web]
admin_token_file = "{token}"
admin_listen = "{admin}"
[web.tls]
cert_file = "cert.pem"
key_file = "key.pem"
"#,
        state = dir.join("state").display(),
        token = token.display(),
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, config).unwrap();
    path
}

fn post(
    rt: &tokio::runtime::Runtime,
    address: &str,
    ca: &TestCa,
    path: &str,
    token: Option<&str>,
) -> u16 {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let headers = format!("{auth}Content-Length: 0\r\n");
    rt.block_on(https_request(
        address,
        &ca.der(),
        "POST",
        path,
        None,
        &headers,
    ))
    .unwrap_or_else(|e| panic!("POST {path} over TLS: {e}"))
    .0
}

/// The raw bytes a plain-HTTP request to `address` gets back.
fn plain_http(address: &str) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "POST /pause HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    Ok(answer)
}

#[test]
fn a_network_admin_listener_is_served_over_tls_only() {
    if !support::require(support::have_command("ip"), "ip (iproute2)")
        || !enter_private_network("a_network_admin_listener_is_served_over_tls_only")
    {
        return;
    }
    // Loopback up for the scrape port; the admin address on it, /32: in
    // this namespace there is no other interface and no route out.
    ip(&["link", "set", "lo", "up"]);
    ip(&["addr", "add", &format!("{ADMIN_IP}/32"), "dev", "lo"]);
    let dir = support::ScratchDir::new();
    let ca = TestCa::new();
    ca.issue(dir.path());
    // Ports from the OS, inside this test's own network namespace.
    let scrape = format!(
        "127.0.0.1:{}",
        support::listen::os_port_on(&["127.0.0.1".parse().unwrap()])
    );
    let admin = format!(
        "{ADMIN_IP}:{}",
        support::listen::os_port_on(&[ADMIN_IP.parse().unwrap()])
    );
    let config = write_config(dir.path(), &admin);
    let mut daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
            .args(["--config", config.to_str().unwrap()])
            .args(["--web.listen-address", &scrape])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let rt = runtime();
    wait_for(
        "the daemon to be ready over TLS",
        Duration::from_secs(20),
        || {
            assert!(daemon.0.try_wait().unwrap().is_none(), "the daemon exited");
            rt.block_on(https_get(&scrape, &ca.der(), "/readyz"))
                .is_ok_and(|r| r.0 == 200)
        },
    );
    wait_for("the admin listener", Duration::from_secs(10), || {
        std::net::TcpStream::connect(&admin).is_ok()
    });

    // Plain HTTP to the TLS listener: no HTTP answer, and nothing paused.
    let answer = plain_http(&admin).unwrap_or_default();
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plain HTTP answered: {:?}",
        String::from_utf8_lossy(&answer)
    );
    assert!(!dir.path().join("state/pause").exists());

    // Over TLS: no token and a wrong one are 401; the right one pauses.
    assert_eq!(post(&rt, &admin, &ca, "/pause", None), 401);
    assert_eq!(
        post(
            &rt,
            &admin,
            &ca,
            "/pause",
            Some("wrong-wrong-wrong-wrong-wrong-wrong")
        ),
        401
    );
    assert!(!dir.path().join("state/pause").exists());
    assert_eq!(post(&rt, &admin, &ca, "/pause", Some(TOKEN)), 200);
    assert!(dir.path().join("state/pause").exists());

    // The control routes are not on the scrape port.
    let on_scrape = rt
        .block_on(https_request(
            &scrape,
            &ca.der(),
            "POST",
            "/resume",
            None,
            &format!("Authorization: Bearer {TOKEN}\r\nContent-Length: 0\r\n"),
        ))
        .unwrap()
        .0;
    assert_eq!(on_scrape, 404);
    assert!(dir.path().join("state/pause").exists());

    // Audited once, with the caller's address on the admin network.
    let records: Vec<AuditRecord> = std::fs::read_to_string(dir.path().join("state/audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line {l:?}: {e}")))
        .collect();
    let control: Vec<(&str, &str)> = records
        .iter()
        .filter_map(|r| Some((r.outcome.as_str(), r.caller.as_deref()?)))
        .collect();
    assert_eq!(control.len(), 1, "{control:?}");
    assert_eq!(control[0].0, "paused");
    assert!(
        control[0].1.starts_with(&format!("{ADMIN_IP}:")),
        "{control:?}"
    );
}
