//! Timeout invariants between the o2cb stack and the storage path.
//!
//! The o2cb values come from configfs `/sys/kernel/config/cluster/<cluster>/`
//! (`idle_timeout_ms`, `keepalive_delay_ms`, `heartbeat/dead_threshold`;
//! fs/ocfs2/cluster/nodemanager.c and heartbeat.c, docs/interfaces.md §1.1,
//! §1.3), read by the shared `collector::configfs` reader.

use serde::Serialize;

use crate::collector::configfs::ClusterConfig;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct O2cbTimeouts {
    pub cluster: String,
    pub dead_threshold: Option<u32>,
    pub idle_timeout_ms: Option<u32>,
    pub keepalive_delay_ms: Option<u32>,
}

impl O2cbTimeouts {
    /// Self-fence write timeout: 2 s × (dead_threshold − 1) (o2hb_dead_threshold
    /// → `O2HB_MAX_WRITE_TIMEOUT_MS`), the time a node survives without a
    /// successful heartbeat write.
    pub fn heartbeat_timeout_seconds(&self) -> Option<f64> {
        self.dead_threshold
            .filter(|t| *t > 1)
            .map(|t| 2.0 * f64::from(t - 1))
    }
}

impl From<&ClusterConfig> for O2cbTimeouts {
    fn from(cluster: &ClusterConfig) -> Self {
        Self {
            cluster: cluster.name.clone(),
            dead_threshold: cluster.dead_threshold,
            idle_timeout_ms: cluster.idle_timeout_ms,
            keepalive_delay_ms: cluster.keepalive_delay_ms,
        }
    }
}

/// One invariant: `larger` must exceed `smaller`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Invariant {
    pub check: &'static str,
    pub larger_seconds: f64,
    pub smaller_seconds: f64,
}

impl Invariant {
    pub fn violated(&self) -> bool {
        self.larger_seconds <= self.smaller_seconds
    }
}

pub const HEARTBEAT_OVER_STORAGE: &str = "heartbeat_timeout_exceeds_storage_stall";
pub const IDLE_OVER_KEEPALIVE: &str = "idle_timeout_exceeds_keepalive_delay";

/// The invariants whose both values are known; `storage_stall` is the
/// longest time the storage under the watched mounts can hang before I/O
/// fails (or fails over).
pub fn invariants(o2cb: &O2cbTimeouts, storage_stall: Option<f64>) -> Vec<Invariant> {
    let mut checks = Vec::new();
    if let (Some(hb), Some(stall)) = (o2cb.heartbeat_timeout_seconds(), storage_stall) {
        checks.push(Invariant {
            check: HEARTBEAT_OVER_STORAGE,
            larger_seconds: hb,
            smaller_seconds: stall,
        });
    }
    if let (Some(idle), Some(keepalive)) = (o2cb.idle_timeout_ms, o2cb.keepalive_delay_ms) {
        checks.push(Invariant {
            check: IDLE_OVER_KEEPALIVE,
            larger_seconds: f64::from(idle) / 1000.0,
            smaller_seconds: f64::from(keepalive) / 1000.0,
        });
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_timeout_formula() {
        for (threshold, expected) in [
            (Some(31), Some(60.0)),
            (Some(7), Some(12.0)),
            (Some(61), Some(120.0)),
            (Some(1), None),
            (None, None),
        ] {
            let t = O2cbTimeouts {
                dead_threshold: threshold,
                ..O2cbTimeouts::default()
            };
            assert_eq!(t.heartbeat_timeout_seconds(), expected);
        }
    }

    #[test]
    fn lab_defaults_violate() {
        // The lab: dead_threshold 7 (12 s) against recovery_tmo 20 s: fences
        // before SCSI reports an error (lab README, iSCSI target killed).
        let lab = O2cbTimeouts {
            cluster: "labclu".into(),
            dead_threshold: Some(7),
            idle_timeout_ms: Some(10000),
            keepalive_delay_ms: Some(2000),
        };
        let checks = invariants(&lab, Some(20.0));
        assert!(checks[0].violated());
        assert!(!checks[1].violated());
        assert!(invariants(&lab, Some(f64::INFINITY))[0].violated());
        assert!(!invariants(&lab, Some(11.0))[0].violated());
        assert_eq!(invariants(&lab, None).len(), 1);
    }
}
