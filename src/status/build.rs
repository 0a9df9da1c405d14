//! Builds the status `Overview` from a `Snapshot`: joins the typed facts of
//! every collector (configfs, heartbeat, o2net, DLM, mounts, storage, kernel
//! log) and the rule engine's report into the per-node, per-volume view an
//! operator reads. Pure: reads only the snapshot, never the host, so the
//! daemon can build it on every request of `/` and `/status`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::model::*;
use crate::actions::audit::AuditRecord;
use crate::collector::mounts::MountPoint;
use crate::collector::storage::StorageFacts;
use crate::snapshot::Snapshot;

/// Kernel events shown; older ones stay in `/status` under `kernel_log`.
const EVENTS_SHOWN: usize = 12;
/// Audit records shown as the last actions.
const ACTIONS_SHOWN: usize = 8;

pub fn overview(snapshot: &Snapshot) -> Overview {
    Overview {
        version: env!("CARGO_PKG_VERSION").to_string(),
        taken_at: humantime::format_rfc3339_seconds(snapshot.taken_at).to_string(),
        taken_at_unix: snapshot
            .taken_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs_f64(),
        sequence: snapshot.sequence,
        cluster: cluster(snapshot),
        nodes: nodes(snapshot),
        volumes: volumes(snapshot),
        events: events(snapshot),
        remediation: remediation(snapshot),
        collectors: collectors(snapshot),
        probes_stuck: snapshot.probes_stuck,
    }
}

fn cluster(snapshot: &Snapshot) -> Option<ClusterView> {
    let o2cb = snapshot.o2cb()?;
    let running = o2cb.cluster.as_ref();
    let local = running.and_then(|c| c.local_node());
    let storage = snapshot.storage();
    Some(ClusterView {
        name: o2cb.cluster_name.clone(),
        online: o2cb.online,
        expected: o2cb.online || o2cb.expected,
        heartbeat_mode: running
            .and_then(|c| c.heartbeat_mode)
            .map(|m| m.as_str().to_string()),
        dead_threshold: running.and_then(|c| c.dead_threshold),
        heartbeat_timeout_seconds: running
            .and_then(|c| c.dead_threshold)
            .filter(|t| *t > 1)
            .map(|t| 2.0 * f64::from(t - 1)),
        idle_timeout_ms: running.and_then(|c| c.idle_timeout_ms),
        keepalive_delay_ms: running.and_then(|c| c.keepalive_delay_ms),
        reconnect_delay_ms: running.and_then(|c| c.reconnect_delay_ms),
        fence_method: running.and_then(|c| c.fence_method.clone()),
        local_node: local.and_then(|n| n.num),
        local_name: local.map(|n| n.name.clone()),
        drift: o2cb
            .mismatches
            .iter()
            .filter(|m| m.mismatch)
            .map(|m| DriftView {
                setting: m.setting.to_string(),
                detail: m.detail.clone(),
            })
            .collect(),
        invariants_violated: storage
            .map(|s| {
                s.invariants
                    .iter()
                    .filter(|i| i.violated())
                    .map(|i| InvariantView {
                        check: i.check.to_string(),
                        larger_seconds: i.larger_seconds,
                        smaller_seconds: i.smaller_seconds,
                    })
                    .collect()
            })
            .unwrap_or_default(),
    })
}

fn nodes(snapshot: &Snapshot) -> Vec<NodeView> {
    let Some(cluster) = snapshot.o2cb().and_then(|o| o.cluster.as_ref()) else {
        return Vec::new();
    };
    let heartbeat = snapshot.heartbeat();
    let net = snapshot.net();
    let dlm = snapshot.dlm().filter(|d| !d.domains.is_empty());
    cluster
        .numbered_nodes()
        .into_iter()
        .map(|(number, config)| {
            let local = config.local == Some(true);
            let heartbeat_live = heartbeat.map(|h| h.live_any.contains(&number));
            let disk = disk_slot(heartbeat, number);
            let connected = net
                .filter(|_| !local)
                .map(|n| n.connected.contains(&number));
            let mut mismatches = Vec::new();
            let mut zombie = false;
            let dlm_member = dlm.map(|dlm| {
                let mut member = true;
                for domain in &dlm.domains {
                    let short = short_uuid(&domain.state.domain);
                    if !domain.state.domain_map.contains(&number) {
                        member = false;
                    }
                    if domain.missing_from_domain.contains(&number) {
                        zombie = true;
                        mismatches.push(format!(
                            "live and connected but missing from DLM domain {short}"
                        ));
                    }
                    if domain.not_heartbeating.contains(&number) {
                        mismatches.push(format!("in DLM domain {short} but not live in heartbeat"));
                    }
                }
                member
            });
            if heartbeat_live == Some(false) && disk.as_ref().is_some_and(|d| d.active) {
                zombie = true;
                mismatches.push("writing its disk slot but not live in heartbeat".into());
            }
            if heartbeat_live == Some(true) && connected == Some(false) {
                mismatches.push("live in heartbeat but not connected".into());
            }
            NodeView {
                number,
                name: config.name.clone(),
                local,
                address: config.address.map(|a| match config.port {
                    Some(port) => format!("{a}:{port}"),
                    None => a.to_string(),
                }),
                heartbeat_live,
                disk,
                connected,
                dlm_member,
                zombie,
                mismatches,
            }
        })
        .collect()
}

/// The node's slot, from the first region whose disk was read.
fn disk_slot(
    heartbeat: Option<&crate::collector::heartbeat::HeartbeatFacts>,
    number: u8,
) -> Option<DiskSlotView> {
    let slot = heartbeat?
        .regions
        .iter()
        .find_map(|r| r.disk.as_ref()?.node(number))?;
    Some(DiskSlotView {
        written: slot.seq != 0,
        active: slot.active,
        stopped: slot.stopped(),
        age_seconds: slot.seq_age_seconds,
        age_known: slot.change_seen,
    })
}

fn short_uuid(uuid: &str) -> &str {
    uuid.get(..8).unwrap_or(uuid)
}

fn volumes(snapshot: &Snapshot) -> Vec<VolumeView> {
    let Some(mounts) = snapshot.mounts() else {
        return Vec::new();
    };
    let mut order: Vec<String> = Vec::new();
    let mut by_key: BTreeMap<String, VolumeView> = BTreeMap::new();
    for mount in &mounts.mounts {
        let key = if mount.uuid.is_empty() {
            format!("path:{}", mount.mountpoint)
        } else {
            mount.uuid.clone()
        };
        let volume = by_key.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            VolumeView {
                uuid: mount.uuid.clone(),
                label: mount.label.clone(),
                device: mount.top.as_ref().map(|t| t.source.clone()),
                ..VolumeView::default()
            }
        });
        volume.mounts.push(mount_view(mount));
        if volume.storage.is_none() {
            volume.storage = snapshot
                .storage()
                .and_then(|s| storage_view(s, snapshot, &mount.mountpoint));
        }
    }
    let heartbeat = snapshot.heartbeat();
    order
        .into_iter()
        .filter_map(|key| by_key.remove(&key))
        .map(|mut volume| {
            volume.heartbeat = heartbeat
                .and_then(|h| h.region(&volume.uuid))
                .map(|r| RegionView {
                    elapsed_ms: r.elapsed_ms,
                    ratio: r.ratio,
                    ratio_max: r.ratio_max,
                    live: r.live.iter().copied().collect(),
                });
            volume
        })
        .collect()
}

fn mount_view(mount: &MountPoint) -> MountView {
    let top = mount.top.as_ref();
    let expected = mount.expected.as_ref();
    MountView {
        mountpoint: mount.mountpoint.clone(),
        fstype: top.map(|t| t.fstype.clone()),
        options: top.map(|t| t.mount_options.clone()),
        mounted: mount.is_mounted(),
        missing: mount.is_missing(),
        expected_from: expected.map(|e| match e.origin {
            crate::collector::mounts::ExpectedOrigin::Fstab => "fstab".to_string(),
            crate::collector::mounts::ExpectedOrigin::Config => "config".to_string(),
        }),
        expected_source: expected.map(|e| e.source.clone()),
        layers: mount.stacked,
        duplicate_layers: mount.duplicate_layers,
        shadowed: mount.shadowed,
        readonly: mount.readonly,
        error_readonly: mount.error_readonly,
        device_missing: mount.device_missing,
        mountpoint_deleted: mount.mountpoint_deleted,
        unstable_device_name: mount.unstable_device_name == Some(true),
        stuck: mount.probe.stuck,
        stuck_seconds: mount
            .probe
            .stuck
            .then_some(mount.probe.duration_seconds)
            .flatten(),
        reachable: mount.probe.reachable,
        size_bytes: mount.probe.size_bytes,
        avail_bytes: mount.probe.avail_bytes,
        probe_error: mount.probe.error.clone(),
    }
}

fn storage_view(
    storage: &StorageFacts,
    snapshot: &Snapshot,
    mountpoint: &str,
) -> Option<StorageView> {
    let path = storage
        .mounts
        .iter()
        .find(|m| m.mountpoint == mountpoint)
        .filter(|m| !m.top.is_empty() || !m.disks.is_empty())?;
    let maps: Vec<&crate::collector::storage::MapView> = storage
        .maps
        .iter()
        .filter(|m| path.maps.contains(&m.map.dm))
        .collect();
    let sessions = snapshot
        .iscsi()
        .map(|i| i.sessions.as_slice())
        .unwrap_or(&[]);
    let disks = path
        .disks
        .iter()
        .map(|name| {
            let scsi = storage.disks.iter().find(|d| &d.name == name);
            let dm_says = maps
                .iter()
                .flat_map(|m| m.paths.iter())
                .find(|(disk, _)| disk == name)
                .and_then(|(_, up)| *up);
            let session = storage.sessions_by_disk.get(name).map(|(session, target)| {
                let found = sessions.iter().find(|s| &s.name == session);
                SessionView {
                    name: session.clone(),
                    target: target.clone(),
                    portal: found.map(|s| s.portal()).unwrap_or_default(),
                    state: found.and_then(|s| s.state.clone()),
                    connection_state: found
                        .and_then(|s| s.connections.first())
                        .and_then(|c| c.state.clone()),
                    recovery_tmo_seconds: found.and_then(|s| s.recovery_tmo_seconds),
                }
            });
            DiskView {
                name: name.clone(),
                state: scsi.and_then(|d| d.state.clone()),
                up: dm_says.or_else(|| scsi.and_then(|d| d.is_running())),
                session,
            }
        })
        .collect();
    Some(StorageView {
        top: path.top.clone(),
        maps: maps
            .iter()
            .map(|m| MapView {
                name: m.map.name.clone(),
                dm: m.map.dm.clone(),
                wwid: m.map.wwid.clone(),
                queueing: m.queueing,
                paths_up: m.paths.iter().filter(|(_, up)| *up == Some(true)).count(),
                paths_total: m.paths.len(),
            })
            .collect(),
        disks,
        stall_seconds: path.stall_seconds,
    })
}

fn events(snapshot: &Snapshot) -> EventsView {
    let followed = snapshot
        .collectors
        .get("kernel_log")
        .is_some_and(|(report, _)| report.success && report.absent.is_none());
    let Some(log) = snapshot.kernel_log() else {
        return EventsView {
            followed,
            ..EventsView::default()
        };
    };
    let skip = log.recent.len().saturating_sub(EVENTS_SHOWN);
    EventsView {
        followed,
        recent: log.recent[skip..]
            .iter()
            .map(|e| EventView {
                time: e.timestamp_seconds,
                event: e.event.as_str().to_string(),
                message: e.message.clone(),
            })
            .collect(),
        fence_previous_boot: log.counters.fence_previous_boot,
    }
}

fn remediation(snapshot: &Snapshot) -> RemediationView {
    let mode = if snapshot.enforcing {
        "enforce"
    } else {
        "dry_run"
    };
    let Some(report) = snapshot.remediation.as_deref() else {
        return RemediationView {
            mode: mode.to_string(),
            ..RemediationView::default()
        };
    };
    let mut holds = Vec::new();
    if report.paused {
        holds.push(Hold {
            kind: HoldKind::Paused,
            detail: "remediation paused on this node".into(),
            seconds: Some(report.paused_seconds),
        });
    }
    if let Some(reason) = &report.storm_brake {
        holds.push(Hold {
            kind: HoldKind::StormBrake,
            detail: reason.clone(),
            seconds: None,
        });
    }
    if let Some(lease) = report.lease.as_ref().filter(|l| l.contended_seconds > 0.0) {
        holds.push(Hold {
            kind: HoldKind::Lease,
            detail: lease.last_denial.clone().unwrap_or_default(),
            seconds: Some(lease.contended_seconds),
        });
    }
    let skip = report.recent_audit.len().saturating_sub(ACTIONS_SHOWN);
    RemediationView {
        mode: if report.enforcing { "enforce" } else { mode }.to_string(),
        engine_running: true,
        holds,
        budget_per_hour: Some(report.budget_per_hour),
        budget_remaining: Some(report.budget_remaining),
        rules: report
            .targets
            .iter()
            .map(|t| RuleView {
                rule: t.rule.to_string(),
                target: t.target.clone(),
                action: t.action.map(str::to_string),
                state: t.state.to_string(),
                alert_only: t.alert_only,
                attempts: t.attempts,
                evidence: t.evidence.clone(),
                last_outcome: t.last_outcome.map(str::to_string),
            })
            .collect(),
        last_actions: report.recent_audit[skip..]
            .iter()
            .filter_map(|line| serde_json::from_str::<AuditRecord>(line).ok())
            .map(|r| ActionView {
                time: r.time,
                rule: r.rule,
                target: r.target,
                action: r.action,
                mode: r.mode,
                outcome: r.outcome.as_str().to_string(),
            })
            .collect(),
        audit_write_errors: report.audit_write_errors,
    }
}

fn collectors(snapshot: &Snapshot) -> Vec<CollectorView> {
    snapshot
        .collectors
        .iter()
        .map(|(name, (report, _))| CollectorView {
            name: name.to_string(),
            ok: report.success,
            reason: report.error_kind.map(|k| k.as_str().to_string()),
            error: report.error.clone(),
            absent: report.absent.clone(),
            stale: report.stale,
        })
        .collect()
}
