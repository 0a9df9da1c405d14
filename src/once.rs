//! `--once`: one snapshot of the host and one rule-engine tick over it,
//! rendered as the daemon would serve `/metrics` after its first tick.
//!
//! The engine always runs in dry-run here, whatever `remediation.mode` says:
//! `--once` is a look at the host, never an action on it. It reads the pause
//! file of the configured state directory (so a paused engine shows as
//! paused), but its audit records go to a scratch directory that is removed
//! afterwards, so the real audit log only ever holds what the daemon did.
//! The startup grace is off: it would only hide the decisions.
//! The golden tests (tests/golden.rs) run this same path through the binary.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::actions::unstack::UnstackIgnore;
use crate::actions::{executor_for, HostActions};
use crate::config::{Config, StateDir};
use crate::host::HostPaths;
use crate::rules::config::Mode;
use crate::rules::control::{Control, PAUSE_FILE};
use crate::rules::Engine;

/// The `/metrics` text of one snapshot plus the engine's dry-run report on it.
pub fn render(config: &Config, paths: HostPaths) -> std::io::Result<String> {
    let scratch = crate::status::command::scratch_dir("ocfs2-watchdog-once-")?;
    // The real pause file, copied with its time (the pause's age), so a
    // paused engine shows as paused; the control writes its own audit lines
    // into the scratch directory, never the real one. No admin API here.
    let pause = config.state_dir.0.join(PAUSE_FILE);
    if let Ok(set) = std::fs::metadata(&pause).and_then(|m| m.modified()) {
        let copy = scratch.path().join(PAUSE_FILE);
        std::fs::copy(&pause, &copy)?;
        std::fs::File::options()
            .write(true)
            .open(&copy)?
            .set_modified(set)?;
    }
    let control = Arc::new(Control::new(scratch.path(), None));
    let mut config = config.clone();
    config.state_dir = StateDir(scratch.path().to_path_buf());
    config.remediation.mode = Mode::DryRun;
    // The grace keeps a starting daemon from racing systemd; here it would
    // only hide what the engine decides, and nothing acts anyway.
    config.remediation.startup_grace = Duration::ZERO;
    let config = Arc::new(config);
    // The same snapshot as `status --local`: the kernel log caught up, and a
    // probe still running after the first pass looked at again past its
    // deadline, so a hung mount shows as stuck.
    let mut snapshot = crate::sampler::take_one(paths.clone(), Arc::clone(&config));
    // No peer protocol here: the node's identity, and nothing rejected.
    let identity = crate::cluster::peers::identity_metrics(&config.cluster, &paths);
    let executor = executor_for(
        Mode::DryRun,
        HostActions::new(paths, &config.remediation)
            .with_unstack_ignore(UnstackIgnore::new(config.mounts.unstack_ignore.clone())),
    );
    let mut engine = Engine::new(Arc::clone(&config), executor, control);
    let mut report = engine.tick(&snapshot, Instant::now());
    report.peer_protocol = Some(identity);
    snapshot.remediation = Some(Arc::new(report));
    // `/metrics` adds the refused-input counters at scrape time; so does
    // this, so the goldens (and the alerts checked against them) know it.
    let input = crate::metrics::encode(crate::metrics::normalize(vec![crate::input::family()]));
    Ok([
        snapshot.rendered_text(),
        &crate::metrics::openmetrics_to_text(&input),
    ]
    .concat())
}
