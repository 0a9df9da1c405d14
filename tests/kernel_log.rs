//! The kernel log end to end: capture replays with exact counts, the
//! `--kernel-log` flag, a followed character device (a private stand-in for
//! `/dev/kmsg`, so no test writes to the host's kernel log; the real one is
//! only read), previous-boot fence
//! detection from a fixture root, and the persisted state across restarts
//! and reboots.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ocfs2_watchdog::kernel_log::classify::Event;
use ocfs2_watchdog::kernel_log::persist;
use ocfs2_watchdog::kernel_log::previous_boot::Sources;
use ocfs2_watchdog::kernel_log::source::{replay_file, resume_or_examine, start, Plan};
use ocfs2_watchdog::kernel_log::state::KernelLogState;

fn data(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(relative)
}

/// Counts per event after replaying one capture, as (event, count) for the
/// non-zero ones.
fn replay_counts(file: &str) -> Vec<(&'static str, u64)> {
    let state = KernelLogState::new(64);
    replay_file(&state, &data(&format!("kernel-log/{file}")), Some(0.0));
    let (counters, _, error, _) = state.view();
    assert_eq!(error, None);
    assert!(counters.caught_up);
    Event::ALL
        .iter()
        .map(|e| (e.as_str(), counters.events[e.index()]))
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[test]
fn capture_replays_count_exactly() {
    // n1 while n2 was paused: idle timeout (92.3 s), lost connection (96.1 s),
    // eviction, one DLM recovery (Begin; "Recovery Master" and "End
    // recovery" are the same occurrence), one journal replay (Begin; End is
    // not counted), n2 accepted back (164.3 s). The lock dump matches nothing.
    assert_eq!(
        replay_counts("n1-03a-pause-dmesg-full.txt"),
        vec![
            ("net_idle_timeout", 1),
            ("net_disconnected", 1),
            ("net_connected", 1),
            ("dlm_node_evicted", 1),
            ("dlm_recovery", 1),
            ("journal_replay", 1),
        ]
    );
    // n2 (the paused node): connected at 46.6 s and again at 91.3 s, lost
    // once at 81.3 s ("shutdown, state 8" is the same loss; "No connection
    // established" is not an event of the contract). At 118.5 s the zombie
    // touches a file and the DLM refuses the lock: DLM_IVLOCKID twice and
    // "DLM error -22" are one burst, one dlm_lock_error; the "status = -22"
    // call-chain lines are not events.
    assert_eq!(
        replay_counts("n2-03a-pause-dmesg-full.txt"),
        vec![
            ("net_disconnected", 1),
            ("net_connected", 2),
            ("dlm_lock_error", 1)
        ]
    );
    // Two-node mount: each node logs its one o2net connection.
    assert_eq!(
        replay_counts("n1-02-2node-mounted-dmesg.txt"),
        vec![("net_connected", 1)]
    );
    assert_eq!(
        replay_counts("n2-02-2node-mounted-dmesg.txt"),
        vec![("net_connected", 1)]
    );
    // A whole boot up to "Heartbeat mode set to local": no events.
    assert_eq!(replay_counts("n1-01-online-nomount-dmesg.txt"), vec![]);
}

#[test]
fn replay_keeps_wall_time_and_recent_messages() {
    let state = KernelLogState::new(3);
    replay_file(
        &state,
        &data("kernel-log/n1-03a-pause-dmesg-full.txt"),
        Some(1_795_262_400.0),
    );
    let (counters, recent, _, _) = state.view();
    assert_eq!(counters.records_read, 21);
    assert_eq!(
        counters.last_timestamp_seconds[Event::NetIdleTimeout.index()],
        Some(1_795_262_400.0 + 92.337534)
    );
    // The ring keeps the last 3 of 6 events, oldest first.
    assert_eq!(recent.len(), 3);
    assert_eq!(recent[2].event, Event::NetConnected);
    assert!(recent[2]
        .message
        .starts_with("o2net: Accepted connection from node n2"));
}

#[test]
fn missing_file_is_a_clear_error() {
    let state = KernelLogState::new(3);
    replay_file(&state, &data("kernel-log/absent.txt"), None);
    let (_, _, error, _) = state.view();
    let error = error.expect("an error");
    assert!(error.message.contains("absent.txt"), "{error:?}");
}

#[test]
fn kernel_log_flag_replays_a_file() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
        .args([
            "--once",
            "--web.listen-address",
            "127.0.0.1:0",
            "--path.rootfs",
        ])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kernel-log-pause/rootfs"))
        .arg("--kernel-log")
        .arg(data("kernel-log/n2-03a-pause-dmesg-full.txt"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("ocfs2_kernel_events_total{event=\"net_connected\"} 2.0"),
        "{text}"
    );
    assert!(
        text.contains("ocfs2_kernel_events_total{event=\"fence\"} 0.0"),
        "{text}"
    );
    assert!(text.contains("ocfs2_fence_previous_boot 0.0"), "{text}");
}

fn previous_boot_plan(root: &Path, state_dir: &Path, boot_id: &str, boot_time: f64) -> Plan {
    Plan {
        source: PathBuf::from("/dev/kmsg"),
        state_dir: Some(state_dir.to_path_buf()),
        boot_id: Some(boot_id.to_string()),
        boot_time: Some(boot_time),
        previous: Sources {
            pstore_dir: root.join("sys/fs/pstore"),
            log_files: vec![root.join("var/log/kern.log"), root.join("var/log/messages")],
            journal: None,
            journal_timeout: Duration::from_secs(1),
            boot_time: Some(boot_time),
            now_unix: boot_time as i64 + 60,
        },
    }
}

fn fence_view(state: &KernelLogState) -> (Option<bool>, Option<u64>) {
    let (counters, _, _, _) = state.view();
    (counters.fence_previous_boot, counters.fences_total)
}

#[test]
fn previous_boot_fence_is_counted_once_per_boot() {
    let fixture = data("previous-boot/rootfs");
    let root = tempfile::tempdir().unwrap();
    support::copy_tree(&fixture, root.path());
    let state_dir = tempfile::tempdir().unwrap();
    let boot_a = 1_795_262_400.0;

    // Boot A: pstore and kern.log both show the fence that ended the boot before.
    let state = KernelLogState::new(8);
    resume_or_examine(
        &state,
        &previous_boot_plan(root.path(), state_dir.path(), "boot-a", boot_a),
    );
    assert_eq!(fence_view(&state), (Some(true), Some(1)));

    // Daemon restart in boot A: same answer, not counted again.
    let state = KernelLogState::new(8);
    resume_or_examine(
        &state,
        &previous_boot_plan(root.path(), state_dir.path(), "boot-a", boot_a),
    );
    assert_eq!(fence_view(&state), (Some(true), Some(1)));

    // Boot B, a clean reboot: the pstore record was counted already and
    // kern.log's fence is two boots old. The total survives.
    let boot_b = boot_a + 7200.0;
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(root.path().join("var/log/kern.log"))
        .unwrap();
    writeln!(
        log,
        "2026-11-21T14:00:01.000000+00:00 n1 kernel: [    0.000000] Linux version 6.1.0-56-amd64"
    )
    .unwrap();
    drop(log);
    let state = KernelLogState::new(8);
    resume_or_examine(
        &state,
        &previous_boot_plan(root.path(), state_dir.path(), "boot-b", boot_b),
    );
    assert_eq!(fence_view(&state), (Some(false), Some(1)));

    // Boot C after another fence, seen only in a new pstore record.
    let record = root.path().join("sys/fs/pstore/dmesg-ramoops-1");
    std::fs::copy(root.path().join("sys/fs/pstore/dmesg-ramoops-0"), &record).unwrap();
    let state = KernelLogState::new(8);
    resume_or_examine(
        &state,
        &previous_boot_plan(root.path(), state_dir.path(), "boot-c", boot_b + 600.0),
    );
    assert_eq!(fence_view(&state), (Some(true), Some(2)));
    let persisted = persist::load(state_dir.path()).unwrap().unwrap();
    assert_eq!(
        (persisted.boot_id.as_str(), persisted.fences_total),
        ("boot-c", 2)
    );
}

#[test]
fn unwritable_state_dir_is_counted_not_fatal() {
    let root = tempfile::tempdir().unwrap();
    let blocker = root.path().join("file");
    std::fs::write(&blocker, "").unwrap();
    let state = KernelLogState::new(8);
    let resumed = resume_or_examine(
        &state,
        &previous_boot_plan(root.path(), &blocker.join("state"), "boot-a", 1.0e9),
    );
    assert!(resumed.is_some());
    let (counters, _, _, _) = state.view();
    assert_eq!(counters.state_write_errors, 1);
    assert_eq!(counters.fence_previous_boot, Some(false));
}

// ---- followed sources: a private kmsg stand-in, the real one read-only ----

/// A private stand-in for `/dev/kmsg`: a pseudo-terminal in canonical mode,
/// a character device whose every read(2) returns one line, as `/dev/kmsg`
/// returns one record. The follower reads the terminal's path; the test
/// writes records to the other end. Nothing reaches the host's kernel log
/// (whose lines go to every log collector and any real watchdog there).
struct PrivateKmsg {
    master: std::fs::File,
    /// Held open so the terminal stays up whatever the follower does.
    _slave: std::fs::File,
    path: PathBuf,
    seq: u64,
}

impl PrivateKmsg {
    fn new() -> Self {
        use std::os::fd::FromRawFd;
        // SAFETY: plain libc calls on a descriptor this function owns; each
        // result is checked before it is used.
        unsafe {
            let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
            assert!(
                master >= 0,
                "posix_openpt: {}",
                std::io::Error::last_os_error()
            );
            let master = std::fs::File::from_raw_fd(master);
            use std::os::fd::AsRawFd;
            assert_eq!(libc::grantpt(master.as_raw_fd()), 0, "grantpt");
            assert_eq!(libc::unlockpt(master.as_raw_fd()), 0, "unlockpt");
            let mut name = [0 as libc::c_char; 128];
            assert_eq!(
                libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()),
                0,
                "ptsname_r"
            );
            let path = PathBuf::from(
                std::ffi::CStr::from_ptr(name.as_ptr())
                    .to_str()
                    .unwrap()
                    .to_string(),
            );
            let slave = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOCTTY)
                .open(&path)
                .unwrap();
            // Canonical (one line per read), no echo back to the writer.
            let mut term: libc::termios = std::mem::zeroed();
            assert_eq!(
                libc::tcgetattr(slave.as_raw_fd(), &mut term),
                0,
                "tcgetattr"
            );
            term.c_lflag |= libc::ICANON;
            term.c_lflag &= !(libc::ECHO | libc::ECHONL | libc::ISIG | libc::IEXTEN);
            term.c_iflag &= !(libc::ICRNL | libc::IXON);
            assert_eq!(
                libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &term),
                0,
                "tcsetattr"
            );
            Self {
                master,
                _slave: slave,
                path,
                seq: 1000,
            }
        }
    }

    /// Writes the next record in `/dev/kmsg`'s format; returns its line so
    /// a test can replay it as the kernel does on a fresh open.
    fn write(&mut self, priority: u8, text: &str) -> String {
        self.seq += 1;
        let line = format!("{priority},{},{},-;{text}\n", self.seq, self.seq * 1000);
        self.replay(&line);
        line
    }

    fn replay(&mut self, line: &str) {
        self.master.write_all(line.as_bytes()).unwrap();
    }
}

use std::os::unix::fs::OpenOptionsExt as _;

fn kmsg_plan(source: &Path, state_dir: &Path) -> Plan {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .ok();
    let mut plan = previous_boot_plan(Path::new("/nonexistent"), state_dir, "", 0.0);
    plan.source = source.to_path_buf();
    plan.boot_id = boot_id;
    plan.boot_time = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| ocfs2_watchdog::kernel_log::source::parse_btime(&s));
    plan
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    done()
}

fn ring_has(state: &KernelLogState, marker: &str) -> bool {
    state.view().1.iter().any(|e| e.message.contains(marker))
}

#[test]
fn followed_events_arrive_within_a_second() {
    let mut kmsg = PrivateKmsg::new();
    let state_dir = tempfile::tempdir().unwrap();
    let state = Arc::new(KernelLogState::new(4096));
    start(&state, kmsg_plan(&kmsg.path, state_dir.path()));
    assert!(
        wait_until(Duration::from_secs(30), || state.view().0.caught_up),
        "never caught up with the source"
    );
    let before = state.view().0;
    let marker = format!("ocfs2-watchdog-test-{}", std::process::id());
    kmsg.write(
        5,
        &format!("{marker}: o2net: Connected to node t9 (num 9) at 10.0.0.9:7777"),
    );
    kmsg.write(
        4,
        &format!(
            "{marker}: o2cb: o2dlm has evicted node 9 from domain 0123456789ABCDEF0123456789ABCDEF"
        ),
    );
    // Measured from the write; 1 s is a generous margin for a reader that
    // polls its source with no sleep.
    let written = Instant::now();
    assert!(
        wait_until(Duration::from_secs(1), || {
            let now = state.view().0;
            now.events[Event::NetConnected.index()] > before.events[Event::NetConnected.index()]
                && now.events[Event::DlmNodeEvicted.index()]
                    > before.events[Event::DlmNodeEvicted.index()]
                && ring_has(&state, &marker)
        }),
        "events not counted within 1 s: {:?}",
        state.view()
    );
    eprintln!("source to counter: {:?}", written.elapsed());
    let after = state.view().0;
    assert_eq!(after.records_read, before.records_read + 2);
    assert!(after.last_timestamp_seconds[Event::DlmNodeEvicted.index()].is_some());
}

#[test]
fn followed_restart_does_not_count_twice() {
    let mut kmsg = PrivateKmsg::new();
    let state_dir = tempfile::tempdir().unwrap();
    let first = Arc::new(KernelLogState::new(4096));
    start(&first, kmsg_plan(&kmsg.path, state_dir.path()));
    assert!(wait_until(Duration::from_secs(30), || first
        .view()
        .0
        .caught_up));
    let marker = format!("ocfs2-watchdog-restart-{}", std::process::id());
    let one = kmsg.write(
        5,
        &format!("{marker}-one: o2net: Connected to node t8 (num 8) at 10.0.0.8:7777"),
    );
    assert!(wait_until(Duration::from_secs(2), || ring_has(
        &first,
        &format!("{marker}-one")
    )));
    // The position is saved at most 100 ms after an event, or when quiet.
    let saved = wait_until(Duration::from_secs(5), || {
        persist::load(state_dir.path())
            .ok()
            .flatten()
            .and_then(|p| p.last_seq)
            .is_some()
    });
    assert!(saved, "position never persisted");

    // The restart: a fresh open of /dev/kmsg starts at the oldest record
    // still in the ring, so the new source hands the counted record over
    // again (same sequence number) before a new one. The first follower
    // keeps its own terminal, as a dead daemon's reader would be gone.
    let mut reopened = PrivateKmsg::new();
    reopened.seq = kmsg.seq;
    reopened.replay(&one);
    let second = Arc::new(KernelLogState::new(4096));
    start(&second, kmsg_plan(&reopened.path, state_dir.path()));
    assert!(wait_until(Duration::from_secs(30), || second
        .view()
        .0
        .caught_up));
    // Caught up means a second passed with nothing left to read: the
    // replayed record was read (and skipped by its sequence number).
    assert!(
        !ring_has(&second, &format!("{marker}-one")),
        "counted again after a restart"
    );
    reopened.write(
        5,
        &format!("{marker}-two: o2net: Connected to node t8 (num 8) at 10.0.0.8:7777"),
    );
    assert!(wait_until(Duration::from_secs(1), || ring_has(
        &second,
        &format!("{marker}-two")
    )));
}

/// The real `/dev/kmsg`, read only: the follower opens it, reads the ring
/// buffer since boot and catches up. Nothing is written to it.
#[test]
fn real_kmsg_is_followed_read_only() {
    if let Err(e) = std::fs::File::open("/dev/kmsg") {
        support::require(false, &format!("/dev/kmsg readable ({e}): root"));
        return;
    }
    let state_dir = tempfile::tempdir().unwrap();
    let state = Arc::new(KernelLogState::new(4096));
    start(&state, kmsg_plan(Path::new("/dev/kmsg"), state_dir.path()));
    assert!(
        wait_until(Duration::from_secs(30), || state.view().0.caught_up),
        "never caught up with the ring buffer"
    );
    let (counters, _, error, _) = state.view();
    assert_eq!(error, None);
    assert!(
        counters.records_read > 0,
        "the ring buffer is never empty after boot"
    );
}
