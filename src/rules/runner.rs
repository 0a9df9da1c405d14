//! The engine's own thread: waits for each published snapshot, runs one
//! engine tick on it, publishes the report. Actions may take seconds (4096
//! unmounts) or up to `action_timeout`; they never delay the sampler or a
//! scrape, which only read the last published report. Every pass of its
//! loop beats `liveness` (`crate::liveness::EngineHealth`), which
//! `/healthz` reads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::control::Control;
use super::{Engine, Report};
use crate::actions::Executor;
use crate::config::Config;
use crate::host::HostPaths;
use crate::snapshot::Snapshot;

pub type ReportReceiver = watch::Receiver<Option<Arc<Report>>>;

/// Starts the engine thread with `executor` (`actions::hostns::executor_for_host`
/// picks it); it stops when `stop` is set. The thread beats the returned
/// heartbeat (limit: `engine_stall_intervals` sampler intervals).
pub fn spawn(
    config: Arc<Config>,
    executor: Box<dyn Executor>,
    paths: &HostPaths,
    control: Arc<Control>,
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    stop: Arc<AtomicBool>,
    cluster: Option<(
        Arc<crate::cluster::Maintenance>,
        Arc<crate::cluster::peers::Peers>,
    )>,
) -> std::io::Result<(
    std::thread::JoinHandle<()>,
    ReportReceiver,
    Arc<crate::liveness::EngineHealth>,
)> {
    let liveness = Arc::new(crate::liveness::EngineHealth::new(
        config
            .sampler
            .interval
            .saturating_mul(config.remediation.engine_stall_intervals),
    ));
    let (publish, reports) = watch::channel(None);
    let boot = super::guard::boot_time(paths);
    if boot.is_none() {
        tracing::warn!("Cannot read the boot time (stat btime, uptime); the startup grace counts from the daemon's start.");
    }
    tracing::info!(
        mode = config.remediation.mode.as_str(),
        actions = executor.placement(),
        "Remediation engine starting."
    );
    let config_cluster = config.cluster.clone();
    let mut engine = Engine::new(config, executor, control);
    engine.set_boot_time(boot);
    engine.set_liveness(Arc::clone(&liveness));
    let beats = Arc::clone(&liveness);
    let fault = std::env::var(crate::liveness::TEST_ENGINE_FAULT_ENV).ok();
    engine.follow_snapshots(snapshots.clone());
    if let Some((maintenance, peers)) = cluster {
        engine.set_cluster_maintenance(maintenance, paths.clone());
        let dlmfs = crate::cluster::lease::dlmfs::Dlmfs::new(paths, config_cluster.request_timeout);
        dlmfs.release_stale();
        let lease = crate::cluster::lease::Lease::new(
            config_cluster.max_concurrent_nodes,
            config_cluster.request_timeout,
            Box::new(dlmfs),
            Arc::clone(&peers) as Arc<dyn crate::cluster::lease::PeerAsker>,
            Arc::clone(peers.local()),
        );
        engine.set_lease(Arc::new(lease));
        engine.set_peers(peers);
    }
    let handle = std::thread::Builder::new()
        .name("rule-engine".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    tracing::error!(error = %e, "Cannot start the rule engine's timer; remediation is off.");
                    return;
                }
            };
            while !stop.load(Ordering::Relaxed) {
                beats.beat();
                let changed = runtime.block_on(async {
                    tokio::time::timeout(Duration::from_millis(500), snapshots.changed()).await
                });
                match changed {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break,
                    Err(_) => continue,
                }
                let snapshot = snapshots.borrow_and_update().clone();
                if !snapshot.is_ready() {
                    continue;
                }
                match fault.as_deref() {
                    Some("panic") => panic!("{} asked the engine to panic", crate::liveness::TEST_ENGINE_FAULT_ENV),
                    Some("wedge") => loop {
                        std::thread::park();
                    },
                    _ => {}
                }
                let report = engine.tick(&snapshot, Instant::now());
                publish.send_replace(Some(Arc::new(report)));
            }
        })?;
    Ok((handle, reports, liveness))
}
