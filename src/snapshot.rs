//! One immutable sample of the node: what every collector saw on one tick.
//!
//! The sampler builds a `Snapshot` per tick and publishes it as an `Arc`
//! through a watch channel; `/metrics`, `/status` and the rule engine read
//! only the latest one and never touch the host. Each collector contributes a
//! `Section` (its metric families and typed facts for the rules, defined with
//! the collectors in `collector::section`, the layer below) plus a
//! `CollectorReport` saying whether its sources could be read.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::collector::dlm::DlmFacts;
use crate::collector::fs_state::FsStateFacts;
use crate::collector::heartbeat::HeartbeatFacts;
use crate::collector::kernel_log::KernelLogFacts;
use crate::collector::mounts::MountFacts;
use crate::collector::net::NetFacts;
use crate::collector::o2cb::O2cbFacts;
use crate::collector::storage::{IscsiFacts, StorageFacts};
use crate::collector::{ErrorKind, Facts, Section};
use crate::metrics::{bool_value, family_table, Families, Family};

family_table! {
    /// The daemon's own families, served with every snapshot.
    enum SelfFamily {
        BuildInfo = gauge("ocfs2_watchdog_build_info", "Build information; always 1."),
        CollectorSuccess = gauge(
            "ocfs2_watchdog_collector_success",
            "1 when the collector's last run read its sources without error.",
        ),
        CollectorDuration = gauge(
            "ocfs2_watchdog_collector_duration_seconds",
            "How long the collector's last completed run took.",
        ),
        CollectorError = gauge(
            "ocfs2_watchdog_collector_error",
            "1 for the reason the collector's last run failed (fixed set of reasons).",
        ),
        CollectorSourceAbsent = gauge(
            "ocfs2_watchdog_collector_source_absent",
            "1 when the collector's source does not exist on this host (nothing to report, not an error).",
        ),
        SnapshotTimestamp = gauge(
            "ocfs2_watchdog_snapshot_timestamp_seconds",
            "Unix time the served snapshot was taken.",
        ),
        ProbeStuck = gauge(
            "ocfs2_watchdog_probe_stuck",
            "Probe threads currently blocked past their deadline.",
        ),
        ProbeThreads = gauge(
            "ocfs2_watchdog_probe_threads",
            "Probe threads alive (running or blocked).",
        ),
        Enforcing = gauge(
            "ocfs2_watchdog_enforcing",
            "1 when remediation acts, 0 in dry-run.",
        ),
    }
}

/// How the collector's last run went.
#[derive(Debug, Clone, Serialize)]
pub struct CollectorReport {
    pub success: bool,
    pub duration_seconds: f64,
    /// Fixed set (`ErrorKind`) so alerts can group on it.
    pub error_kind: Option<ErrorKind>,
    pub error: Option<String>,
    pub absent: Option<String>,
    /// The section is from an earlier tick because the current run is still going.
    pub stale: bool,
}

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub taken_at: SystemTime,
    pub sequence: u64,
    pub collectors: BTreeMap<&'static str, (CollectorReport, Arc<Section>)>,
    /// Probe threads blocked past their deadline when the tick ended.
    pub probes_stuck: usize,
    pub probes_running: usize,
    pub enforcing: bool,
    /// The rule engine's last report (none in `--once` or before its first tick).
    pub remediation: Option<Arc<crate::rules::Report>>,
    /// The OpenMetrics text, rendered on the first scrape of this snapshot.
    pub rendered: OnceLock<String>,
    /// The same in Prometheus text format 0.0.4, made on first request.
    pub rendered_text: OnceLock<String>,
}

/// Typed accessors, one per collector that hands facts to the rules.
macro_rules! facts_accessor {
    ($($method:ident: $collector:literal => $variant:ident($ty:ty)),* $(,)?) => {
        impl Snapshot {
            $(
                pub fn $method(&self) -> Option<&$ty> {
                    match self.facts($collector)? {
                        Facts::$variant(facts) => Some(facts.as_ref()),
                        _ => None,
                    }
                }
            )*
        }
    };
}

facts_accessor! {
    mounts: "mounts" => Mounts(MountFacts),
    o2cb: "o2cb" => O2cb(O2cbFacts),
    heartbeat: "heartbeat" => Heartbeat(HeartbeatFacts),
    net: "net" => Net(NetFacts),
    dlm: "dlm" => Dlm(DlmFacts),
    fs_state: "fs_state" => FsState(FsStateFacts),
    iscsi: "iscsi" => Iscsi(IscsiFacts),
    storage: "storage" => Storage(StorageFacts),
    kernel_log: "kernel_log" => KernelLog(KernelLogFacts),
}

impl Snapshot {
    /// The snapshot served before the first tick completes.
    pub fn empty() -> Self {
        Self {
            taken_at: SystemTime::UNIX_EPOCH,
            sequence: 0,
            collectors: BTreeMap::new(),
            probes_stuck: 0,
            probes_running: 0,
            enforcing: false,
            remediation: None,
            rendered: OnceLock::new(),
            rendered_text: OnceLock::new(),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.sequence > 0
    }

    /// Records `facts` as the named collector's successful run, with no
    /// families: how rule tests and fixtures build a snapshot from facts.
    pub fn insert_facts(&mut self, collector: &'static str, facts: Facts) {
        let report = CollectorReport {
            success: true,
            duration_seconds: 0.0,
            error_kind: None,
            error: None,
            absent: None,
            stale: false,
        };
        let section = Section {
            facts,
            ..Section::default()
        };
        self.collectors
            .insert(collector, (report, Arc::new(section)));
    }

    /// The facts the named collector produced on its last run.
    pub fn facts(&self, collector: &str) -> Option<&Facts> {
        self.collectors
            .get(collector)
            .map(|(_, section)| &section.facts)
    }

    /// Every family: the daemon's own, then each collector's, sorted by name.
    pub fn families(&self) -> Vec<Family> {
        let mut families = self.self_families();
        families.extend(self.remediation.iter().flat_map(|r| r.families()));
        for (_, section) in self.collectors.values() {
            families.extend(section.families.iter().cloned());
        }
        families.sort_by(|a, b| a.name.cmp(b.name));
        families
    }

    fn self_families(&self) -> Vec<Family> {
        use SelfFamily as F;
        let mut f = Families::<SelfFamily>::new();
        f[F::BuildInfo].push(
            &[
                ("version", env!("CARGO_PKG_VERSION")),
                ("revision", env!("OCFS2_WATCHDOG_REVISION")),
                ("rustc_version", env!("OCFS2_WATCHDOG_RUSTC_VERSION")),
            ],
            1.0,
        );
        for (name, (report, _)) in &self.collectors {
            let collector = [("collector", *name)];
            f[F::CollectorSuccess].push(&collector, bool_value(report.success));
            f[F::CollectorDuration].push(&collector, report.duration_seconds);
            if let Some(kind) = report.error_kind {
                f[F::CollectorError].push(&[collector[0], ("reason", kind.as_str())], 1.0);
            }
            f[F::CollectorSourceAbsent].push(&collector, bool_value(report.absent.is_some()));
        }
        let timestamp = self
            .taken_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs_f64();
        f[F::SnapshotTimestamp].push(&[], timestamp);
        f[F::ProbeStuck].push(&[], self.probes_stuck as f64);
        f[F::ProbeThreads].push(&[], self.probes_running as f64);
        f[F::Enforcing].push(&[], bool_value(self.enforcing));
        f.into_vec()
    }

    /// The OpenMetrics text of this snapshot, rendered once.
    pub fn rendered(&self) -> &str {
        self.rendered
            .get_or_init(|| crate::metrics::encode(crate::metrics::normalize(self.families())))
    }

    /// The Prometheus text format 0.0.4 of this snapshot, rendered once.
    pub fn rendered_text(&self) -> &str {
        self.rendered_text
            .get_or_init(|| crate::metrics::openmetrics_to_text(self.rendered()))
    }
}
