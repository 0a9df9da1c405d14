//! The lease as `/metrics` and `/status` show it: held now (by route),
//! attempts by route and result, time spent asking, how long the lease has
//! been denied without a break, and the last reason.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Lease, LeaseResult, Route};
use crate::metrics::{bool_value, Family};

/// Attempts come every tick while a target waits for the lease; none for
/// this long means nobody waits.
const ASKING_LAPSE: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LeaseView {
    /// Routes of the grants alive now (one per acting thread).
    pub held: Vec<Route>,
    pub max_concurrent_nodes: u32,
    /// (route, result, attempts) since start.
    pub attempts: Vec<(&'static str, &'static str, u64)>,
    pub wait_seconds_total: f64,
    /// Seconds every attempt has been denied, 0 after a grant.
    pub contended_seconds: f64,
    pub last_denial: Option<String>,
}

impl Lease {
    pub fn view(&self, now: Instant) -> LeaseView {
        let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        LeaseView {
            held: self.local.held(),
            max_concurrent_nodes: self.max_concurrent_nodes,
            attempts: [Route::Dlmfs, Route::Peers]
                .into_iter()
                .flat_map(|route| LeaseResult::ALL.into_iter().map(move |r| (route, r)))
                .map(|(route, result)| {
                    let n = stats.attempts.get(&(route, result)).copied().unwrap_or(0);
                    (route.as_str(), result.as_str(), n)
                })
                .collect(),
            wait_seconds_total: stats.wait_seconds,
            // Nobody asking any more (the target resolved): not contended.
            contended_seconds: stats
                .contended_since
                .filter(|_| {
                    stats
                        .last_attempt
                        .is_some_and(|at| now.saturating_duration_since(at) < ASKING_LAPSE)
                })
                .map_or(0.0, |since| {
                    now.saturating_duration_since(since).as_secs_f64()
                }),
            last_denial: stats.last_denial.clone(),
        }
    }
}

impl LeaseView {
    pub fn families(&self) -> Vec<Family> {
        let mut held = Family::gauge(
            "ocfs2_watchdog_lease_held",
            "1 while an action of this node holds the cluster lease, by route (dlmfs: an o2dlm lock; peers: every peer agreed).",
        );
        for route in [Route::Dlmfs, Route::Peers] {
            held.push(
                &[("route", route.as_str())],
                bool_value(self.held.contains(&route)),
            );
        }
        let mut attempts = Family::counter(
            "ocfs2_watchdog_lease_acquisitions",
            "Attempts to take the cluster lease before a disruptive action, by route and result (acquired, busy, peers_unreachable, no_token, node_unknown, error).",
        );
        for route in [Route::Dlmfs, Route::Peers] {
            for result in LeaseResult::ALL {
                let n = self
                    .attempts
                    .iter()
                    .find(|(r, res, _)| *r == route.as_str() && *res == result.as_str())
                    .map_or(0, |a| a.2);
                attempts.push(
                    &[("route", route.as_str()), ("result", result.as_str())],
                    n as f64,
                );
            }
        }
        vec![
            held,
            attempts,
            Family::gauge(
                "ocfs2_watchdog_lease_max_concurrent_nodes",
                "How many nodes of the cluster may hold the lease at once ([cluster] max_concurrent_nodes).",
            )
            .with(&[], f64::from(self.max_concurrent_nodes)),
            Family::counter(
                "ocfs2_watchdog_lease_wait_seconds",
                "Seconds spent asking for the cluster lease (the DLM trylock, the peers' two rounds).",
            )
            .with(&[], self.wait_seconds_total),
            Family::gauge(
                "ocfs2_watchdog_lease_contended_seconds",
                "Seconds every attempt to take the cluster lease has been denied (0 after a grant, before any attempt, and 5 min after the last attempt).",
            )
            .with(&[], self.contended_seconds),
        ]
    }
}
