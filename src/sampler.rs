//! The sampler: on every tick, run every collector and publish a Snapshot.
//!
//! It is a plain OS thread, not an async task, because it is the one place
//! allowed to wait (bounded) on collectors; the async runtime serving HTTP
//! never blocks. Each collector runs on a deadline thread from the probe pool:
//! the tick waits for them at most until its own budget ends, a collector
//! still within `collector_timeout` keeps its previous section (marked stale),
//! one past it is reported failed with reason `timeout`, and no collector is
//! ever started twice. The published snapshot goes out through a watch channel
//! that `/metrics`, `/status` and the rule engine read.
//!
//! Between ticks the loop waits on the kernel log accumulator instead of
//! sleeping: when an event is counted it re-runs the `kernel_log` collector
//! alone (it only copies counters, no host file) and publishes a snapshot
//! with that section new and every other section as the last tick left it,
//! so a fence or eviction reaches `/metrics` within a fraction of a second
//! instead of waiting up to a whole interval.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

use crate::collector::failure_log::FailureLog;
use crate::collector::{CollectError, Collector, Context, ErrorKind, Section, COLLECTORS};
use crate::probe::{ProbeState, Prober};
use crate::snapshot::{CollectorReport, Snapshot};

type Run = Result<Section, CollectError>;

/// The collector published as soon as it has something new: it reads only
/// the accumulator the kernel log thread fills, so running it on the
/// sampler thread cannot block.
const EVENT_DRIVEN: &str = "kernel_log";

/// Event snapshots are published at most this often: a flood of kernel
/// messages costs a few snapshots a second, not one per record.
const EVENT_PUBLISH_GAP: Duration = Duration::from_millis(200);

pub struct Sampler {
    ctx: Arc<Context>,
    /// The collectors switched on (`[collectors]`), in `COLLECTORS` order.
    collectors: Vec<&'static dyn Collector>,
    runs: Prober<Run>,
    last: BTreeMap<&'static str, (CollectorReport, Arc<Section>)>,
    /// Last successful section per collector, handed back as `previous`.
    good: BTreeMap<&'static str, Arc<Section>>,
    sequence: u64,
    /// When the last full tick started (the snapshot timestamp).
    taken_at: SystemTime,
    /// The rule engine's reports, shown in the next snapshot.
    remediation: Option<crate::rules::runner::ReportReceiver>,
    /// Which collectors are failing, so each failure is logged on its edges.
    failures: FailureLog,
}

impl Sampler {
    pub fn new(ctx: Arc<Context>) -> Self {
        Self::with_collectors(ctx, COLLECTORS)
    }

    pub fn with_collectors(
        ctx: Arc<Context>,
        collectors: &'static [&'static dyn Collector],
    ) -> Self {
        let runs = Prober::new("collector", ctx.pool.clone());
        let collectors = collectors
            .iter()
            .copied()
            .filter(|collector| ctx.config.collectors.is_enabled(collector.name()))
            .collect();
        Self {
            ctx,
            collectors,
            runs,
            last: BTreeMap::new(),
            good: BTreeMap::new(),
            sequence: 0,
            taken_at: SystemTime::UNIX_EPOCH,
            remediation: None,
            failures: FailureLog::default(),
        }
    }

    /// Shows the rule engine's latest report in every following snapshot.
    pub fn attach_remediation(&mut self, reports: crate::rules::runner::ReportReceiver) {
        self.remediation = Some(reports);
    }

    /// Runs one tick, waiting for collectors at most `budget`.
    pub fn tick(&mut self, budget: Duration) -> Snapshot {
        let taken_at = SystemTime::now();
        let started = Instant::now();
        let timeout = self.ctx.config.sampler.collector_timeout;
        for &collector in &self.collectors {
            let ctx = Arc::clone(&self.ctx);
            let previous = self.good.get(collector.name()).cloned();
            self.runs.start(collector.name(), timeout, move || {
                collector.collect(&ctx, previous.as_deref())
            });
        }
        for collector in self.collectors.clone() {
            let name = collector.name();
            let state = self
                .runs
                .wait(name, crate::input::saturating_instant(started, budget));
            let entry = self.settle(name, state);
            self.last.insert(name, entry);
        }
        self.sequence += 1;
        self.taken_at = taken_at;
        self.assemble()
    }

    /// Runs the event-driven collector alone and returns a snapshot with its
    /// new section; `None` when this sampler has no such collector.
    pub fn refresh_events(&mut self) -> Option<Snapshot> {
        let collector = *self.collectors.iter().find(|c| c.name() == EVENT_DRIVEN)?;
        let started = Instant::now();
        let previous = self.good.get(EVENT_DRIVEN).cloned();
        let value = collector.collect(&self.ctx, previous.as_deref());
        let state = ProbeState::Done {
            value,
            elapsed: started.elapsed(),
        };
        let entry = self.settle(EVENT_DRIVEN, state);
        self.last.insert(EVENT_DRIVEN, entry);
        self.sequence += 1;
        Some(self.assemble())
    }

    /// The snapshot of the sections as they are now; its timestamp is the
    /// last full tick's, which is how old the other sections are.
    fn assemble(&self) -> Snapshot {
        Snapshot {
            taken_at: self.taken_at,
            sequence: self.sequence,
            collectors: self.last.clone(),
            probes_stuck: self.ctx.pool.stuck(),
            probes_running: self.ctx.pool.threads(),
            enforcing: self.ctx.config.remediation.enforcing(),
            remediation: self.remediation.as_ref().and_then(|r| r.borrow().clone()),
            rendered: Default::default(),
            rendered_text: Default::default(),
        }
    }

    fn settle(
        &mut self,
        name: &'static str,
        state: ProbeState<Run>,
    ) -> (CollectorReport, Arc<Section>) {
        let failed = |kind: ErrorKind, message: String, seconds: f64| {
            (
                CollectorReport {
                    success: false,
                    duration_seconds: seconds,
                    error_kind: Some(kind),
                    error: Some(message),
                    absent: None,
                    stale: false,
                },
                Arc::new(Section::default()),
            )
        };
        match state {
            ProbeState::Done {
                value: Ok(section),
                elapsed,
            } => {
                self.failures.succeeded(name);
                let section = Arc::new(section);
                self.good.insert(name, Arc::clone(&section));
                let report = CollectorReport {
                    success: true,
                    duration_seconds: elapsed.as_secs_f64(),
                    error_kind: None,
                    error: None,
                    absent: section.absent.clone(),
                    stale: false,
                };
                (report, section)
            }
            ProbeState::Done {
                value: Err(error),
                elapsed,
            } => {
                self.failures
                    .failed(name, error.kind, &error.to_string(), Some(&error.path));
                failed(error.kind, error.to_string(), elapsed.as_secs_f64())
            }
            ProbeState::Pending { .. } | ProbeState::Idle => match self.last.get(name) {
                Some((report, section)) => {
                    let mut report = report.clone();
                    report.stale = true;
                    (report, Arc::clone(section))
                }
                None => failed(
                    ErrorKind::Timeout,
                    "first run still in progress".into(),
                    0.0,
                ),
            },
            ProbeState::Stuck { elapsed } => {
                let message = format!(
                    "still running after {}",
                    humantime::format_duration(round_ms(elapsed))
                );
                self.failures
                    .failed(name, ErrorKind::Timeout, &message, None);
                failed(ErrorKind::Timeout, message, elapsed.as_secs_f64())
            }
            ProbeState::Panicked => {
                let message = "collector panicked".to_string();
                self.failures
                    .failed(name, ErrorKind::Panicked, &message, None);
                failed(ErrorKind::Panicked, message, 0.0)
            }
            ProbeState::NoCapacity => {
                let message = "probe thread pool is full of blocked threads".to_string();
                self.failures
                    .failed(name, ErrorKind::NoCapacity, &message, None);
                failed(ErrorKind::NoCapacity, message, 0.0)
            }
        }
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

/// One snapshot of the host, as `--once` and `status` without a daemon take
/// it: the kernel log is followed from now, every collector runs once.
///
/// A probe still running after the tick (a hung mount, a dead heartbeat
/// device) shows as stuck only once it is past its deadline, so then the
/// snapshot is taken again just after the deadline: one snapshot must not
/// call a hung mount healthy.
pub fn take_one(paths: crate::host::HostPaths, config: Arc<crate::config::Config>) -> Snapshot {
    let ctx = Arc::new(Context::new(paths, Arc::clone(&config)));
    crate::kernel_log::source::ensure_started(&ctx.kernel_log, &ctx.paths, &config);
    wait_for_kernel_log(&ctx);
    let started = Instant::now();
    let mut sampler = Sampler::new(Arc::clone(&ctx));
    let first = sampler.tick(config.sampler.collector_timeout);
    if ctx.pool.threads() == 0 {
        return first;
    }
    let deadline = config
        .mounts
        .probe_timeout
        .max(config.heartbeat.disk_probe_timeout)
        .saturating_add(Duration::from_millis(200));
    std::thread::sleep(deadline.saturating_sub(started.elapsed()));
    sampler.tick(config.sampler.collector_timeout)
}

/// Lets the kernel log reader read what is already in the log (the ring
/// buffer, a replayed file) before the one snapshot, so its recent events
/// are there; bounded, and skipped when the log is not followed.
fn wait_for_kernel_log(ctx: &Context) {
    const CATCH_UP: Duration = Duration::from_secs(3);
    if !ctx.config.kernel_log.enabled {
        return;
    }
    let until = crate::input::deadline(CATCH_UP);
    while Instant::now() < until {
        let (counters, _, error, absent) = ctx.kernel_log.view();
        if counters.caught_up || error.is_some() || absent.is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// When the sampler last completed a tick; `/healthz` reads it.
#[derive(Debug, Default)]
pub struct Health {
    last_tick: Mutex<Option<Instant>>,
    /// The rule engine's heartbeat, when an engine runs.
    engine: Mutex<Option<Arc<crate::liveness::EngineHealth>>>,
}

impl Health {
    /// `/healthz` also watches the engine's heartbeat.
    pub fn watch_engine(&self, engine: Arc<crate::liveness::EngineHealth>) {
        *self.engine.lock().unwrap_or_else(|e| e.into_inner()) = Some(engine);
    }

    /// How long the engine has been stuck, when it is.
    pub fn engine_stalled(&self) -> Option<Duration> {
        self.engine
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|e| e.stalled())
    }

    pub fn record_tick(&self) {
        *self.last_tick.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// Time since the last completed tick, or since `start` when none completed.
    pub fn since_last_tick(&self, start: Instant) -> Duration {
        self.last_tick
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or(start)
            .elapsed()
    }
}

/// Runs ticks every `sampler.interval` until `stop` is set; between ticks,
/// publishes kernel log events as they are counted.
pub fn spawn_loop(
    mut sampler: Sampler,
    publish: watch::Sender<Arc<Snapshot>>,
    health: Arc<Health>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let interval = sampler.ctx.config.sampler.interval;
    let budget = interval.min(sampler.ctx.config.sampler.collector_timeout);
    let events = Arc::clone(&sampler.ctx.kernel_log);
    std::thread::Builder::new()
        .name("sampler".into())
        .spawn(move || {
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                // Counted before the tick: an event counted while the tick
                // runs may have missed its copy, and is published after it.
                let mut seen = events.events_counted();
                let snapshot = sampler.tick(budget);
                tracing::debug!(sequence = snapshot.sequence, "Snapshot taken.");
                let snapshot = Arc::new(snapshot);
                publish.send_replace(Arc::clone(&snapshot));
                health.record_tick();
                crate::service::tick_completed(&snapshot);
                next = crate::input::saturating_instant(next, interval);
                let now = Instant::now();
                if next < now {
                    // A slow tick: start the next one now, do not try to catch up.
                    next = now;
                }
                let mut last_event = Instant::now() - EVENT_PUBLISH_GAP;
                while !stop.load(Ordering::Relaxed) && Instant::now() < next {
                    let wake = crate::input::deadline(Duration::from_millis(100)).min(next);
                    if events.wait_for_event(seen, wake) == seen {
                        continue;
                    }
                    // Let a burst gather into one snapshot, never past the tick.
                    let gathered = (last_event + EVENT_PUBLISH_GAP).min(next);
                    std::thread::sleep(gathered.saturating_duration_since(Instant::now()));
                    seen = events.events_counted();
                    if let Some(snapshot) = sampler.refresh_events() {
                        tracing::debug!(
                            sequence = snapshot.sequence,
                            "Kernel log events published."
                        );
                        publish.send_replace(Arc::new(snapshot));
                    }
                    last_event = Instant::now();
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::host::HostPaths;

    struct Fast;
    impl Collector for Fast {
        fn name(&self) -> &'static str {
            "fast"
        }
        fn collect(
            &self,
            _: &Context,
            previous: Option<&Section>,
        ) -> Result<Section, CollectError> {
            let runs = previous.map_or(0, |p| p.families.len());
            let mut section = Section::default();
            for _ in 0..=runs {
                section
                    .families
                    .push(crate::metrics::Family::gauge("x", "x"));
            }
            Ok(section)
        }
    }

    struct Hung;
    impl Collector for Hung {
        fn name(&self) -> &'static str {
            "hung"
        }
        fn collect(&self, _: &Context, _: Option<&Section>) -> Result<Section, CollectError> {
            std::thread::sleep(Duration::from_millis(400));
            Ok(Section::default())
        }
    }

    static BOTH: &[&dyn Collector] = &[&Fast, &Hung];

    #[test]
    fn slow_collector_never_delays_the_tick_past_its_budget_nor_runs_twice() {
        let mut config = Config::default();
        config.sampler.collector_timeout = Duration::from_millis(100);
        config.mounts.probe_timeout = Duration::from_millis(50);
        let ctx = Arc::new(Context::new(HostPaths::default(), Arc::new(config)));
        let mut sampler = Sampler::with_collectors(ctx.clone(), BOTH);
        let first = sampler.tick(Duration::from_millis(50));
        assert!(first.collectors["fast"].0.success);
        assert_eq!(
            first.collectors["hung"].0.error_kind,
            Some(ErrorKind::Timeout)
        );
        std::thread::sleep(Duration::from_millis(100));
        let second = sampler.tick(Duration::from_millis(20));
        // Counters carry over through `previous`.
        assert_eq!(second.collectors["fast"].1.families.len(), 2);
        assert!(!second.collectors["hung"].0.success);
        // Only the one hung run is alive: the second tick did not start another.
        assert!(ctx.pool.threads() <= 1, "{}", ctx.pool.threads());
        std::thread::sleep(Duration::from_millis(400));
        let third = sampler.tick(Duration::from_millis(200));
        assert!(third.collectors["hung"].0.success);
    }

    static ONLY_LOG: &[&dyn Collector] = &[&crate::collector::kernel_log::KernelLog];

    #[test]
    fn a_kernel_event_is_published_before_the_next_tick() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("kern.log");
        std::fs::write(&log, "").unwrap();
        let mut config = Config::default();
        config.sampler.interval = Duration::from_secs(3600);
        config.kernel_log.source = log;
        config.state_dir = crate::config::StateDir(dir.path().to_path_buf());
        let ctx = Arc::new(Context::new(HostPaths::default(), Arc::new(config)));
        let sampler = Sampler::with_collectors(Arc::clone(&ctx), ONLY_LOG);
        let (publish, mut snapshots) = watch::channel(Arc::new(Snapshot::empty()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = spawn_loop(sampler, publish, Arc::default(), Arc::clone(&stop)).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let counted = |s: &Snapshot| {
            s.kernel_log()
                .map_or(0, |f| f.counters.events.iter().sum::<u64>())
        };
        let wait = |snapshots: &mut watch::Receiver<Arc<Snapshot>>, want: u64| {
            runtime.block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(30),
                    snapshots.wait_for(|s| s.is_ready() && counted(s) == want),
                )
                .await
                .expect("snapshot within 30s of an hour-long interval")
                .expect("sampler running")
                .clone()
            })
        };
        let first = wait(&mut snapshots, 0);
        ctx.kernel_log.record_event(
            crate::kernel_log::classify::Event::NetConnected,
            None,
            "o2net: Connected to node n2 (num 2) at 10.0.0.2:7777",
        );
        let second = wait(&mut snapshots, 1);
        assert_eq!(second.taken_at, first.taken_at, "no tick ran in between");
        assert!(second.sequence > first.sequence);
        stop.store(true, Ordering::Relaxed);
        thread.join().unwrap();
    }
}
