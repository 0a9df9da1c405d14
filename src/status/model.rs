//! The status overview: everything `ocfs2-watchdog status`, the check mode
//! and the `/` page show, in one serialisable document.
//!
//! `build.rs` fills it from a `Snapshot` (the typed facts of each collector
//! plus the rule engine's report); the daemon serves it under the `overview`
//! key of `/status`, and the CLI either reads it from there or builds it from
//! a snapshot it takes itself. Every renderer (`text`, `html`, `check`) reads
//! only this document, so the three never disagree. Fields that a collector
//! could not provide are `None` (shown as unknown), never a guessed value.

use serde::{Deserialize, Serialize};

/// One node's status, as every view of the cluster sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    pub version: String,
    /// RFC 3339 time the snapshot was taken, and the same as Unix seconds.
    pub taken_at: String,
    pub taken_at_unix: f64,
    pub sequence: u64,
    pub cluster: Option<ClusterView>,
    pub nodes: Vec<NodeView>,
    pub volumes: Vec<VolumeView>,
    pub events: EventsView,
    pub remediation: RemediationView,
    pub collectors: Vec<CollectorView>,
    /// Probe threads blocked past their deadline (hung I/O somewhere).
    pub probes_stuck: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterView {
    pub name: String,
    /// A cluster is registered in configfs (the o2cb stack is up).
    pub online: bool,
    /// The host is configured to run one (`O2CB_ENABLED=true`, a
    /// cluster.conf or an expected OCFS2 mount): only then is an offline
    /// stack a fault. Absent from an older daemon's answer: taken as yes.
    #[serde(default = "expected_by_default")]
    pub expected: bool,
    pub heartbeat_mode: Option<String>,
    pub dead_threshold: Option<u32>,
    /// Self-fence timeout: 2 s × (dead_threshold − 1).
    pub heartbeat_timeout_seconds: Option<f64>,
    pub idle_timeout_ms: Option<u32>,
    pub keepalive_delay_ms: Option<u32>,
    pub reconnect_delay_ms: Option<u32>,
    pub fence_method: Option<String>,
    /// This node's number and name in the cluster.
    pub local_node: Option<u8>,
    pub local_name: Option<String>,
    /// Settings whose running and configured values differ.
    pub drift: Vec<DriftView>,
    /// Timeout invariants that do not hold (e.g. heartbeat ≤ storage stall).
    pub invariants_violated: Vec<InvariantView>,
}

fn expected_by_default() -> bool {
    true
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DriftView {
    pub setting: String,
    pub detail: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InvariantView {
    pub check: String,
    pub larger_seconds: f64,
    pub smaller_seconds: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    pub number: u8,
    pub name: String,
    pub local: bool,
    pub address: Option<String>,
    /// Live in o2hb (any region); `None` when heartbeat could not be read.
    pub heartbeat_live: Option<bool>,
    /// The node's slot on the shared disk, when the disk was read.
    pub disk: Option<DiskSlotView>,
    /// o2net connected; `None` for this node itself or when unread.
    pub connected: Option<bool>,
    /// Member of every DLM domain this node is in; `None` with no domain.
    pub dlm_member: Option<bool>,
    /// Live and connected, but missing from a DLM domain map: the zombie
    /// state no single view shows.
    pub zombie: bool,
    /// What disagrees about this node, in words.
    pub mismatches: Vec<String>,
}

impl NodeView {
    /// Not live in heartbeat: dead, fenced or stopped.
    pub fn is_down(&self) -> bool {
        self.heartbeat_live == Some(false)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiskSlotView {
    /// The slot has ever been written.
    pub written: bool,
    /// Sequence seen advancing within the writer's dead time.
    pub active: bool,
    /// A clean stop (generation 0 after a written block).
    pub stopped: bool,
    /// Seconds since the slot's sequence last changed (0 at first sight).
    pub age_seconds: f64,
    /// A change was seen since the daemon started, so the age is real.
    pub age_known: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VolumeView {
    /// Empty when the volume is known only from fstab or the config.
    pub uuid: String,
    pub label: String,
    pub device: Option<String>,
    pub mounts: Vec<MountView>,
    pub heartbeat: Option<RegionView>,
    pub storage: Option<StorageView>,
}

impl VolumeView {
    /// The label, else the UUID's first 8 digits, else the first mount point.
    pub fn short_name(&self) -> String {
        if !self.label.is_empty() {
            self.label.clone()
        } else if !self.uuid.is_empty() {
            self.uuid.get(..8).unwrap_or(&self.uuid).to_string()
        } else {
            self.mounts
                .first()
                .map(|m| m.mountpoint.clone())
                .unwrap_or_default()
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MountView {
    pub mountpoint: String,
    pub fstype: Option<String>,
    pub options: Option<String>,
    pub mounted: bool,
    /// Expected (fstab or config) but not mounted.
    pub missing: bool,
    /// `fstab` or `config` when expected, with the expected source.
    pub expected_from: Option<String>,
    pub expected_source: Option<String>,
    /// Layers on the path; duplicates of the layer below; shadowed by another fs.
    pub layers: usize,
    pub duplicate_layers: usize,
    pub shadowed: bool,
    pub readonly: bool,
    pub error_readonly: bool,
    pub device_missing: bool,
    pub mountpoint_deleted: bool,
    pub unstable_device_name: bool,
    pub stuck: bool,
    /// How long the probe has been blocked, when stuck.
    pub stuck_seconds: Option<f64>,
    pub reachable: bool,
    pub size_bytes: Option<f64>,
    pub avail_bytes: Option<f64>,
    pub probe_error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegionView {
    pub elapsed_ms: u64,
    /// Time since the last heartbeat write ÷ self-fence timeout.
    pub ratio: Option<f64>,
    pub ratio_max: Option<f64>,
    pub live: Vec<u8>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StorageView {
    /// Kernel name of the mounted device (`dm-0`, `sda`).
    pub top: String,
    pub maps: Vec<MapView>,
    /// Every disk under the volume, with its session.
    pub disks: Vec<DiskView>,
    /// Longest time I/O can hang before erroring (queueing + recovery).
    pub stall_seconds: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MapView {
    pub name: String,
    pub dm: String,
    pub wwid: String,
    pub queueing: Option<bool>,
    pub paths_up: usize,
    pub paths_total: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiskView {
    pub name: String,
    /// SCSI device state (`running`, `blocked`, `transport-offline`).
    pub state: Option<String>,
    /// Usable as multipath or SCSI says; `None` when unknown.
    pub up: Option<bool>,
    pub session: Option<SessionView>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionView {
    pub name: String,
    pub target: String,
    pub portal: String,
    /// `LOGGED_IN`, `FAILED`, `FREE`.
    pub state: Option<String>,
    pub connection_state: Option<String>,
    pub recovery_tmo_seconds: Option<f64>,
}

impl SessionView {
    pub fn logged_in(&self) -> bool {
        self.state.as_deref() == Some("LOGGED_IN")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventsView {
    /// The kernel log is followed (not disabled, not absent, not failing).
    pub followed: bool,
    /// The last classified OCFS2/o2cb/iSCSI messages, newest last.
    pub recent: Vec<EventView>,
    /// The previous boot ended in a self-fence (`None`: not known).
    pub fence_previous_boot: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventView {
    /// Unix seconds, when the log gave a time.
    pub time: Option<f64>,
    /// The contract's event name (`fence`, `dlm_node_evicted`, ...).
    pub event: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RemediationView {
    /// `enforce` or `dry_run`.
    pub mode: String,
    /// The rule engine's report is in the snapshot (a running daemon).
    pub engine_running: bool,
    /// Why actions are held back right now; empty when none is.
    pub holds: Vec<Hold>,
    pub budget_per_hour: Option<u32>,
    pub budget_remaining: Option<u32>,
    /// Rules pending, firing or given up, per target.
    pub rules: Vec<RuleView>,
    /// The last audit records, newest last.
    pub last_actions: Vec<ActionView>,
    pub audit_write_errors: u64,
}

/// One reason the engine holds its actions. New reasons (a cluster-wide
/// maintenance flag) are new kinds here, shown wherever holds are shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    pub kind: HoldKind,
    pub detail: String,
    /// How long it has held, when known.
    pub seconds: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldKind {
    /// An operator paused remediation on this node (`POST /pause`).
    Paused,
    /// The storm brake: too many targets failing at once.
    StormBrake,
    /// A disruptive action waits for the cluster lease (held elsewhere, or
    /// the peers cannot be asked).
    Lease,
}

impl HoldKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Paused => "paused",
            Self::StormBrake => "storm brake",
            Self::Lease => "cluster lease",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleView {
    pub rule: String,
    pub target: String,
    pub action: Option<String>,
    /// `pending`, `firing`, `gave_up`.
    pub state: String,
    pub alert_only: bool,
    pub attempts: u32,
    pub evidence: String,
    pub last_outcome: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionView {
    pub time: String,
    pub rule: String,
    pub target: String,
    pub action: String,
    pub mode: String,
    pub outcome: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CollectorView {
    pub name: String,
    pub ok: bool,
    /// The fixed reason (`not_found`, `timeout`, ...) and the full error.
    pub reason: Option<String>,
    pub error: Option<String>,
    /// The source does not exist on this host (no iSCSI, no cluster).
    pub absent: Option<String>,
    pub stale: bool,
}
