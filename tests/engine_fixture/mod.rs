//! A fixture host and a recording executor for the engine's tests
//! (tests/engine.rs, tests/engine_state.rs): three paths with a duplicate
//! layer each in a fixture mountinfo, an executor that records every plan
//! and answers what the test scripted, and an engine that can be
//! "restarted" on the same state directory as the daemon would be.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ocfs2_watchdog::actions::audit::AuditRecord;
use ocfs2_watchdog::actions::{Executor, Outcome, Plan};
use ocfs2_watchdog::cluster::lease::consensus::NodeState;
use ocfs2_watchdog::cluster::lease::dlmfs::{DlmError, HeldLock, LockSpace};
use ocfs2_watchdog::cluster::lease::{Lease, LocalState, Member, PeerAsker};
use ocfs2_watchdog::collector::Context;
use ocfs2_watchdog::collector::Facts;
use ocfs2_watchdog::config::{Config, StateDir};
use ocfs2_watchdog::host::HostPaths;
use ocfs2_watchdog::rules::config::{Mode, RuleConfig};
use ocfs2_watchdog::rules::control::Control;
use ocfs2_watchdog::rules::{Engine, Report};
use ocfs2_watchdog::sampler::Sampler;
use ocfs2_watchdog::snapshot::Snapshot;

pub type Hook = Arc<dyn Fn(&Plan) + Send + Sync>;

/// Records each plan; answers the next scripted outcome, else `outcome`.
#[derive(Clone)]
pub struct Recorder {
    pub calls: Arc<Mutex<Vec<Plan>>>,
    pub outcome: Arc<Mutex<Outcome>>,
    pub script: Arc<Mutex<VecDeque<Outcome>>>,
    /// Runs inside the action, before it answers (e.g. pauses).
    pub hook: Arc<Mutex<Option<Hook>>>,
}

impl Executor for Recorder {
    fn mode(&self) -> Mode {
        Mode::Enforce
    }
    fn execute(&self, plan: &Plan) -> Outcome {
        self.calls.lock().unwrap().push(plan.clone());
        // Cloned out first: the lock must not be held while the hook runs
        // (a hook may block, as an action on a dead filesystem does).
        let hook = self.hook.lock().unwrap().clone();
        if let Some(hook) = hook {
            hook(plan);
        }
        let scripted = self.script.lock().unwrap().pop_front();
        scripted.unwrap_or_else(|| self.outcome.lock().unwrap().clone())
    }
}

/// A DLM whose every lock is free.
struct FreeDlm;

impl LockSpace for FreeDlm {
    fn try_slot(&self, _slot: u32) -> Result<Option<HeldLock>, DlmError> {
        Ok(Some(Box::new(())))
    }
}

/// A one-node cluster: nobody to ask, so the peer route grants.
struct LoneNode;

impl PeerAsker for LoneNode {
    fn has_token(&self) -> bool {
        false
    }
    fn members(&self) -> Result<(u8, Vec<Member>), String> {
        Ok((1, Vec::new()))
    }
    fn ask_states(&self, _members: &[Member]) -> Vec<Result<NodeState, String>> {
        Vec::new()
    }
}

/// The cluster lease of a one-node cluster: always granted, so the engine's
/// tests of other guards see their own decisions, not the lease's.
pub fn lone_node_lease() -> Arc<Lease> {
    Arc::new(
        Lease::new(
            1,
            Duration::from_secs(1),
            Box::new(FreeDlm),
            Arc::new(LoneNode),
            LocalState::new("n1"),
        )
        .with_sleep(|_| {}),
    )
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub config: Arc<Config>,
    pub recorder: Recorder,
    pub calls: Arc<Mutex<Vec<Plan>>>,
    pub control: Arc<Control>,
    pub engine: Engine,
}

/// Three paths each with a duplicate layer, as mountinfo lists them.
pub const TABLE: &str = concat!(
    "20 1 0:50 / /srv/a rw,relatime - tmpfs tmpfs rw\n",
    "21 20 0:50 / /srv/a rw,relatime - tmpfs tmpfs rw\n",
    "30 1 0:51 / /srv/b rw,relatime - tmpfs tmpfs rw\n",
    "31 30 0:51 / /srv/b rw,relatime - tmpfs tmpfs rw\n",
    "40 1 0:52 / /srv/c rw,relatime - tmpfs tmpfs rw\n",
    "41 40 0:52 / /srv/c rw,relatime - tmpfs tmpfs rw\n",
);

pub fn fixture(outcome: Outcome, tune: impl FnOnce(&mut Config)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let proc1 = dir.path().join("root/proc/1");
    std::fs::create_dir_all(&proc1).unwrap();
    std::fs::write(proc1.join("mountinfo"), TABLE).unwrap();
    let mut config = Config {
        state_dir: StateDir(dir.path().join("state")),
        ..Config::default()
    };
    config.mounts.fstypes = vec!["tmpfs".into()];
    config.mounts.use_fstab = false;
    config.kernel_log.enabled = false;
    config.remediation.mode = Mode::Enforce;
    config.remediation.startup_grace = Duration::ZERO;
    config.remediation.rules.insert(
        "duplicate_mount_layers".into(),
        RuleConfig {
            r#for: Some(Duration::from_secs(10)),
            cooldown: Some(Duration::from_secs(60)),
            backoff: Some(Duration::from_secs(10)),
            backoff_max: Some(Duration::from_secs(25)),
            max_attempts: Some(3),
            ..RuleConfig::default()
        },
    );
    tune(&mut config);
    let config = Arc::new(config);
    let calls = Arc::new(Mutex::new(Vec::new()));
    let control = Arc::new(Control::new(&config.state_dir.0, None));
    let recorder = Recorder {
        calls: Arc::clone(&calls),
        outcome: Arc::new(Mutex::new(outcome)),
        script: Arc::default(),
        hook: Arc::default(),
    };
    let mut engine = Engine::new(
        Arc::clone(&config),
        Box::new(recorder.clone()),
        Arc::clone(&control),
    );
    engine.set_lease(lone_node_lease());
    Fixture {
        dir,
        config,
        recorder,
        calls,
        control,
        engine,
    }
}

impl Fixture {
    pub fn snapshot(&self) -> Snapshot {
        let paths = HostPaths::new(self.dir.path().join("root"), None, None);
        let ctx = Arc::new(Context::new(paths, Arc::clone(&self.config)));
        Sampler::new(ctx).tick(Duration::from_secs(5))
    }

    pub fn calls(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    /// A new engine (and control) on the same state directory: a daemon
    /// restart, as far as the engine's memory goes.
    pub fn restart(&mut self) {
        self.restart_without_lease();
        self.engine.set_lease(lone_node_lease());
    }

    /// A restart whose engine was built without the cluster lease.
    pub fn restart_without_lease(&mut self) {
        self.control = Arc::new(Control::new(&self.config.state_dir.0, None));
        self.engine = Engine::new(
            Arc::clone(&self.config),
            Box::new(self.recorder.clone()),
            Arc::clone(&self.control),
        );
    }

    pub fn set_mountinfo(&self, table: &str) {
        std::fs::write(self.dir.path().join("root/proc/1/mountinfo"), table).unwrap();
    }

    pub fn audit(&self) -> Vec<AuditRecord> {
        let path = self.config.state_dir.0.join("audit.jsonl");
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("parseable audit line"))
            .collect()
    }

    pub fn outcomes(&self, target: &str) -> Vec<String> {
        self.audit()
            .into_iter()
            .filter(|r| r.target == target && r.rule == "duplicate_mount_layers")
            .map(|r| r.outcome.as_str().to_string())
            .collect()
    }
}

pub fn with_section(snapshot: &mut Snapshot, name: &'static str, facts: Facts) {
    snapshot.insert_facts(name, facts);
}

pub fn count(report: &Report, outcome: &str) -> u64 {
    report
        .actions
        .iter()
        .filter(|(_, _, o, _)| *o == outcome)
        .map(|(_, _, _, n)| n)
        .sum()
}

pub fn snapshot_with(report: Report) -> Snapshot {
    let mut snapshot = Snapshot::empty();
    snapshot.remediation = Some(Arc::new(report));
    snapshot
}
