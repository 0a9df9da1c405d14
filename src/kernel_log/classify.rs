//! Kernel message → `event` classification: one table of patterns.
//!
//! Templates and their kernel sources are in `docs/interfaces.md`
//! §4 (heartbeat.c, quorum.c, tcp.c, stack_o2cb.c, dlmrecovery.c, super.c,
//! journal.c, libiscsi.c, scsi_transport_iscsi.c). Matching is by ordered
//! substrings, not regular expressions: every template has fixed words, the
//! variable parts (node names, numbers, devices) are simply skipped, and the
//! `(pid,cpu)` / `(comm,pid,cpu)` mlog prefixes and dmesg/journal timestamps
//! never need anchoring. That keeps classification allocation-free and fast
//! enough for a kernel log flood (see `benches/kernel_log.rs`), and the
//! spelling changes between kernel versions are listed as alternatives in the
//! table rather than hidden in regex syntax.
//!
//! Adding a message: one row in `PATTERNS`, one test line below.

use serde::Serialize;

/// The fixed `event` label set (docs/metrics.md, "Kernel log"): never renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    Fence,
    HbWriteTimeout,
    HbWriteHung,
    HbIoError,
    NetIdleTimeout,
    NetDisconnected,
    NetConnected,
    DlmNodeEvicted,
    DlmRecovery,
    JournalReplay,
    FsReadonly,
    FsError,
    ConfigMismatch,
    IscsiConnError,
    IscsiRecoveryTimeout,
    DlmLockError,
}

impl Event {
    /// Every event, in label order; the collector exports each one (0 until
    /// seen) so alerts on `increase()` work from the first scrape.
    pub const ALL: [Event; 16] = [
        Event::Fence,
        Event::HbWriteTimeout,
        Event::HbWriteHung,
        Event::HbIoError,
        Event::NetIdleTimeout,
        Event::NetDisconnected,
        Event::NetConnected,
        Event::DlmNodeEvicted,
        Event::DlmRecovery,
        Event::JournalReplay,
        Event::FsReadonly,
        Event::FsError,
        Event::ConfigMismatch,
        Event::IscsiConnError,
        Event::IscsiRecoveryTimeout,
        Event::DlmLockError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::Fence => "fence",
            Event::HbWriteTimeout => "hb_write_timeout",
            Event::HbWriteHung => "hb_write_hung",
            Event::HbIoError => "hb_io_error",
            Event::NetIdleTimeout => "net_idle_timeout",
            Event::NetDisconnected => "net_disconnected",
            Event::NetConnected => "net_connected",
            Event::DlmNodeEvicted => "dlm_node_evicted",
            Event::DlmRecovery => "dlm_recovery",
            Event::JournalReplay => "journal_replay",
            Event::FsReadonly => "fs_readonly",
            Event::FsError => "fs_error",
            Event::ConfigMismatch => "config_mismatch",
            Event::IscsiConnError => "iscsi_conn_error",
            Event::IscsiRecoveryTimeout => "iscsi_recovery_timeout",
            Event::DlmLockError => "dlm_lock_error",
        }
    }

    pub fn index(self) -> usize {
        Event::ALL.iter().position(|e| *e == self).unwrap_or(0)
    }
}

/// One message template: each step is a set of alternatives, and the steps
/// must appear in this order in the message text.
pub struct Pattern {
    pub event: Event,
    pub steps: &'static [&'static [&'static str]],
    /// Lines that belong to one occurrence logged as several lines (a fence
    /// prints the quorum decision, "stopping heartbeat" and "very sorry"; a
    /// heartbeat write error prints the bio error and the write error) share a
    /// group: within `DEDUP_WINDOW_USEC` of the last counted line of the same
    /// group a line is absorbed, not counted again.
    pub group: Option<&'static str>,
}

/// Lines of one fence or one failed heartbeat I/O are printed within
/// milliseconds of each other; 30 s is far below the time a node needs to
/// reboot and fence again, and above a heartbeat period (2 s), so repeated
/// I/O errors of a dead disk still count once per 30 s at most.
pub const DEDUP_WINDOW_USEC: u64 = 30_000_000;

const fn p(event: Event, steps: &'static [&'static [&'static str]]) -> Pattern {
    Pattern {
        event,
        steps,
        group: None,
    }
}

const fn grouped(
    event: Event,
    group: &'static str,
    steps: &'static [&'static [&'static str]],
) -> Pattern {
    Pattern {
        event,
        steps,
        group: Some(group),
    }
}

/// The table. Order matters only where one message contains another's words;
/// the first matching row wins.
pub static PATTERNS: &[Pattern] = &[
    // §4.2 fence [quo]: "panicing" (old) and "panicking" (2024 fix) both
    // contain the common head.
    grouped(
        Event::Fence,
        "fence",
        &[&["ocfs2 is very sorry to be fencing this system"]],
    ),
    // Quorum decisions that lead to the fence. "not fencing this node, ..."
    // (the survive decision) has no "because" and does not match.
    grouped(
        Event::Fence,
        "fence",
        &[
            &["fencing this node because it is only connected to "],
            &[" to make a quorum"],
        ],
    ),
    grouped(
        Event::Fence,
        "fence",
        &[&["fencing this node because it is connected to a half-quorum of "]],
    ),
    grouped(
        Event::Fence,
        "fence",
        &[&["stopping heartbeat on all active regions"]],
    ),
    // §4.1 heartbeat [hb].
    p(
        Event::HbWriteTimeout,
        &[&["Heartbeat write timeout to device "], &[" milliseconds"]],
    ),
    // Both the master and the negotiating form; "all nodes hb write hung" is
    // the master's follow-up line of the same occurrence and is not counted.
    p(
        Event::HbWriteHung,
        &[&["o2hb: node "], &[" hb write hung for "], &[" on region "]],
    ),
    grouped(
        Event::HbIoError,
        "hb_io",
        &[&["Write error "], &[" on device \""]],
    ),
    // The bio completion error of the same write, logged from
    // o2hb_bio_end_io; a bare "IO Error" elsewhere is not o2hb's.
    grouped(
        Event::HbIoError,
        "hb_io",
        &[&["o2hb_bio_end_io:"], &["IO Error "]],
    ),
    // §4.3 o2net [tcp]: modern "has been idle for 10.202 secs." and older
    // "has been idle for 10 seconds, shutting it down." ("connection" was
    // lower-case in the oldest kernels).
    p(
        Event::NetIdleTimeout,
        &[
            &["o2net: Connection to node ", "o2net: connection to node "],
            &[" has been idle for "],
            &[" sec"],
        ],
    ),
    p(
        Event::NetDisconnected,
        &[&[
            "o2net: No longer connected to node ",
            "o2net: no longer connected to node ",
        ]],
    ),
    p(
        Event::NetConnected,
        &[&[
            "o2net: Connected to node ",
            "o2net: connected to node ",
            "o2net: Accepted connection from node ",
            "o2net: accepted connection from node ",
        ]],
    ),
    // Network and heartbeat timing that differs between nodes.
    p(
        Event::ConfigMismatch,
        &[
            &["o2net: "],
            &[
                " uses a network idle timeout of ",
                " uses a keepalive delay of ",
                " uses a heartbeat timeout of ",
            ],
            &[" ms locally"],
        ],
    ),
    p(
        Event::ConfigMismatch,
        &[
            &["o2net: "],
            &[" Advertised net protocol version "],
            &[" is required"],
        ],
    ),
    p(
        Event::ConfigMismatch,
        &[
            &["Node "],
            &[" has a dead count of "],
            &[" ms, but our count is "],
        ],
    ),
    // §4.4 o2cb / o2dlm [so2cb, dlmreco]: recovery counts at its begin.
    p(
        Event::DlmNodeEvicted,
        &[&["o2dlm has evicted node "], &[" from domain "]],
    ),
    p(
        Event::DlmRecovery,
        &[&["o2dlm: Begin recovery on domain "], &[" for node "]],
    ),
    // §4.5 ocfs2 [super, journal]: replay counts at its begin; pre-3.x
    // kernels logged "Recovering node N from slot S on device (M,m)".
    p(
        Event::JournalReplay,
        &[&["ocfs2: Begin replay journal (node "], &[" on device ("]],
    ),
    p(
        Event::JournalReplay,
        &[&["Recovering node "], &[" from slot "], &[" on device ("]],
    ),
    // Modern "OCFS2: File system is now read-only." and older "... due to
    // the potential of on-disk corruption".
    p(Event::FsReadonly, &[&["File system is now read-only"]]),
    // Lock requests the DLM refuses: what a zombie node (evicted by its peers
    // while paused, heartbeating again after resume) sees on every access
    // (lab captures/n2-03a: DLM_IVLOCKID, "DLM error -22 while calling
    // ocfs2_dlm_lock"; fs/ocfs2/dlmglue.c ocfs2_log_dlm_error,
    // fs/ocfs2/dlm/dlmconvert.c). One access logs a burst: one group.
    grouped(
        Event::DlmLockError,
        "dlm_lock_error",
        &[&["DLM error "], &[" while calling ocfs2_dlm_"]],
    ),
    grouped(
        Event::DlmLockError,
        "dlm_lock_error",
        &[&["ERROR: dlm status = DLM_IVLOCKID"]],
    ),
    p(Event::FsError, &[&["OCFS2: ERROR (device "]]),
    p(Event::FsError, &[&["OCFS2: abort (device "]]),
    p(
        Event::FsError,
        &[&["JBD2 has aborted our journal, ocfs2 cannot continue"]],
    ),
    p(
        Event::FsError,
        &[&["Error "], &[" recovering node "], &[" on device ("]],
    ),
    // §4.6 iSCSI [libiscsi, iscsi]: the ping timeout is followed by the
    // connection error it causes, which is the one counted.
    p(
        Event::IscsiConnError,
        &[&["connection"], &[": detected conn error ("]],
    ),
    p(
        Event::IscsiRecoveryTimeout,
        &[&["session"], &[": session recovery timed out after "]],
    ),
];

/// The row a message matches, if any.
pub fn classify(text: &str) -> Option<&'static Pattern> {
    PATTERNS.iter().find(|pattern| matches(pattern, text))
}

fn matches(pattern: &Pattern, text: &str) -> bool {
    let mut rest = text;
    for step in pattern.steps {
        let found = step
            .iter()
            .filter_map(|needle| rest.find(needle).map(|at| at + needle.len()))
            .min();
        match found {
            Some(end) => rest = &rest[end..],
            None => return false,
        }
    }
    true
}

/// Decides whether a classified line is a new occurrence or a companion line
/// of one already counted (`Pattern::group`), by time.
#[derive(Debug, Default, Clone)]
pub struct Deduper {
    /// Last counted time (µs) per group name.
    last: Vec<(&'static str, u64)>,
}

impl Deduper {
    /// `time_usec` is the record's time on any monotonic scale (kernel time,
    /// or wall time for sources that only have that); `None` when the source
    /// had no time, which absorbs companions of the last counted occurrence.
    pub fn is_new(&mut self, pattern: &Pattern, time_usec: Option<u64>) -> bool {
        let Some(group) = pattern.group else {
            return true;
        };
        let now = time_usec.unwrap_or(0);
        match self.last.iter_mut().find(|(name, _)| *name == group) {
            Some((_, last)) if now >= *last && now - *last < DEDUP_WINDOW_USEC => false,
            Some((_, last)) => {
                *last = now;
                true
            }
            None => {
                self.last.push((group, now));
                true
            }
        }
    }
}

#[cfg(test)]
#[path = "classify_tests.rs"]
mod tests;
