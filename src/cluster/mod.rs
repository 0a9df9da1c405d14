//! Coordination between the watchdogs of one o2cb cluster (issue #12).
//!
//! `maintenance.rs` is the cluster-wide maintenance mode: set with `ocfs2-
//! watchdog maintenance on` on any node (through `admin.rs`, the local
//! daemon's admin endpoint, with the admin token), persisted in
//! `state_dir`, expiring by itself, and held by the engine before each
//! action (`rules::guard::MaintenanceFlag`). `tools.rs` adds the volumes a
//! running `tunefs.ocfs2`/`fsck.ocfs2`/`mkfs.ocfs2` works on. `client.rs` is
//! the small HTTP/1.1 client the CLI and the peers use. `peers.rs` is the
//! peer protocol: every daemon serves its maintenance record on the
//! interconnect and pulls the others' (`[cluster]`, `config.rs`), so
//! maintenance set or cleared on one node holds or frees every node;
//! `peer_auth.rs` authenticates both directions of it and `peer_server.rs`
//! is its listener. `status_route.rs` serves this node's status summary to
//! the peers and gathers theirs for the cluster view (`status --cluster`).

pub mod admin;
pub mod client;
pub mod config;
pub mod lease;
pub mod maintenance;
pub mod peer_auth;
pub mod peer_server;
pub mod peers;
pub mod status_route;
pub mod tools;

pub use maintenance::{Maintenance, MaintenanceRecord};
