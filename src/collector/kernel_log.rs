//! The `kernel_log` collector: reports what the kernel log source
//! (`crate::kernel_log`) has counted so far.
//!
//! It reads no host file itself: the source follows `/dev/kmsg`
//! (Documentation/ABI/testing/dev-kmsg) on its own thread, or replays the
//! file given by `kernel_log.source` / `--kernel-log`, and found the
//! previous boot's fence in pstore (`/sys/fs/pstore`), the journal or
//! syslog files. Events stream into the shared accumulator between ticks;
//! a tick only copies the counters, so nothing is lost between samples.
//! Message templates: `docs/interfaces.md` §4.

use std::sync::Arc;

use serde::Serialize;

use super::{CollectError, Collector, Context};
use crate::collector::{Facts, Section};
use crate::kernel_log::classify::Event;
use crate::kernel_log::source::ensure_started;
use crate::kernel_log::state::{Counters, RecentEvent};
use crate::metrics::{bool_value, family_table, Families, Family};

pub struct KernelLog;

/// For `/status` and the rules.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KernelLogFacts {
    pub counters: Counters,
    /// The last events, oldest first (bounded by `kernel_log.recent_events`).
    pub recent: Vec<RecentEvent>,
}

impl Collector for KernelLog {
    fn name(&self) -> &'static str {
        "kernel_log"
    }

    fn collect(&self, ctx: &Context, _previous: Option<&Section>) -> Result<Section, CollectError> {
        ensure_started(&ctx.kernel_log, &ctx.paths, &ctx.config);
        let (counters, recent, error, absent) = ctx.kernel_log.view();
        if let Some(reason) = absent {
            return Ok(Section {
                absent: Some(reason),
                ..Section::default()
            });
        }
        if let Some(error) = error {
            return Err(CollectError::new(
                error.kind,
                &ctx.config.kernel_log.source,
                error.message,
            ));
        }
        Ok(Section {
            families: families(&counters),
            facts: Facts::KernelLog(Arc::new(KernelLogFacts { counters, recent })),
            absent: None,
        })
    }
}

family_table! {
    /// The kernel_log collector's families.
    enum KernelLogFamily {
        Events = counter(
            "ocfs2_kernel_events",
            "Classified kernel messages since the daemon started following the log (one occurrence counts once).",
        ),
        LastTimestamp = gauge(
            "ocfs2_kernel_event_last_timestamp_seconds",
            "Unix time of the last kernel message of this event (boot time plus kernel time).",
        ),
        RecordsLost = counter(
            "ocfs2_kernel_log_records_lost",
            "Kernel log records overwritten in the ring buffer before the daemon read them.",
        ),
        RecordsRead = counter(
            "ocfs2_watchdog_kernel_log_records",
            "Kernel log records read (classified or not).",
        ),
        StateWriteErrors = counter(
            "ocfs2_watchdog_state_write_errors",
            "Failed writes of the persisted state (the kernel log position may be counted twice after a restart).",
        ),
        FencePreviousBoot = gauge(
            "ocfs2_fence_previous_boot",
            "1 when the previous boot ended in an OCFS2 self-fence (pstore, journal or syslog).",
        ),
        Fences = counter(
            "ocfs2_fences",
            "Self-fences of this node recorded so far, kept across reboots (one per boot).",
        ),
    }
}

/// The families of one view of the counters (also used by tests).
pub fn families(counters: &Counters) -> Vec<Family> {
    use KernelLogFamily as F;
    let mut f = Families::<KernelLogFamily>::new();
    for event in Event::ALL {
        let index = event.index();
        let labels = [("event", event.as_str())];
        f[F::Events].push(&labels, counters.events[index] as f64);
        if let Some(t) = counters.last_timestamp_seconds[index] {
            f[F::LastTimestamp].push(&labels, t);
        }
    }
    f[F::RecordsLost].push(&[], counters.records_lost as f64);
    f[F::RecordsRead].push(&[], counters.records_read as f64);
    f[F::StateWriteErrors].push(&[], counters.state_write_errors as f64);
    if let Some(fenced) = counters.fence_previous_boot {
        f[F::FencePreviousBoot].push(&[], bool_value(fenced));
    }
    if let Some(total) = counters.fences_total {
        f[F::Fences].push(&[], total as f64);
    }
    f.into_vec()
}
