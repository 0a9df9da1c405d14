//! Where actions run: in the daemon's own mount namespace on a host, in PID
//! 1's mount namespace (through a re-executed helper) from a container.
//!
//! With `--path.rootfs` other than `/` the daemon is in a container and its
//! own namespace is the wrong place for a mount, an unmount or a re-check:
//! the host's table is PID 1's. `setns(CLONE_NEWNS)` is refused to a
//! multi-threaded process, so every plan runs in a child: forked, made a
//! process-group leader, moved into `<procfs>/1/ns/mnt` before exec, then
//! the same binary (reached through an fd opened at start-up: its container
//! path does not exist on the host) runs `helper.rs` with the plan on stdin.
//! The child inherits the deadline and is killed with its tools past it; a
//! child that cannot start, dies, or answers garbage is `failed` (fail
//! closed). `reach` proves at start-up that this works, naming the missing
//! privilege when it does not; `enforce` then refuses to start.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::helper::{namespace_of, HelperReply, HelperRequest, HELPER_SUBCOMMAND};
use super::unstack::UnstackIgnore;
use super::{command, executor_for, Executor, HostActions, Outcome, Plan};
use crate::host::HostPaths;
use crate::rules::config::{Mode, RemediationConfig};

/// The helper's whole budget in `action_timeout`s: an o2cb restart chains
/// several commands. Below the engine's hung-action factor (5), so the
/// helper is killed and reported before the engine gives the thread up.
pub const HELPER_BUDGET_FACTOR: u32 = 4;

/// Why the host's mount namespace cannot be reached from here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreachable {
    #[error("cannot open {path} ({error}): needs CAP_SYS_PTRACE to open PID 1's namespace links")]
    NoPtrace { path: String, error: String },
    #[error("cannot open {path} ({error}): is the host's /proc at --path.procfs?")]
    NoProc { path: String, error: String },
    #[error(
        "PID 1 at {procfs}/1 is not the host's init (its root is not {rootfs}): \
         run with hostPID (the pod's own init is PID 1 otherwise)"
    )]
    NotHostInit { procfs: String, rootfs: String },
    #[error("missing {0}: needed to enter PID 1's mount namespace (setns)")]
    MissingCapability(&'static str),
    #[error("the host-namespace helper did not start: {0}")]
    HelperFailed(String),
}

/// Why one run of the host-namespace helper gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    #[error("encoding the request: {0}")]
    Encode(serde_json::Error),
    #[error("cannot start the helper in PID 1's mount namespace: {0}")]
    Start(std::io::Error),
    #[error(transparent)]
    Wait(#[from] command::CommandError),
    #[error("helper exited {}: {stderr}", command::exit_text(*.code))]
    Exited { code: Option<i32>, stderr: String },
    #[error("helper answered no readable reply ({error}): {stdout:?}; stderr: {stderr}")]
    Unreadable {
        error: serde_json::Error,
        stdout: String,
        stderr: String,
    },
}

/// Capabilities `setns(CLONE_NEWNS)` needs (capability(7) bit numbers).
const NEEDED_CAPABILITIES: [(&str, u32); 2] = [("CAP_SYS_ADMIN", 21), ("CAP_SYS_CHROOT", 18)];

/// Handles to PID 1's mount namespace and to this binary, opened once.
#[derive(Debug)]
pub struct HostNamespace {
    mount_ns: OwnedFd,
    exe: OwnedFd,
    /// `mnt:[…]` of PID 1, which the probe's answer must match.
    id: String,
}

impl HostNamespace {
    /// Opens PID 1's mount namespace under `paths.proc`, checks that PID 1 is
    /// the host whose root is `paths.rootfs` and that setns is allowed, then
    /// proves it with a probe run of the helper (this very binary).
    pub fn reach(paths: &HostPaths) -> Result<Self, Unreachable> {
        Self::reach_with(paths, Path::new("/proc/self/exe"))
    }

    /// `reach` with another helper binary (`exe`, opened before any setns):
    /// for tests, whose own executable is not the daemon.
    pub fn reach_with(paths: &HostPaths, exe: &Path) -> Result<Self, Unreachable> {
        let link = paths.proc("1/ns/mnt");
        let mount_ns = File::open(&link).map_err(|e| opening(&link, &e))?;
        let pid1_root = paths.proc("1/root");
        let root = std::fs::metadata(&pid1_root).map_err(|e| opening(&pid1_root, &e))?;
        let ours = std::fs::metadata(paths.rootfs()).map_err(|e| Unreachable::NoProc {
            path: paths.rootfs().display().to_string(),
            error: e.to_string(),
        })?;
        if (root.dev(), root.ino()) != (ours.dev(), ours.ino()) {
            return Err(Unreachable::NotHostInit {
                procfs: paths.proc("").display().to_string(),
                rootfs: paths.rootfs().display().to_string(),
            });
        }
        let effective = effective_capabilities();
        if let Some((name, _)) = NEEDED_CAPABILITIES
            .iter()
            .find(|(_, bit)| effective & (1 << bit) == 0)
        {
            return Err(Unreachable::MissingCapability(name));
        }
        let exe = File::open(exe).map_err(|e| {
            Unreachable::HelperFailed(format!("cannot open {}: {e}", exe.display()))
        })?;
        let host = Self {
            mount_ns: mount_ns.into(),
            exe: exe.into(),
            id: namespace_of(&link),
        };
        let probe = HelperRequest {
            mode: Mode::DryRun,
            plan: None,
            action_timeout_ms: 10_000,
            budget_ms: 10_000,
            command_prefix: Vec::new(),
            unstack_ignore: Vec::new(),
            identity_include_loop: false,
        };
        let reply = host
            .run(&probe, Duration::from_secs(10))
            .map_err(|e| Unreachable::HelperFailed(e.to_string()))?;
        if reply.outcome != "probe" || reply.mount_namespace != host.id {
            return Err(Unreachable::HelperFailed(format!(
                "the probe ran in {} ({}), not PID 1's {}",
                reply.mount_namespace, reply.outcome, host.id
            )));
        }
        Ok(host)
    }

    /// PID 1's mount namespace, `mnt:[…]`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs the helper in PID 1's mount namespace; `Err` when it could not
    /// start, died, overran `budget` or answered something unreadable.
    pub fn run(
        &self,
        request: &HelperRequest,
        budget: Duration,
    ) -> Result<HelperReply, HelperError> {
        let input = serde_json::to_vec(request).map_err(HelperError::Encode)?;
        // The fd, not a path: the daemon's file is not in the host's tree.
        // Resolved after setns, in the host's /proc (hostPID: same pids).
        let program = PathBuf::from(format!("/proc/self/fd/{}", self.exe.as_raw_fd()));
        let mut cmd = Command::new(&program);
        cmd.arg(HELPER_SUBCOMMAND)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mount_ns = self.mount_ns.as_raw_fd();
        // SAFETY: between fork and exec only async-signal-safe calls
        // (setpgid, setns); no allocation, no locks.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setpgid(0, 0) != 0 || libc::setns(mount_ns, libc::CLONE_NEWNS) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(HelperError::Start)?;
        if let Some(mut stdin) = child.stdin.take() {
            // A helper that died before reading shows up below as no answer.
            let _ = stdin.write_all(&input);
        }
        let group = child.id();
        let output =
            command::wait_with_deadline(child, "host-namespace helper", budget + GRACE, true)?;
        let stderr_tail = tail(&output.stderr);
        if !output.success {
            // A helper that died leaves its tools behind in its group.
            if let Ok(group) = i32::try_from(group) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(group),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            return Err(HelperError::Exited {
                code: output.code,
                stderr: stderr_tail,
            });
        }
        serde_json::from_str(output.stdout.trim()).map_err(|error| HelperError::Unreadable {
            error,
            stdout: tail(&output.stdout),
            stderr: stderr_tail,
        })
    }
}

/// Time past the budget before the daemon kills the group itself: the
/// helper's own deadline thread should have fired first.
const GRACE: Duration = Duration::from_secs(2);

fn tail(text: &str) -> String {
    let text = text.trim();
    let start = text.len().saturating_sub(400);
    let start = (start..=text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    text[start..].to_string()
}

fn opening(path: &Path, error: &std::io::Error) -> Unreachable {
    let (path, error_text) = (path.display().to_string(), error.to_string());
    match error.kind() {
        std::io::ErrorKind::PermissionDenied => Unreachable::NoPtrace {
            path,
            error: error_text,
        },
        _ => Unreachable::NoProc {
            path,
            error: error_text,
        },
    }
}

/// `CapEff` of this process (0 when unreadable: every check then fails).
fn effective_capabilities() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// Runs every plan through the helper in PID 1's mount namespace.
pub struct HostNamespaceExecutor {
    host: HostNamespace,
    mode: Mode,
    action_timeout: Duration,
    command_prefix: Vec<String>,
    unstack_ignore: UnstackIgnore,
    identity_include_loop: bool,
}

impl HostNamespaceExecutor {
    pub fn new(host: HostNamespace, config: &RemediationConfig) -> Self {
        Self {
            host,
            mode: config.mode,
            action_timeout: config.action_timeout,
            command_prefix: config.command_prefix.clone(),
            unstack_ignore: UnstackIgnore::default(),
            identity_include_loop: config.identity_include_loop,
        }
    }

    /// The helper refuses to unstack what `ignore` matches when it acts.
    pub fn with_unstack_ignore(mut self, ignore: UnstackIgnore) -> Self {
        self.unstack_ignore = ignore;
        self
    }
}

impl Executor for HostNamespaceExecutor {
    fn mode(&self) -> Mode {
        self.mode
    }

    fn placement(&self) -> String {
        format!(
            "host: PID 1's mount namespace {} (helper process)",
            self.host.id()
        )
    }

    fn execute(&self, plan: &Plan) -> Outcome {
        let budget = self.action_timeout * HELPER_BUDGET_FACTOR;
        let request = HelperRequest {
            mode: self.mode,
            plan: Some(plan.clone()),
            action_timeout_ms: millis(self.action_timeout),
            budget_ms: millis(budget),
            command_prefix: self.command_prefix.clone(),
            unstack_ignore: self.unstack_ignore.patterns(),
            identity_include_loop: self.identity_include_loop,
        };
        match self.host.run(&request, budget) {
            Ok(reply) if reply.mount_namespace != self.host.id() => Outcome::Failed(format!(
                "host-namespace helper ran in {}, not PID 1's {}",
                reply.mount_namespace,
                self.host.id()
            )),
            Ok(reply) => reply.into_outcome(),
            Err(why) => Outcome::Failed(format!("host-namespace helper: {why}")),
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Dry-run in a container that cannot reach the host's namespace: the
/// re-checks run here, and every outcome says so.
pub struct ContainerDryRun {
    inner: Box<dyn Executor>,
    why: String,
}

impl Executor for ContainerDryRun {
    fn mode(&self) -> Mode {
        Mode::DryRun
    }

    fn placement(&self) -> String {
        format!("container: host namespace unreachable ({})", self.why)
    }

    fn execute(&self, plan: &Plan) -> Outcome {
        match self.inner.execute(plan) {
            Outcome::DryRun(detail) => Outcome::DryRun(format!(
                "{detail} (re-checked in the container's mount namespace, not the host's: {})",
                self.why
            )),
            Outcome::PreconditionChanged(detail) => Outcome::PreconditionChanged(format!(
                "{detail} (re-checked in the container's mount namespace, not the host's: {})",
                self.why
            )),
            other => other,
        }
    }
}

/// Where the daemon's actions would run for these settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// `--path.rootfs=/`: the daemon is on the host; actions run in-process.
    OwnNamespace,
    /// Any other root: a container; actions run in PID 1's mount namespace.
    HostNamespace,
}

impl Placement {
    pub fn for_rootfs(rootfs: &Path) -> Self {
        if rootfs == Path::new("/") {
            Placement::OwnNamespace
        } else {
            Placement::HostNamespace
        }
    }
}

/// The executor the daemon starts with. `Err` only in enforce mode when the
/// host's namespace is out of reach: the daemon must not start then.
pub fn executor_for_host(
    paths: &HostPaths,
    config: &RemediationConfig,
    steps: Option<super::audit::StepLog>,
    unstack_ignore: UnstackIgnore,
) -> Result<Box<dyn Executor>, Unreachable> {
    let in_process = || {
        let host =
            HostActions::new(paths.clone(), config).with_unstack_ignore(unstack_ignore.clone());
        let host = match steps.clone() {
            Some(log) => host.with_steps(log),
            None => host,
        };
        executor_for(config.mode, host)
    };
    if Placement::for_rootfs(paths.rootfs()) == Placement::OwnNamespace {
        return Ok(in_process());
    }
    if config
        .command_prefix
        .first()
        .is_some_and(|p| p.ends_with("nsenter"))
    {
        tracing::warn!(
            prefix = ?config.command_prefix,
            "command_prefix enters PID 1's namespaces, which actions already run in from a container; it is not needed."
        );
    }
    match HostNamespace::reach(paths) {
        Ok(host) => {
            tracing::info!(
                namespace = host.id(),
                "Actions and their re-checks run in PID 1's mount namespace."
            );
            Ok(Box::new(
                HostNamespaceExecutor::new(host, config).with_unstack_ignore(unstack_ignore),
            ))
        }
        Err(error) if config.mode == Mode::Enforce => Err(error),
        Err(error) => {
            tracing::warn!(
                error = %error,
                "Host mount namespace unreachable: dry-run re-checks run in the container's namespace and enforce would refuse to start."
            );
            Ok(Box::new(ContainerDryRun {
                inner: in_process(),
                why: error.to_string(),
            }))
        }
    }
}
