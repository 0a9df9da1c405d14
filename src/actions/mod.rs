//! Remediation actions: what the rule engine may do to the host.
//!
//! A rule turns a finding into a `Plan` (an `Action` plus its target). The
//! engine hands the plan to an `Executor`: `RealExecutor` re-checks the one
//! precondition the plan depends on against the host *just before acting*
//! (re-reads mountinfo, sysfs, configfs; never the snapshot), then acts;
//! `DryRunExecutor` makes the same re-check and stops there. Nothing goes
//! through a shell: mount syscalls via `nix`, tools via `std::process::Command`
//! with an argument vector and a deadline (`command.rs`). Whether an action
//! worked is decided by the next snapshot, not by the action's exit code.
//! From a container (`--path.rootfs` not `/`) the executor is
//! `hostns::HostNamespaceExecutor`: the same check and act code, run by a
//! helper process in PID 1's mount namespace (`helper.rs`).

pub mod audit;
pub mod command;
pub mod heartbeat;
pub mod helper;
pub mod hostns;
pub mod identity;
pub mod iscsi;
pub mod kernel_holders;
pub mod o2cb;
pub mod o2cb_stack;
pub mod openfiles;
pub mod remount;
pub mod restore;
pub mod unstack;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::collector::o2cb::StackTimeouts;
use crate::host::HostPaths;
use crate::rules::config::Mode;
pub use restore::{RestoreHow, RestoreMount};

/// The fixed set of actions (`action` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Remount,
    Unstack,
    RestartO2cb,
    IscsiRelogin,
    KillLeakedHeartbeat,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Remount => "remount",
            Action::Unstack => "unstack",
            Action::RestartO2cb => "restart_o2cb",
            Action::IscsiRelogin => "iscsi_relogin",
            Action::KillLeakedHeartbeat => "kill_leaked_heartbeat",
        }
    }
}

/// A mount the daemon may (re)create; host paths.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    pub mountpoint: String,
    /// `UUID=…`, `LABEL=…`, a device path, or a name for virtual filesystems.
    pub source: String,
    pub fstype: String,
    pub options: String,
    /// OCFS2 only: the volume UUID (o2cb form) the device must carry, when
    /// known (a `UUID=` source, or what the daemon saw mounted there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// OCFS2 only: a kernel name (`/dev/sdb`) as source is accepted, and then
    /// only with a known `uuid` (`[mounts] allow_kernel_names`).
    #[serde(default)]
    pub allow_kernel_name: bool,
}

/// An action with everything it needs to run. Serialized as is to the
/// host-namespace helper (`hostns.rs`), so it carries host paths only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Plan {
    Remount(MountSpec),
    Unstack {
        mountpoint: String,
    },
    RestartO2cb {
        cluster: String,
        /// Every mount of the cluster's volumes, in mount order: unmounted
        /// in reverse, restored exactly (device mounts, then binds).
        volumes: Vec<RestoreMount>,
        /// systemd units stopped before and started after (may be empty).
        stop_services: Vec<String>,
        /// The timeouts the stack last ran with, as the daemon saw them.
        timeouts: Option<StackTimeouts>,
    },
    IscsiRelogin {
        session: String,
        target: String,
        portal: String,
    },
    KillLeakedHeartbeat {
        uuid: String,
    },
}

impl Plan {
    pub fn action(&self) -> Action {
        match self {
            Plan::Remount(_) => Action::Remount,
            Plan::Unstack { .. } => Action::Unstack,
            Plan::RestartO2cb { .. } => Action::RestartO2cb,
            Plan::IscsiRelogin { .. } => Action::IscsiRelogin,
            Plan::KillLeakedHeartbeat { .. } => Action::KillLeakedHeartbeat,
        }
    }
}

/// How one execution ended (`outcome` label values from the contract).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success(String),
    Failed(String),
    /// The host no longer matches what the decision was based on; nothing done.
    PreconditionChanged(String),
    /// Dry-run: the precondition holds and this is what would have been done.
    DryRun(String),
}

impl Outcome {
    /// The one vocabulary of outcomes (`audit::AuditOutcome`).
    pub fn audit_outcome(&self) -> audit::AuditOutcome {
        match self {
            Outcome::Success(_) => audit::AuditOutcome::Success,
            Outcome::Failed(_) => audit::AuditOutcome::Failed,
            Outcome::PreconditionChanged(_) => audit::AuditOutcome::PreconditionChanged,
            Outcome::DryRun(_) => audit::AuditOutcome::DryRun,
        }
    }

    pub fn as_str(&self) -> &'static str {
        self.audit_outcome().as_str()
    }

    pub fn detail(&self) -> &str {
        match self {
            Outcome::Success(s)
            | Outcome::Failed(s)
            | Outcome::PreconditionChanged(s)
            | Outcome::DryRun(s) => s,
        }
    }
}

/// Runs plans. The engine owns one and calls it from its own thread.
pub trait Executor: Send + Sync {
    fn mode(&self) -> Mode;
    fn execute(&self, plan: &Plan) -> Outcome;
    /// Where plans run and are re-checked, for `/status` and the logs.
    fn placement(&self) -> String {
        "own: the daemon's mount namespace (--path.rootfs=/)".to_string()
    }
}

/// What actions need from the daemon: where the host is and how long to wait.
#[derive(Debug, Clone)]
pub struct HostActions {
    pub paths: HostPaths,
    pub timeout: Duration,
    /// Prepended to every host command (nsenter into PID 1 from a container).
    pub command_prefix: Vec<String>,
    /// Where actions audit their own steps (undo); `None` writes none.
    pub steps: Option<audit::StepLog>,
}

/// A precondition re-checked on the host: `Ok(what will be done)` or
/// `Err(why the plan no longer applies)`.
pub type Checked = Result<String, String>;

impl HostActions {
    pub fn new(paths: HostPaths, config: &crate::rules::config::RemediationConfig) -> Self {
        Self {
            paths,
            timeout: config.action_timeout,
            command_prefix: config.command_prefix.clone(),
            steps: None,
        }
    }

    /// Audits action steps (the o2cb restart's undo journal) into `log`.
    pub fn with_steps(mut self, log: audit::StepLog) -> Self {
        self.steps = Some(log);
        self
    }

    /// Re-reads the one fact the plan depends on.
    pub fn check(&self, plan: &Plan) -> Checked {
        match plan {
            Plan::Remount(spec) => remount::check(self, spec).map(|p| p.describe()),
            Plan::Unstack { mountpoint } => unstack::check(self, mountpoint),
            Plan::RestartO2cb {
                volumes,
                stop_services,
                ..
            } => o2cb::check(self, volumes, stop_services).map(|r| r.describe()),
            Plan::IscsiRelogin { session, .. } => iscsi::check_session(self, session),
            Plan::KillLeakedHeartbeat { uuid } => heartbeat::check_leaked_region(self, uuid),
        }
    }

    fn act(&self, plan: &Plan) -> Outcome {
        let result = match plan {
            Plan::Remount(spec) => remount::run(self, spec),
            Plan::Unstack { mountpoint } => unstack::run(self, mountpoint),
            Plan::RestartO2cb {
                cluster,
                volumes,
                stop_services,
                timeouts,
            } => o2cb::run(self, cluster, volumes, stop_services, *timeouts),
            Plan::IscsiRelogin { target, portal, .. } => iscsi::relogin(self, target, portal),
            Plan::KillLeakedHeartbeat { uuid } => heartbeat::kill_heartbeat(self, uuid),
        };
        match result {
            Ok(done) => Outcome::Success(done),
            Err(ActionError::PreconditionChanged(why)) => Outcome::PreconditionChanged(why),
            Err(ActionError::Failed(why)) => Outcome::Failed(why),
        }
    }
}

/// Why an action did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("precondition changed: {0}")]
    PreconditionChanged(String),
    #[error("{0}")]
    Failed(String),
}

pub struct RealExecutor(pub HostActions);

impl Executor for RealExecutor {
    fn mode(&self) -> Mode {
        Mode::Enforce
    }

    fn execute(&self, plan: &Plan) -> Outcome {
        match self.0.check(plan) {
            Ok(_) => self.0.act(plan),
            Err(why) => Outcome::PreconditionChanged(why),
        }
    }
}

/// Makes every re-check and decision, changes nothing.
pub struct DryRunExecutor(pub HostActions);

impl Executor for DryRunExecutor {
    fn mode(&self) -> Mode {
        Mode::DryRun
    }

    fn execute(&self, plan: &Plan) -> Outcome {
        match self.0.check(plan) {
            Ok(would) => Outcome::DryRun(format!("would {would}")),
            Err(why) => Outcome::PreconditionChanged(why),
        }
    }
}

/// The executor for the configured mode.
pub fn executor_for(mode: Mode, host: HostActions) -> Box<dyn Executor> {
    match mode {
        Mode::Enforce => Box::new(RealExecutor(host)),
        Mode::DryRun => Box::new(DryRunExecutor(host)),
    }
}
