//! Time to heal: how long a fault the engine acted on stayed a fault.
//!
//! The engine (`engine.rs`) notes for each target the tick that first saw
//! its finding, the first tick at which the finding had lasted the rule's
//! `for` (the first tick that could act), and whether an action on it
//! succeeded in enforce mode. When a later tick sees the finding gone, that
//! tick verified the healed state and both spans are observed here, per
//! action: `ocfs2_watchdog_heal_seconds` from the first tick that could act
//! to the tick that saw it healed, and `ocfs2_watchdog_heal_wait_seconds`
//! from the first tick that saw the fault to the first that could act (the
//! rule's `for`, rounded up to a tick). The two add up to the whole time
//! the fault lasted. A fault that cleared with no successful action (by
//! itself, or in dry-run) heals nothing and is not observed. Every action
//! has its series from the start (zero counts), so dashboards and alerts
//! never see a family appear out of nowhere. The report carries these to
//! `/metrics` (`report.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::actions::ACTIONS;
use crate::metrics::Family;

/// Upper bounds in seconds: an unstack takes well under a second, a
/// remount a few seconds, an o2cb restart up to a minute or two.
pub const BUCKETS: &[f64] = &[
    0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Observations per bucket (not cumulative), their sum and count.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Histogram {
    pub buckets: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: vec![0; BUCKETS.len()],
            sum: 0.0,
            count: 0,
        }
    }
}

impl Histogram {
    pub fn observe(&mut self, value: Duration) {
        let seconds = value.as_secs_f64();
        if let Some(index) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            if let Some(bucket) = self.buckets.get_mut(index) {
                *bucket = bucket.saturating_add(1);
            }
        }
        self.sum += seconds;
        self.count = self.count.saturating_add(1);
    }

    fn by_bound(&self) -> Vec<(f64, u64)> {
        BUCKETS
            .iter()
            .copied()
            .zip(self.buckets.iter().copied())
            .collect()
    }
}

/// Both histograms of one action.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ActionHealTimes {
    /// From the first tick that could act to the tick that saw it healed.
    pub heal: Histogram,
    /// From the first tick that saw the fault to the first that could act.
    pub wait: Histogram,
}

/// Per action name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealTimes(pub BTreeMap<&'static str, ActionHealTimes>);

impl Default for HealTimes {
    fn default() -> Self {
        Self(
            ACTIONS
                .iter()
                .map(|a| (a.name(), ActionHealTimes::default()))
                .collect(),
        )
    }
}

impl HealTimes {
    pub fn observe(&mut self, action: &'static str, heal: Duration, wait: Duration) {
        let times = self.0.entry(action).or_default();
        times.heal.observe(heal);
        times.wait.observe(wait);
    }

    pub fn families(&self) -> Vec<Family> {
        let mut heal = Family::histogram(
            "ocfs2_watchdog_heal_seconds",
            "Seconds from the first tick that could act on a fault (its rule's `for` over) to the tick that saw it healed, by the action that healed it.",
        );
        let mut wait = Family::histogram(
            "ocfs2_watchdog_heal_wait_seconds",
            "Seconds from the first tick that saw a fault to the first tick that could act on it (the rule's `for`, rounded up to a tick), for faults an action healed.",
        );
        for (action, times) in &self.0 {
            heal.push_histogram(
                &[("action", action)],
                times.heal.by_bound(),
                times.heal.sum,
                times.heal.count,
            );
            wait.push_histogram(
                &[("action", action)],
                times.wait.by_bound(),
                times.wait.sum,
                times.wait.count,
            );
        }
        vec![heal, wait]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let mut histogram = Histogram::default();
        for seconds in [0.2, 0.5, 4.0, 5.0, 5.1, 1000.0] {
            histogram.observe(Duration::try_from_secs_f64(seconds).unwrap());
        }
        assert_eq!(histogram.count, 6);
        assert!((histogram.sum - 1014.8).abs() < 1e-9);
        let by_bound = histogram.by_bound();
        assert_eq!(by_bound[0], (0.5, 2));
        assert_eq!(by_bound[3], (5.0, 2));
        assert_eq!(by_bound[4], (10.0, 1));
        // 1000 s is past the last bound: only in +Inf (count).
        assert_eq!(by_bound.iter().map(|(_, n)| n).sum::<u64>(), 5);
    }

    #[test]
    fn every_action_has_its_series_from_the_start() {
        let families = HealTimes::default().families();
        for family in &families {
            assert_eq!(family.histograms.len(), ACTIONS.len());
            assert!(family.histograms.iter().all(|h| h.count == 0));
        }
    }
}
