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
//!
//! Each action is a unit struct implementing `Action` in its own file
//! (its re-check, its act, the volumes it claims, how the guards treat it),
//! listed in `ACTIONS`; `Plan::action` is the one place a plan kind is
//! mapped to it. Errors are each module's own `thiserror` enum, gathered in
//! `Cause`; its Display is the text of the audit line.

pub mod audit;
pub mod claim;
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
pub use claim::VolumeClaim;
pub use restore::{RestoreHow, RestoreMount};

/// One remediation action: how it re-checks its plan on the host, acts, and
/// what the engine's guards need to know about it. Unit structs in the
/// action's own file, registered in `ACTIONS`; `Plan::action` finds a
/// plan's action.
pub trait Action: Sync {
    /// The `action` label, and the `action` tag of its `Plan` kind.
    fn name(&self) -> &'static str;
    /// Re-reads the one fact the plan depends on: what will be done, or why
    /// the plan no longer applies.
    fn check(&self, host: &HostActions, plan: &Plan) -> Checked;
    /// Acts (after `check` passed).
    fn run(&self, host: &HostActions, plan: &Plan) -> Result<String, ActionError>;
    /// The volumes the plan works on, locked while it runs.
    fn claim(&self, plan: &Plan) -> VolumeClaim;
    /// Takes something away from running workloads: at most one such
    /// action per tick, so the next snapshot shows its effect first.
    fn disruptive(&self) -> bool;
    /// Takes volumes away or disturbs other nodes: held by the storm brake
    /// on missing evidence, unhealthy nodes and the hold-down.
    fn destructive(&self) -> bool;
    /// Unmounts or restarts the stack: held during a network partition.
    fn held_by_partition(&self) -> bool;
    /// Can disturb other nodes or lose this node's volumes, so it runs
    /// only under the cluster lease (`cluster::lease`); a remount does when
    /// `[remediation] serialize_remounts` is on.
    fn needs_lease(&self, serialize_remounts: bool) -> bool;
    /// Mount points the plan takes down (`None`: it unmounts nothing): a
    /// stuck probe on one of them, or no fresh mount table, holds it.
    fn takes_down<'p>(&self, plan: &'p Plan) -> Option<Vec<&'p str>>;
}

/// Every action, one entry per `Plan` kind.
pub static ACTIONS: &[&dyn Action] = &[
    &remount::Remount,
    &unstack::Unstack,
    &o2cb::RestartO2cb,
    &iscsi::IscsiRelogin,
    &heartbeat::KillLeakedHeartbeat,
];

/// The action registered under `name` (an audited `action` field).
pub fn action_named(name: &str) -> Option<&'static dyn Action> {
    ACTIONS.iter().copied().find(|a| a.name() == name)
}

/// What an action answers when handed another action's plan: the engine
/// never does (`Plan::action`), so refuse rather than guess.
pub(crate) fn not_mine(action: &dyn Action, plan: &Plan) -> Cause {
    Cause::OtherPlan {
        action: action.name(),
        plan: plan.action().name(),
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
    /// The action that runs this plan.
    pub fn action(&self) -> &'static dyn Action {
        match self {
            Plan::Remount(_) => &remount::Remount,
            Plan::Unstack { .. } => &unstack::Unstack,
            Plan::RestartO2cb { .. } => &o2cb::RestartO2cb,
            Plan::IscsiRelogin { .. } => &iscsi::IscsiRelogin,
            Plan::KillLeakedHeartbeat { .. } => &heartbeat::KillLeakedHeartbeat,
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
    /// `[mounts] unstack_ignore` as it stands now (SIGHUP reads it again).
    pub unstack_ignore: unstack::UnstackIgnore,
    /// `[remediation] identity_include_loop`: loop devices count as volume
    /// carriers in the identity scan.
    pub identity_include_loop: bool,
}

/// A precondition re-checked on the host: `Ok(what will be done)` or
/// `Err(why the plan no longer applies)`.
pub type Checked = Result<String, Cause>;

impl HostActions {
    pub fn new(paths: HostPaths, config: &crate::rules::config::RemediationConfig) -> Self {
        Self {
            paths,
            timeout: config.action_timeout,
            command_prefix: config.command_prefix.clone(),
            steps: None,
            unstack_ignore: unstack::UnstackIgnore::default(),
            identity_include_loop: config.identity_include_loop,
        }
    }

    /// Unstack refuses mount points `ignore` matches when it acts.
    pub fn with_unstack_ignore(mut self, ignore: unstack::UnstackIgnore) -> Self {
        self.unstack_ignore = ignore;
        self
    }

    /// Audits action steps (the o2cb restart's undo journal) into `log`.
    pub fn with_steps(mut self, log: audit::StepLog) -> Self {
        self.steps = Some(log);
        self
    }

    /// Re-reads the one fact the plan depends on.
    pub fn check(&self, plan: &Plan) -> Checked {
        plan.action().check(self, plan)
    }

    fn act(&self, plan: &Plan) -> Outcome {
        match plan.action().run(self, plan) {
            Ok(done) => Outcome::Success(done),
            Err(ActionError::PreconditionChanged(why)) => {
                Outcome::PreconditionChanged(why.to_string())
            }
            Err(ActionError::Failed(why)) => Outcome::Failed(why.to_string()),
        }
    }
}

/// Why an action did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The host no longer matches the plan; nothing was done.
    #[error("precondition changed: {0}")]
    PreconditionChanged(Cause),
    #[error("{0}")]
    Failed(Cause),
}

/// What stopped an action, by the part of it that found out. Its Display
/// is the `detail`/`error` text of the audit line.
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    #[error(transparent)]
    Command(#[from] command::CommandError),
    #[error(transparent)]
    Unstack(#[from] unstack::UnstackError),
    #[error(transparent)]
    Remount(#[from] remount::RemountError),
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    #[error(transparent)]
    Restore(#[from] restore::RestoreError),
    #[error(transparent)]
    Stack(#[from] o2cb_stack::StackError),
    #[error(transparent)]
    O2cb(#[from] o2cb::O2cbError),
    #[error(transparent)]
    Iscsi(#[from] iscsi::IscsiError),
    #[error(transparent)]
    Heartbeat(#[from] heartbeat::HeartbeatError),
    #[error("the {action} action was handed a {plan} plan")]
    OtherPlan {
        action: &'static str,
        plan: &'static str,
    },
}

impl ActionError {
    /// The host changed since the decision: `e` says how.
    pub fn changed(e: impl Into<Cause>) -> Self {
        Self::PreconditionChanged(e.into())
    }

    pub fn failed(e: impl Into<Cause>) -> Self {
        Self::Failed(e.into())
    }
}

pub struct RealExecutor(pub HostActions);

impl Executor for RealExecutor {
    fn mode(&self) -> Mode {
        Mode::Enforce
    }

    fn execute(&self, plan: &Plan) -> Outcome {
        match self.0.check(plan) {
            Ok(_) => self.0.act(plan),
            Err(why) => Outcome::PreconditionChanged(why.to_string()),
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
            Err(why) => Outcome::PreconditionChanged(why.to_string()),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// One plan of every kind.
    fn one_plan_of_each_kind() -> Vec<Plan> {
        vec![
            Plan::Remount(MountSpec::default()),
            Plan::Unstack {
                mountpoint: "/srv/a".into(),
            },
            Plan::RestartO2cb {
                cluster: "c".into(),
                volumes: Vec::new(),
                stop_services: Vec::new(),
                timeouts: None,
            },
            Plan::IscsiRelogin {
                session: "session1".into(),
                target: "t".into(),
                portal: "p".into(),
            },
            Plan::KillLeakedHeartbeat { uuid: "AB".into() },
        ]
    }

    /// Does not compile when a `Plan` kind is added without a plan above.
    fn _every_kind_is_listed_above(plan: &Plan) {
        match plan {
            Plan::Remount(_)
            | Plan::Unstack { .. }
            | Plan::RestartO2cb { .. }
            | Plan::IscsiRelogin { .. }
            | Plan::KillLeakedHeartbeat { .. } => {}
        }
    }

    #[test]
    fn every_plan_kind_has_exactly_one_action_in_the_list() {
        let plans = one_plan_of_each_kind();
        assert_eq!(ACTIONS.len(), plans.len(), "one action per plan kind");
        for plan in &plans {
            let action = plan.action();
            let listed = ACTIONS.iter().filter(|a| a.name() == action.name()).count();
            assert_eq!(listed, 1, "{} listed {listed} times", action.name());
            // The serialized plan (helper requests) carries the same name.
            let json = serde_json::to_value(plan).unwrap();
            assert_eq!(json["action"], action.name());
        }
    }

    #[test]
    fn an_action_refuses_another_actions_plan() {
        let host = HostActions {
            paths: HostPaths::default(),
            timeout: Duration::from_secs(1),
            command_prefix: Vec::new(),
            steps: None,
            unstack_ignore: unstack::UnstackIgnore::default(),
            identity_include_loop: false,
        };
        let plans = one_plan_of_each_kind();
        for action in ACTIONS {
            for plan in plans.iter().filter(|p| p.action().name() != action.name()) {
                let why = action.check(&host, plan).unwrap_err();
                assert!(matches!(why, Cause::OtherPlan { .. }), "{why}");
                assert!(why.to_string().contains("was handed a"), "{why}");
                assert!(matches!(
                    action.run(&host, plan),
                    Err(ActionError::Failed(Cause::OtherPlan { .. }))
                ));
                assert!(action
                    .claim(plan)
                    .conflicts(&VolumeClaim::keys(Vec::new()).on_stack()));
                assert_eq!(action.takes_down(plan), None);
            }
        }
    }
}
