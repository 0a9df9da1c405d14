//! The QEMU lab (tests/lab/README.md) inside the test command: every
//! scenario with real faults on a real OCFS2 kernel, driven by
//! tests/lab/lab.py against the daemon binary this build produced. Needs root
//! (apt for the package cache, the shared share and QEMU's files); skipped
//! with a reason when run unprivileged by hand, a failure under CI=true.
//! About 17 minutes on two idle cores (tests/lab/README.md's table):
//! `cargo test --lib --bins --tests -- --skip lab_scenarios` leaves it out
//! locally.

mod support;

use std::path::Path;
use std::process::Command;

#[test]
fn lab_scenarios_pass_on_a_real_ocfs2_kernel() {
    if !support::require(nix::unistd::geteuid().is_root(), "root (QEMU lab)")
        || !support::require(
            support::have_command("python3"),
            "python3 (QEMU lab driver)",
        )
    {
        return;
    }
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/lab.py");
    let status = Command::new("python3")
        .arg(&driver)
        .arg("--daemon")
        .arg(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
        .status()
        .expect("running the lab driver");
    assert!(status.success(), "lab scenarios failed: {status}");
}
