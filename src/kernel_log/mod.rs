//! The kernel log: OCFS2's most important events (self-fence, heartbeat
//! write timeouts, o2net timeouts, DLM evictions and recovery, journal replay,
//! error remounts, iSCSI failures) exist only as kernel messages.
//!
//! `record` parses the log formats (`/dev/kmsg` records, `dmesg` text,
//! `journalctl -k`), `classify` maps messages to the contract's fixed `event`
//! set, `state` accumulates counts between ticks, `source` follows
//! `/dev/kmsg` (or replays a file) on its own thread, `previous_boot` looks for
//! the fence that ended the last boot, and `persist` keeps the state that must
//! survive a restart. The `kernel_log` collector only reads `state`.

pub mod classify;
pub mod persist;
pub mod previous_boot;
pub mod record;
pub mod source;
pub mod state;
