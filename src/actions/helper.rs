//! The host-namespace helper's side: what runs after the daemon re-executes
//! itself inside PID 1's mount namespace (`hostns.rs` starts it).
//!
//! The daemon writes one `HelperRequest` (JSON) to the helper's stdin: the
//! mode, the serialized `Plan`, the per-command deadline, the whole budget,
//! the `command_prefix` and the `unstack_ignore` patterns in force. The helper runs the very same `RealExecutor` or
//! `DryRunExecutor` as a daemon on the host would, with `HostPaths` rooted at
//! `/` (it *is* on the host now: `/proc/self/mountinfo` is the host's table,
//! tools come from the host's PATH), and prints one `HelperReply` (JSON) on
//! stdout. Past its budget it kills its own process group (itself and the
//! tools it started); the daemon kills the group too, as a backstop.

use std::io::Read;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{executor_for, HostActions, Outcome, Plan};
use crate::host::HostPaths;
use crate::rules::config::Mode;

/// The hidden first argument that turns the binary into the helper.
pub const HELPER_SUBCOMMAND: &str = "__host-action";

/// Largest request the helper reads; a plan is a few hundred bytes.
const MAX_REQUEST: u64 = 1024 * 1024;

/// What the daemon asks the helper to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HelperRequest {
    pub mode: Mode,
    /// `None`: only answer which mount namespace the helper is in (the
    /// start-up probe that proves the host namespace is reachable).
    pub plan: Option<Plan>,
    /// Deadline of each external command (`remediation.action_timeout`).
    pub action_timeout_ms: u64,
    /// The whole helper's deadline; it kills itself and its tools past it.
    pub budget_ms: u64,
    pub command_prefix: Vec<String>,
    /// `[mounts] unstack_ignore` in force when the daemon sent the plan.
    #[serde(default)]
    pub unstack_ignore: Vec<String>,
    /// `[remediation] identity_include_loop`; a daemon that does not send
    /// it gets the safe default (loop devices left out).
    #[serde(default)]
    pub identity_include_loop: bool,
}

/// What the helper answers on stdout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelperReply {
    /// An `Outcome::as_str` value, or `probe`.
    pub outcome: String,
    pub detail: String,
    /// `readlink /proc/self/ns/mnt` in the helper: where it really ran.
    pub mount_namespace: String,
}

impl HelperReply {
    fn from_outcome(outcome: &Outcome) -> Self {
        Self {
            outcome: outcome.as_str().to_string(),
            detail: outcome.detail().to_string(),
            mount_namespace: own_mount_namespace(),
        }
    }

    /// The outcome the helper reported; an unknown word fails closed.
    pub fn into_outcome(self) -> Outcome {
        let detail = self.detail;
        match self.outcome.as_str() {
            "success" => Outcome::Success(detail),
            "failed" => Outcome::Failed(detail),
            "precondition_changed" => Outcome::PreconditionChanged(detail),
            "dry_run" => Outcome::DryRun(detail),
            other => Outcome::Failed(format!(
                "host-namespace helper answered an unknown outcome {other:?}: {detail}"
            )),
        }
    }
}

/// `mnt:[4026531841]` for the calling process, or why it could not be read.
pub fn own_mount_namespace() -> String {
    namespace_of(std::path::Path::new("/proc/self/ns/mnt"))
}

/// The namespace a `/proc/<pid>/ns/<kind>` link names.
pub fn namespace_of(link: &std::path::Path) -> String {
    std::fs::read_link(link)
        .map(|target| target.to_string_lossy().into_owned())
        .unwrap_or_else(|e| format!("unreadable ({e})"))
}

/// The helper's `main`: read the request, arm the deadline, act, answer.
/// Exit 0 with a reply on stdout; 2 with a reason on stderr when the request
/// is unusable (the daemon turns both silence and garbage into `failed`).
pub fn run_helper() -> std::process::ExitCode {
    let mut text = String::new();
    if let Err(e) = std::io::stdin().take(MAX_REQUEST).read_to_string(&mut text) {
        eprintln!("ocfs2-watchdog helper: cannot read the request: {e}");
        return std::process::ExitCode::from(2);
    }
    let request: HelperRequest = match serde_json::from_str(&text) {
        Ok(request) => request,
        Err(e) => {
            eprintln!("ocfs2-watchdog helper: unusable request: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    arm_deadline(Duration::from_millis(request.budget_ms));
    let reply = answer(&request);
    match serde_json::to_string(&reply) {
        Ok(json) => {
            println!("{json}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ocfs2-watchdog helper: cannot encode the reply: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Runs the request exactly as an on-host daemon would: host paths at `/`.
pub fn answer(request: &HelperRequest) -> HelperReply {
    let Some(plan) = &request.plan else {
        return HelperReply {
            outcome: "probe".into(),
            detail: format!("pid {}", std::process::id()),
            mount_namespace: own_mount_namespace(),
        };
    };
    let host = HostActions {
        paths: HostPaths::default(),
        timeout: Duration::from_millis(request.action_timeout_ms),
        command_prefix: request.command_prefix.clone(),
        // Undo steps reach the audit log through the `after` line's detail:
        // the helper has no audit file of its own.
        steps: None,
        unstack_ignore: super::unstack::UnstackIgnore::new(request.unstack_ignore.clone()),
        identity_include_loop: request.identity_include_loop,
    };
    let outcome = executor_for(request.mode, host).execute(plan);
    HelperReply::from_outcome(&outcome)
}

/// Past `budget`, SIGKILL the helper's process group: the daemon made the
/// helper a group leader, so this takes every tool it started with it.
fn arm_deadline(budget: Duration) {
    let spawned = std::thread::Builder::new()
        .name("helper-deadline".into())
        .spawn(move || {
            std::thread::sleep(budget);
            eprintln!("ocfs2-watchdog helper: budget of {budget:?} spent; killing the action.");
            let _ =
                nix::sys::signal::killpg(nix::unistd::getpgrp(), nix::sys::signal::Signal::SIGKILL);
            std::process::exit(124);
        });
    if let Err(e) = spawned {
        // The daemon still kills the group at the same deadline.
        eprintln!("ocfs2-watchdog helper: no deadline thread ({e}); the daemon enforces it.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::MountSpec;

    #[test]
    fn requests_and_replies_round_trip() {
        let request = HelperRequest {
            mode: Mode::Enforce,
            plan: Some(Plan::Remount(MountSpec {
                mountpoint: "/srv/data".into(),
                source: "UUID=ab".into(),
                fstype: "ocfs2".into(),
                options: "_netdev".into(),
                uuid: Some("AB".into()),
                allow_kernel_name: false,
            })),
            action_timeout_ms: 60_000,
            budget_ms: 240_000,
            command_prefix: vec![],
            unstack_ignore: vec![],
            identity_include_loop: false,
        };
        let json = serde_json::to_string(&request).unwrap();
        assert_eq!(
            serde_json::from_str::<HelperRequest>(&json).unwrap(),
            request
        );
        let reply = HelperReply::from_outcome(&Outcome::PreconditionChanged("gone".into()));
        assert_eq!(
            reply.into_outcome(),
            Outcome::PreconditionChanged("gone".into())
        );
        let odd = HelperReply {
            outcome: "maybe".into(),
            detail: "x".into(),
            mount_namespace: String::new(),
        };
        assert!(matches!(odd.into_outcome(), Outcome::Failed(why) if why.contains("maybe")));
    }

    #[test]
    fn a_probe_names_the_namespace_it_ran_in() {
        let request = HelperRequest {
            mode: Mode::DryRun,
            plan: None,
            action_timeout_ms: 1000,
            budget_ms: 1000,
            command_prefix: vec![],
            unstack_ignore: vec![],
            identity_include_loop: false,
        };
        let reply = answer(&request);
        assert_eq!(reply.outcome, "probe");
        assert!(reply.mount_namespace.starts_with("mnt:["), "{reply:?}");
    }
}
