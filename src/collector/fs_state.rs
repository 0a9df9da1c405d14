//! The `fs_state` collector (opt-in): per-mount OCFS2 recovery state.
//!
//! Reads debugfs `/sys/kernel/debug/ocfs2/<UUID>/fs_state` (fs/ocfs2/super.c
//! `ocfs2_osb_dump`), one `Label => Key: value ...` line per subsystem, e.g.
//! `  Recovery => Pid: 1535  Nodes: 2` while this node recovers node 2 and
//! `Pid: -1  Nodes: None` otherwise, then the slot table (`*` marks this
//! node's slot).
//!
//! Off by default (`[fs_state] enabled = false`): in the lab, repeated opens
//! of this file on a node that had just run recovery hit a kernel NULL-pointer
//! oops on every open and the next umount hung (lab README, captures/*03d*).
//! The DLM collector's `dlm_state` gives the recovery state without that risk;
//! enable this only on kernels known to be fixed.

use std::sync::Arc;

use serde::Serialize;

use super::parse_error::ParseError;
use super::{read_host_file, CollectError, Collector, Context};
use crate::collector::{Facts, Section};
use crate::metrics::{bool_value, family_table, Families, Family};

pub struct FsState;

/// What one `fs_state` file says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VolumeState {
    pub uuid: String,
    /// `Recovery => Pid:` (-1 when no recovery thread runs).
    pub recovery_pid: i64,
    /// `Recovery => Nodes:` being recovered by this node.
    pub recovery_nodes: Vec<u32>,
    /// `Slots =>` table rows: slot numbers in this volume.
    pub slots: u32,
    /// This node's slot (the row marked `*`).
    pub own_slot: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FsStateFacts {
    pub volumes: Vec<VolumeState>,
}

/// Parses one `fs_state` file; the `Recovery` line is required, the slot
/// table is optional.
pub fn parse_fs_state(uuid: &str, text: &str) -> Result<VolumeState, ParseError> {
    let mut state = VolumeState {
        uuid: uuid.to_string(),
        ..VolumeState::default()
    };
    let mut recovery_seen = false;
    let mut in_slots = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("Recovery => Pid:") {
            let (pid, nodes) = rest.split_once("Nodes:").ok_or(ParseError::BadField {
                field: "Recovery",
                value: trimmed.to_string(),
            })?;
            state.recovery_pid = pid.trim().parse().map_err(|_| ParseError::BadField {
                field: "Recovery Pid",
                value: trimmed.to_string(),
            })?;
            let nodes = nodes.trim();
            if nodes != "None" {
                state.recovery_nodes = nodes
                    .split([' ', ','])
                    .filter(|n| !n.is_empty())
                    .map(|n| {
                        n.parse()
                            .map_err(|_| ParseError::NotANodeNumber(n.to_string()))
                    })
                    .collect::<Result<_, _>>()?;
            }
            recovery_seen = true;
        } else if trimmed.starts_with("Slots =>") {
            in_slots = true;
        } else if in_slots {
            let own = trimmed.starts_with('*');
            let row = trimmed.trim_start_matches('*').trim();
            match row.split_whitespace().next().map(str::parse::<u32>) {
                Some(Ok(slot)) => {
                    state.slots += 1;
                    if own {
                        state.own_slot = Some(slot);
                    }
                }
                _ => in_slots = false,
            }
        }
    }
    if !recovery_seen {
        return Err(ParseError::MissingField("Recovery =>"));
    }
    Ok(state)
}

impl Collector for FsState {
    fn name(&self) -> &'static str {
        "fs_state"
    }

    fn collect(&self, ctx: &Context, _: Option<&Section>) -> Result<Section, CollectError> {
        if !ctx.config.fs_state.enabled {
            return Ok(Section {
                absent: Some(
                    "disabled (fs_state.enabled = false): reading it can oops some kernels".into(),
                ),
                ..Section::default()
            });
        }
        let base = ctx.paths.sys("kernel/debug/ocfs2");
        let Some(names) = super::list_dirs(&base)? else {
            return Ok(Section {
                absent: Some(format!(
                    "{} does not exist: no OCFS2 mount or no debugfs",
                    base.display()
                )),
                ..Section::default()
            });
        };
        let mut facts = FsStateFacts::default();
        for uuid in names {
            let path = base.join(&uuid).join("fs_state");
            let text = read_host_file(&path)?;
            let volume = parse_fs_state(&uuid, &text)
                .map_err(|e| CollectError::parse(&path, e.to_string()))?;
            facts.volumes.push(volume);
        }
        Ok(Section {
            families: families(&facts),
            facts: Facts::FsState(Arc::new(facts)),
            absent: None,
        })
    }
}

family_table! {
    /// The fs_state collector's families.
    enum FsStateFamily {
        RecoveryRunning = gauge(
            "ocfs2_fs_recovery_running",
            "1 while this node runs OCFS2 recovery for the volume (fs_state Recovery Pid set).",
        ),
        RecoveryNodes = gauge(
            "ocfs2_fs_recovery_nodes",
            "Nodes this node is recovering on the volume (fs_state Recovery Nodes).",
        ),
        Slots = gauge(
            "ocfs2_fs_slots",
            "Node slots of the volume (fs_state slot table).",
        ),
        OwnSlot = gauge("ocfs2_fs_own_slot", "This node's slot on the volume."),
    }
}

fn families(facts: &FsStateFacts) -> Vec<Family> {
    use FsStateFamily as F;
    let mut f = Families::<FsStateFamily>::new();
    for volume in &facts.volumes {
        let uuid = [("uuid", volume.uuid.as_str())];
        f[F::RecoveryRunning].push(&uuid, bool_value(volume.recovery_pid >= 0));
        f[F::RecoveryNodes].push(&uuid, volume.recovery_nodes.len() as f64);
        f[F::Slots].push(&uuid, f64::from(volume.slots));
        if let Some(slot) = volume.own_slot {
            f[F::OwnSlot].push(&uuid, f64::from(slot));
        }
    }
    f.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// captures/n1-02-2node-mounted-debugfs-ocfs2.txt, as captured.
    const HEALTHY: &str = "    Device => Id: 254,0  Uuid: DEA93192F0874F53BB5290B5205C6B64  Gen: 0x75CA67A1  Label: labvol
    Volume => State: 2  Flags: 0x0
     Sizes => Block: 4096  Cluster: 4096
  Features => Compat: 0x3  Incompat: 0xF750  ROcompat: 0x1
     Mount => Opts: 0x105  AtimeQuanta: 60
   Cluster => Stack: o2cb  Name: DEA93192F0874F53BB5290B5205C6B64  Version: 1.0
  DownCnvt => Pid: 523  Count: 0  WakeSeq: 11  WorkSeq: 11
  Recovery => Pid: -1  Nodes: None
    Commit => Pid: 528  Interval: 0
   Journal => State: 1  TxnId: 2  NumTxns: 1
     Stats => GlobalAllocs: 0  LocalAllocs: 0  SubAllocs: 1  LAWinMoves: 0  SAExtends: 0
LocalAlloc => State: 1  Descriptor: 0  Size: 27136 bits  Default: 27136 bits
     Steal => InodeSlot: 65535  StolenInodes: 0, MetaSlot: 65535  StolenMeta: 0
OrphanScan => Local: 0  Global: 0  Last Scan: 17 seconds ago
     Slots => Num     RecoGen
            *   0           0
                1           0
                2           0
                3           0
";

    #[test]
    fn healthy_capture() {
        let state = parse_fs_state("U", HEALTHY).unwrap();
        assert_eq!(state.recovery_pid, -1);
        assert!(state.recovery_nodes.is_empty());
        assert_eq!((state.slots, state.own_slot), (4, Some(0)));
    }

    #[test]
    fn recovery_lines() {
        // The Recovery line of captures/n1-03a-pause-n2-timeline.txt at 96.49 s.
        for (line, pid, nodes) in [
            ("  Recovery => Pid: 1535  Nodes: 2", 1535, vec![2]),
            ("  Recovery => Pid: 1535 Nodes: 2 3", 1535, vec![2, 3]),
            ("  Recovery => Pid: -1  Nodes: None", -1, vec![]),
        ] {
            let state = parse_fs_state("U", line).unwrap();
            assert_eq!(
                (state.recovery_pid, state.recovery_nodes),
                (pid, nodes),
                "{line}"
            );
        }
    }

    #[test]
    fn garbage_is_an_error() {
        for text in [
            "",
            "garbage",
            "  Recovery => Pid: x  Nodes: None",
            "  Recovery => Pid: 1",
            "  Recovery => Pid: 1 Nodes: two",
        ] {
            assert!(parse_fs_state("U", text).is_err(), "{text:?}");
        }
    }
}
