//! What an operator at the node reads during an incident: `ocfs2-watchdog
//! status` (one screen, like `crm_mon -1`), `ocfs2-watchdog check` (a
//! Nagios/Icinga plugin) and the `/` page of the daemon.
//!
//! `build` joins a `Snapshot`'s typed facts and the rule engine's report
//! into a serialisable `model::Overview`, which the daemon also serves under
//! `overview` in `/status`. `check` turns an overview into a verdict with the
//! `[check]` thresholds (`thresholds`); `render` and `sections` lay both out
//! as one document that `text` prints and `html` serves, so the command and
//! the page say the same. `command` runs the subcommands: it asks the local
//! daemon (`client`) and, when none answers, takes one snapshot itself.
//! `cluster` is the view of every node at once (`status --cluster`).

pub mod build;
pub mod check;
pub mod client;
pub mod cluster;
pub mod command;
pub mod html;
pub mod model;
pub mod redact;
pub mod render;
pub mod sections;
pub mod text;
pub mod thresholds;

use std::time::Duration;

pub use build::overview;

use crate::snapshot::Snapshot;
use thresholds::CheckConfig;

/// The `/` page for the latest snapshot; reads only the snapshot.
pub fn page(snapshot: &Snapshot, check: &CheckConfig, refresh: Duration) -> String {
    page_with(snapshot, check, refresh, redact::Redaction(false), None)
}

/// The `/` page, with the sensitive details left out when `redaction` says
/// so (the verdict is judged on the whole overview first: hiding text never
/// changes it), and the cluster view as last gathered as its own section.
pub fn page_with(
    snapshot: &Snapshot,
    check: &CheckConfig,
    refresh: Duration,
    redaction: redact::Redaction,
    cluster: Option<&cluster::ClusterStatus>,
) -> String {
    if !snapshot.is_ready() {
        let verdict = check::Verdict::unknown("no snapshot taken yet");
        let document = render::document(&model::Overview::default(), verdict, String::new(), check);
        return html::render(&document, refresh);
    }
    let mut overview = overview(snapshot);
    let mut verdict = check::evaluate(&overview, check);
    if redaction.0 {
        overview = redact::redact_overview(&overview);
        // A rule's target can be an IQN (a failed session).
        for finding in &mut verdict.findings {
            finding.text = redact::redact_text(&finding.text);
        }
        verdict.summary = redact::redact_text(&verdict.summary);
    }
    let origin = origin_line(&overview, "served by the daemon");
    let mut document = render::document(&overview, verdict, origin, check);
    if let Some(status) = cluster {
        document.sections.insert(1, cluster::section(status));
    }
    html::render(&document, refresh)
}

/// "Snapshot 12 taken 2026-11-28 23:10:11 UTC <how> (ocfs2-watchdog 0.1.0)".
pub fn origin_line(overview: &model::Overview, how: &str) -> String {
    format!(
        "Snapshot {} taken {} UTC, {how} (ocfs2-watchdog {})",
        overview.sequence,
        render::time(overview.taken_at_unix),
        overview.version
    )
}
