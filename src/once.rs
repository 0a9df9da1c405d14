//! `--once`: one snapshot of the host and one rule-engine tick over it,
//! rendered as the daemon would serve `/metrics` after its first tick.
//!
//! The engine always runs in dry-run here, whatever `remediation.mode` says:
//! `--once` is a look at the host, never an action on it. It reads the pause
//! file of the configured state directory (so a paused engine shows as
//! paused), but its audit records go to a scratch directory that is removed
//! afterwards, so the real audit log only ever holds what the daemon did.
//! The golden tests (tests/golden.rs) run this same path through the binary.

use std::sync::Arc;
use std::time::Instant;

use crate::actions::{executor_for, HostActions};
use crate::collector::Context;
use crate::config::{Config, StateDir};
use crate::host::HostPaths;
use crate::rules::config::Mode;
use crate::rules::control::Control;
use crate::rules::Engine;
use crate::sampler::Sampler;

/// The `/metrics` text of one snapshot plus the engine's dry-run report on it.
pub fn render(config: &Config, paths: HostPaths) -> std::io::Result<String> {
    // The pause file of the real state directory; no admin API here.
    let control = Arc::new(Control::new(&config.state_dir.0, None));
    let scratch = tempfile::Builder::new()
        .prefix("ocfs2-watchdog-once-")
        .tempdir()?;
    let mut config = config.clone();
    config.state_dir = StateDir(scratch.path().to_path_buf());
    config.remediation.mode = Mode::DryRun;
    let config = Arc::new(config);
    let ctx = Arc::new(Context::new(paths.clone(), Arc::clone(&config)));
    // Start following the kernel log before the tick, as the daemon does.
    crate::kernel_log::source::ensure_started(&ctx.kernel_log, &ctx.paths, &config);
    let mut sampler = Sampler::new(ctx);
    let mut snapshot = sampler.tick(config.sampler.collector_timeout);
    let executor = executor_for(Mode::DryRun, HostActions::new(paths, &config.remediation));
    let mut engine = Engine::new(Arc::clone(&config), executor, control);
    snapshot.remediation = Some(Arc::new(engine.tick(&snapshot, Instant::now())));
    Ok(snapshot.rendered_text().to_string())
}
