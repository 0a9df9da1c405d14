//! Restart the o2cb cluster stack: the most dangerous action, so a
//! transaction.
//!
//! `o2cb.init offline` refuses while a heartbeat region is active
//! (docs/interfaces.md §5.2), so a restart means: stop the configured services,
//! unmount every mount of the cluster's volumes (binds first), stop the
//! stack, start it with the cluster's timeouts (`o2cb_stack.rs`), restore
//! every mount exactly as it was (`restore.rs`), start the services, and
//! verify the node rejoined (timeouts as wanted, mounts back as recorded,
//! connected to every peer live in heartbeat) within the action deadline.
//!
//! Every change is journalled; on any failure after the first one the
//! journal is undone in reverse order (start the stack, remount, start the
//! services), each undo step audited on its own line (`StepLog`, phase
//! `undo`), and the outcome is `failed` naming what was and was not undone.
//!
//! Preconditions, re-checked just before acting: a service manager exists,
//! every planned mount is still the recorded one, and nothing else holds the
//! volumes (`openfiles.rs`: processes and mounts in any namespace, nfsd, loop
//! devices, swap), tolerating only the processes of the services about to be
//! stopped; checked again, strictly, after stopping them and before the first
//! unmount. Each tool runs with the action deadline.

use std::collections::BTreeSet;

use super::audit::{AuditOutcome, AuditRecord, Phase};
use super::o2cb_stack::{self, ServiceManager};
use super::openfiles::{self, Device, HolderQuery};
use super::restore::{self, RestoreMount};
use super::{
    command, not_mine, Action, ActionError, Checked, HostActions, Plan, RestoreHow, VolumeClaim,
};
use crate::collector::o2cb::StackTimeouts;

/// The rule that plans this action (for the undo journal's audit lines).
const RULE: &str = "o2cb_down";
const HOLDERS_SHOWN: usize = 5;

/// Restarts `Plan::RestartO2cb`'s cluster stack, taking its volumes down
/// and restoring them.
pub struct RestartO2cb;

impl Action for RestartO2cb {
    fn name(&self) -> &'static str {
        "restart_o2cb"
    }

    fn check(&self, host: &HostActions, plan: &Plan) -> Checked {
        let Plan::RestartO2cb {
            volumes,
            stop_services,
            ..
        } = plan
        else {
            return Err(not_mine(self, plan));
        };
        Ok(check(host, volumes, stop_services).map(|ready| ready.describe())?)
    }

    fn run(&self, host: &HostActions, plan: &Plan) -> Result<String, ActionError> {
        let Plan::RestartO2cb {
            cluster,
            volumes,
            stop_services,
            timeouts,
        } = plan
        else {
            return Err(ActionError::Failed(not_mine(self, plan)));
        };
        run(host, cluster, volumes, stop_services, *timeouts)
    }

    fn claim(&self, plan: &Plan) -> VolumeClaim {
        let Plan::RestartO2cb {
            cluster, volumes, ..
        } = plan
        else {
            return VolumeClaim::keys(Vec::new()).whole_stack();
        };
        let keys = std::iter::once(format!("cluster:{cluster}"))
            .chain(volumes.iter().flat_map(|v| {
                let source = match &v.how {
                    RestoreHow::Device { source, .. } => source.clone(),
                    RestoreHow::Bind { from } => from.clone(),
                };
                [
                    VolumeClaim::mount(&v.mountpoint),
                    format!("source:{source}"),
                ]
            }))
            .collect();
        VolumeClaim::keys(keys).whole_stack()
    }

    fn disruptive(&self) -> bool {
        true
    }

    fn destructive(&self) -> bool {
        true
    }

    fn held_by_partition(&self) -> bool {
        true
    }

    fn needs_lease(&self, _serialize_remounts: bool) -> bool {
        true
    }

    fn takes_down<'p>(&self, plan: &'p Plan) -> Option<Vec<&'p str>> {
        match plan {
            Plan::RestartO2cb { volumes, .. } => {
                Some(volumes.iter().map(|v| v.mountpoint.as_str()).collect())
            }
            _ => None,
        }
    }
}

/// Why an o2cb restart does not start, or what went wrong in it.
#[derive(Debug, thiserror::Error)]
pub enum O2cbError {
    #[error("no o2cb service manager found (systemd unit, init script or o2cb tool)")]
    NoManager,
    #[error(transparent)]
    Restore(#[from] restore::RestoreError),
    #[error(transparent)]
    Stack(#[from] o2cb_stack::StackError),
    #[error(transparent)]
    Command(#[from] command::CommandError),
    #[error("the volumes are in use: {}", .0.join("; "))]
    InUse(Vec<String>),
    #[error("the volumes are still mounted elsewhere: {}", .0.join(", "))]
    MountedElsewhere(Vec<String>),
    /// A step failed; everything done so far was undone (or tried).
    #[error("{error}; done: [{}]; undo: [{}]", .done.join(", "), .undone.join(", "))]
    RolledBack {
        error: Box<O2cbError>,
        done: Vec<String>,
        undone: Vec<String>,
    },
    /// Every step went through but the node is not back in its cluster.
    #[error("the node did not rejoin: {error}; done: [{}]", .done.join(", "))]
    NotRejoined {
        error: Box<O2cbError>,
        done: Vec<String>,
    },
}

/// A restart that passed its preconditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    pub manager: ServiceManager,
    pub mounts: usize,
}

impl Ready {
    pub fn describe(&self) -> String {
        format!(
            "restart o2cb via {:?}, taking down and restoring {} mounts",
            self.manager, self.mounts
        )
    }
}

fn query(host: &HostActions, volumes: &[RestoreMount], stopping: &[String]) -> HolderQuery {
    // PID 1's table names mount points from the host's root; the daemon's
    // own view puts the host under `paths.root` (both forms are the plan's).
    let planned_mounts = volumes
        .iter()
        .flat_map(|v| {
            [
                v.mountpoint.clone(),
                host.paths
                    .root(&v.mountpoint)
                    .to_string_lossy()
                    .into_owned(),
            ]
        })
        .collect();
    HolderQuery {
        devices: devices(volumes),
        planned_mounts,
        stopping_units: stopping.to_vec(),
    }
}

fn devices(volumes: &[RestoreMount]) -> BTreeSet<Device> {
    volumes.iter().map(|v| v.device).collect()
}

/// Nothing but the plan (and the services it stops) uses the volumes.
fn no_holders(
    host: &HostActions,
    volumes: &[RestoreMount],
    stopping: &[String],
) -> Result<(), O2cbError> {
    if volumes.is_empty() {
        return Ok(());
    }
    let found = openfiles::holders(&host.paths, &query(host, volumes, stopping), HOLDERS_SHOWN);
    if found.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = found.iter().map(|h| h.describe()).collect();
    Err(O2cbError::InUse(list))
}

pub fn check(
    host: &HostActions,
    volumes: &[RestoreMount],
    stop_services: &[String],
) -> Result<Ready, O2cbError> {
    let manager = o2cb_stack::detect(host).ok_or(O2cbError::NoManager)?;
    for volume in volumes {
        restore::still_mounted(host, volume)?;
    }
    no_holders(host, volumes, stop_services)?;
    Ok(Ready {
        manager,
        mounts: volumes.len(),
    })
}

/// One change made to the host, undone in reverse order on failure.
#[derive(Debug, Clone)]
enum Change {
    StoppedService(String),
    Unmounted(RestoreMount),
    StoppedStack,
}

struct Transaction<'a> {
    host: &'a HostActions,
    cluster: &'a str,
    manager: ServiceManager,
    want: StackTimeouts,
    journal: Vec<Change>,
    done: Vec<String>,
}

impl Transaction<'_> {
    fn systemctl(&self, verb: &str, unit: &str) -> Result<(), O2cbError> {
        command::run_checked(
            &self.host.command_prefix,
            "systemctl",
            &[verb, unit],
            self.host.timeout,
        )?;
        Ok(())
    }

    fn start_stack(&self) -> Result<String, O2cbError> {
        let written = o2cb_stack::start(self.host, &self.manager, self.cluster, self.want)?;
        Ok(if written.is_empty() {
            "started o2cb".to_string()
        } else {
            format!("started o2cb with {}", written.join(" "))
        })
    }

    fn forward(
        &mut self,
        volumes: &[RestoreMount],
        stop_services: &[String],
    ) -> Result<(), O2cbError> {
        for unit in stop_services {
            self.systemctl("stop", unit)?;
            self.journal.push(Change::StoppedService(unit.clone()));
            self.done.push(format!("stopped {unit}"));
        }
        // The services are gone: now nothing at all may hold the volumes.
        no_holders(self.host, volumes, &[])?;
        for volume in volumes.iter().rev() {
            let planned = restore::still_mounted(self.host, volume)?;
            restore::unmount(self.host, volume, planned)?;
            self.journal.push(Change::Unmounted(volume.clone()));
            self.done.push(format!("unmounted {}", volume.mountpoint));
        }
        let left = openfiles::remaining_mounts(&self.host.paths, &devices(volumes));
        if !left.is_empty() {
            return Err(O2cbError::MountedElsewhere(left));
        }
        if o2cb_stack::registered(self.host, self.cluster) {
            o2cb_stack::stop(self.host, &self.manager, self.cluster)?;
            self.journal.push(Change::StoppedStack);
            self.done.push("stopped o2cb".into());
        }
        let started = self.start_stack()?;
        self.journal.retain(|c| !matches!(c, Change::StoppedStack));
        self.done.push(started);
        for volume in volumes {
            restore::mount(self.host, volume)?;
            self.journal
                .retain(|c| !matches!(c, Change::Unmounted(v) if v == volume));
            self.done.push(format!("restored {}", volume.describe()));
        }
        for unit in stop_services.iter().rev() {
            self.systemctl("start", unit)?;
            self.journal
                .retain(|c| !matches!(c, Change::StoppedService(u) if u == unit));
            self.done.push(format!("started {unit}"));
        }
        Ok(())
    }

    /// Undoes the journal in reverse order; every step audited and reported.
    fn undo(&mut self, cause: &str) -> Vec<String> {
        let mut report = Vec::new();
        while let Some(change) = self.journal.pop() {
            let (step, result) = match &change {
                Change::StoppedStack => ("start o2cb".to_string(), self.start_stack().map(|_| ())),
                Change::Unmounted(volume) => (
                    format!("remount {}", volume.describe()),
                    restore::mount(self.host, volume).map_err(O2cbError::from),
                ),
                Change::StoppedService(unit) => {
                    (format!("start {unit}"), self.systemctl("start", unit))
                }
            };
            match &result {
                Ok(()) => {
                    tracing::info!(cluster = self.cluster, step = %step, "Undid a step of a failed o2cb restart.");
                }
                Err(e) => {
                    tracing::error!(cluster = self.cluster, step = %step, error = %e, "Cannot undo a step of a failed o2cb restart.");
                }
            }
            self.audit_undo(&step, &result, cause);
            report.push(match result {
                Ok(()) => format!("undone: {step}"),
                Err(e) => format!("NOT undone: {step} ({e})"),
            });
        }
        report
    }

    fn audit_undo(&self, step: &str, result: &Result<(), O2cbError>, cause: &str) {
        let Some(log) = &self.host.steps else {
            return;
        };
        log.write(AuditRecord {
            time: AuditRecord::now(),
            rule: RULE.to_string(),
            target: self.cluster.to_string(),
            action: RestartO2cb.name().to_string(),
            mode: String::new(),
            phase: Phase::Undo,
            outcome: if result.is_ok() {
                AuditOutcome::Success
            } else {
                AuditOutcome::Failed
            },
            evidence: format!("restart failed: {cause}"),
            detail: Some(step.to_string()),
            error: result.as_ref().err().map(ToString::to_string),
            caller: None,
        });
    }
}

pub fn run(
    host: &HostActions,
    cluster: &str,
    volumes: &[RestoreMount],
    stop_services: &[String],
    seen: Option<StackTimeouts>,
) -> Result<String, ActionError> {
    let ready = check(host, volumes, stop_services).map_err(ActionError::changed)?;
    let mut tx = Transaction {
        host,
        cluster,
        manager: ready.manager,
        want: o2cb_stack::desired_timeouts(host, seen),
        journal: Vec::new(),
        done: Vec::new(),
    };
    if let Err(error) = tx.forward(volumes, stop_services) {
        let undone = tx.undo(&error.to_string());
        return Err(ActionError::failed(O2cbError::RolledBack {
            error: Box::new(error),
            done: tx.done,
            undone,
        }));
    }
    let deadline = crate::input::deadline(host.timeout);
    let verified = volumes
        .iter()
        .try_for_each(|v| restore::verify(host, v))
        .map_err(O2cbError::from)
        .and_then(|()| {
            o2cb_stack::wait_rejoined(host, cluster, tx.want, !volumes.is_empty(), deadline)
                .map_err(O2cbError::from)
        });
    match verified {
        Ok(rejoined) => {
            tx.done.push(rejoined);
            Ok(tx.done.join(", "))
        }
        // Everything was put back; what is wrong now a second restart
        // would not fix (mismatched peers, a partition): say so, undo nothing.
        Err(error) => Err(ActionError::failed(O2cbError::NotRejoined {
            error: Box::new(error),
            done: tx.done,
        })),
    }
}
