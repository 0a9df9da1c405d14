//! A mount whose statfs never answers (a FUSE server that never replies),
//! against the real daemon binary: the mount is reported stuck within the
//! probe deadline plus one interval, every scrape answers at once, the first
//! one included, and the blocked probe threads stay bounded. Killing the FUSE
//! server (SIGKILL) releases the hang so no test leaves a process in D state.

mod support;

#[path = "support/hung_fuse.rs"]
mod hung_fuse;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hung_fuse::KillOnDrop;
use support::{
    enter_private_namespace, http_get, http_get_accepting, require, sample_value, PROMETHEUS_ACCEPT,
};

/// Not a test of its own: the FUSE server process the hung-mount test starts.
#[test]
#[ignore = "helper process started by hung_mount_is_stuck_while_scrapes_stay_fast"]
fn helper_hung_fuse_server() {
    hung_fuse::serve_from_env();
}

#[test]
fn hung_mount_is_stuck_while_scrapes_stay_fast() {
    if !enter_private_namespace("hung_mount_is_stuck_while_scrapes_stay_fast") {
        return;
    }
    if !require(Path::new("/dev/fuse").exists(), "/dev/fuse") {
        return;
    }
    let dir = support::ScratchDir::new();
    let mountpoint = dir.path().join("hung");
    std::fs::create_dir_all(&mountpoint).unwrap();
    let mut server = hung_fuse::start("helper_hung_fuse_server", &mountpoint);

    let probe_timeout = Duration::from_secs(1);
    let interval = Duration::from_millis(500);
    let config = dir.path().join("config.toml");
    // Its state in the scratch dir: the default state_dir is the host's.
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\n\
             [sampler]\ninterval = \"500ms\"\ncollector_timeout = \"3s\"\n\
             [mounts]\nfstypes = [\"fuse\", \"fuse.hung\"]\nprobe_timeout = \"1s\"\nuse_fstab = false\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let (daemon, address) = support::listen::spawn_listening(
        Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
            .arg("--config")
            .arg(&config),
    );
    let started = Instant::now();
    let mut daemon = KillOnDrop(daemon);

    // The very first scrape: answered at once even though the mount hangs.
    let mut first = None;
    support::wait_for("the daemon to listen", Duration::from_secs(10), || {
        first = http_get(&address, "/metrics").ok();
        first.is_some()
    });
    let series = format!(
        "ocfs2_mount_stuck{{mountpoint=\"{}\"}}",
        mountpoint.display()
    );
    let mut slowest = Duration::ZERO;
    let mut stuck_after = None;
    let mut scrapes = 0;
    while started.elapsed() < probe_timeout + interval * 8 {
        let asked = Instant::now();
        let (status, content_type, body) =
            http_get_accepting(&address, "/metrics", PROMETHEUS_ACCEPT).unwrap();
        slowest = slowest.max(asked.elapsed());
        scrapes += 1;
        assert_eq!(status, 200);
        assert!(
            content_type.starts_with("application/openmetrics-text"),
            "{content_type}"
        );
        if stuck_after.is_none() && sample_value(&body, &series) == Some(1.0) {
            stuck_after = Some(started.elapsed());
        }
        if stuck_after.is_some() {
            assert_eq!(
                sample_value(&body, "ocfs2_watchdog_probe_stuck"),
                Some(1.0),
                "{body}"
            );
            let threads = sample_value(&body, "ocfs2_watchdog_probe_threads").unwrap();
            assert!(
                threads <= 2.0,
                "blocked probe threads must stay bounded: {threads}"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let stuck_after = stuck_after.expect("the hung mount was never reported stuck");
    println!("stuck reported after {stuck_after:?}; slowest of {scrapes} scrapes {slowest:?}");
    // Deadline plus one interval, plus start-up and scheduling slack.
    assert!(
        stuck_after <= probe_timeout + interval + Duration::from_millis(1500),
        "{stuck_after:?}"
    );
    // A scrape that waited on the mount would take the whole probe deadline.
    assert!(slowest < Duration::from_millis(500), "{slowest:?}");

    // Release the hang: the blocked statfs fails with ENOTCONN and returns.
    let _ = server.0.kill();
    let _ = server.0.wait();
    support::wait_for("the stuck probe to return", Duration::from_secs(10), || {
        let body = http_get(&address, "/metrics")
            .map(|r| r.2)
            .unwrap_or_default();
        sample_value(&body, &series) == Some(0.0)
            && sample_value(&body, "ocfs2_watchdog_probe_stuck") == Some(0.0)
    });

    // SIGTERM shuts the daemon down cleanly.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut exited = None;
    support::wait_for(
        "the daemon to exit on SIGTERM",
        Duration::from_secs(10),
        || {
            exited = daemon.0.try_wait().unwrap();
            exited.is_some()
        },
    );
    assert!(exited.unwrap().success(), "{exited:?}");
    let _ = nix::mount::umount2(&mountpoint, nix::mount::MntFlags::MNT_DETACH);
}
