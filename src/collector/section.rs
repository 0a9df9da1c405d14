//! What one collector run produces: its metric families and the typed facts
//! it hands to the rules and `/status`.
//!
//! Kept with the collectors, below the snapshot: every collector builds a
//! `Section`, and `crate::snapshot` (the layer above) gathers one per collector
//! into a `Snapshot`. Nothing here knows about snapshots, so the collectors
//! never import from `crate::snapshot` (`tests/layers.rs` checks it).

use std::sync::Arc;

use serde::Serialize;

use super::dlm::DlmFacts;
use super::fs_state::FsStateFacts;
use super::heartbeat::HeartbeatFacts;
use super::kernel_log::KernelLogFacts;
use super::mounts::MountFacts;
use super::net::NetFacts;
use super::o2cb::O2cbFacts;
use super::storage::{IscsiFacts, StorageFacts};
use crate::metrics::Family;

/// Typed facts a collector hands to the rules and `/status`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Facts {
    #[default]
    None,
    Mounts(Arc<MountFacts>),
    Iscsi(Arc<IscsiFacts>),
    Storage(Arc<StorageFacts>),
    O2cb(Arc<O2cbFacts>),
    Heartbeat(Arc<HeartbeatFacts>),
    Net(Arc<NetFacts>),
    Dlm(Arc<DlmFacts>),
    FsState(Arc<FsStateFacts>),
    KernelLog(Arc<KernelLogFacts>),
}

/// What one collector produced on its last completed run.
#[derive(Debug, Clone, Default)]
pub struct Section {
    pub families: Vec<Family>,
    pub facts: Facts,
    /// Set when the collector's source does not exist on this host (no OCFS2,
    /// no iSCSI): success stays 1 and this says why nothing is reported.
    pub absent: Option<String>,
}
