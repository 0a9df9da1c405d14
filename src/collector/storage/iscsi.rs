//! iSCSI sessions and connections from the `scsi_transport_iscsi` class devices.
//!
//! Reads `/sys/class/iscsi_session/sessionN/` (state, targetname, tpgt,
//! recovery_tmo, abort_tmo, lu_reset_tmo, tgt_reset_tmo, initiatorname,
//! ifacename, target_state on newer kernels), `/sys/class/iscsi_connection/
//! connectionN:M/` (state on newer kernels, address, port, persistent_address,
//! persistent_port) and the disks scanned under the session device
//! (`sessionN/device/targetH:C:T/H:C:T:L/block/sdX`). Formats:
//! drivers/scsi/scsi_transport_iscsi.c (`iscsi_session_state_names`,
//! `show_priv_session_recovery_tmo`, `iscsi_conn_state_names`), documented in
//! docs/interfaces.md §6.1–6.4. Every attribute degrades on its own.

use std::path::Path;

use serde::Serialize;

use super::sysfs::{attr, list_dir, read_attr, real_dir, Attr};
use crate::host::HostPaths;

/// Session states the kernel prints (`iscsi_session_state_names`).
pub const SESSION_STATES: [&str; 3] = ["LOGGED_IN", "FAILED", "FREE"];
/// `target_state` values (kernels ≥ 5.x, `iscsi_session_target_state_name`).
pub const TARGET_STATES: [&str; 4] = ["UNBOUND", "ALLOCATED", "SCANNED", "UNBINDING"];
/// Connection `state` values (`connection_state_name`, newer kernels).
pub const CONNECTION_STATES: [&str; 5] = ["up", "down", "failed", "bound", "unknown"];

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Connection {
    /// `connection2:0`.
    pub name: String,
    pub state: Option<String>,
    pub address: Option<String>,
    pub port: Option<String>,
    pub persistent_address: Option<String>,
    pub persistent_port: Option<String>,
}

impl Connection {
    /// `address:port` of the portal, preferring the persistent (configured)
    /// one, which stays readable while the connection is down.
    pub fn portal(&self) -> Option<String> {
        let pair = |a: &Option<String>, p: &Option<String>| {
            a.as_ref().map(|a| {
                let host = if a.contains(':') {
                    format!("[{a}]")
                } else {
                    a.clone()
                };
                match p {
                    Some(p) => format!("{host}:{p}"),
                    None => host,
                }
            })
        };
        pair(&self.persistent_address, &self.persistent_port)
            .or_else(|| pair(&self.address, &self.port))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Session {
    /// `session2`.
    pub name: String,
    pub state: Option<String>,
    pub target: Option<String>,
    pub tpgt: Option<String>,
    pub recovery_tmo_seconds: Option<f64>,
    pub abort_tmo_seconds: Option<f64>,
    pub lu_reset_tmo_seconds: Option<f64>,
    pub tgt_reset_tmo_seconds: Option<f64>,
    pub initiator: Option<String>,
    pub iface: Option<String>,
    pub target_state: Option<String>,
    pub connections: Vec<Connection>,
    /// Block devices scanned under the session (`sdb`).
    pub disks: Vec<String>,
}

impl Session {
    pub fn target_label(&self) -> &str {
        self.target.as_deref().unwrap_or("")
    }

    pub fn portal(&self) -> String {
        self.connections
            .iter()
            .find_map(Connection::portal)
            .unwrap_or_default()
    }

    pub fn is_logged_in(&self) -> bool {
        self.state.as_deref() == Some("LOGGED_IN")
    }
}

/// A timeout attribute: whole seconds, or `off` (−1: never time out).
pub fn parse_timeout(text: &str) -> Option<f64> {
    match text.trim() {
        "off" | "-1" => Some(f64::INFINITY),
        value => value.parse::<u32>().ok().map(f64::from),
    }
}

/// A value out of a known set; anything else (garbage, truncation) is `None`.
pub fn parse_known(text: &str, known: &[&str]) -> Option<String> {
    let text = text.trim();
    known.contains(&text).then(|| text.to_string())
}

/// Why nothing is reported, when the host has no iSCSI sessions.
pub fn absent_reason(paths: &HostPaths) -> Option<String> {
    let dir = paths.sys("class/iscsi_session");
    if !dir.is_dir() {
        return Some("no /sys/class/iscsi_session: iSCSI transport not loaded".into());
    }
    list_dir(&dir)
        .is_empty()
        .then(|| "no iSCSI sessions".into())
}

/// Every session with its connections and disks.
pub fn read_sessions(paths: &HostPaths) -> Vec<Session> {
    let class = paths.sys("class/iscsi_session");
    let connections = paths.sys("class/iscsi_connection");
    let connection_names = list_dir(&connections);
    list_dir(&class)
        .into_iter()
        .filter(|name| name.starts_with("session"))
        .map(|name| {
            let dir = class.join(&name);
            let sid = name.trim_start_matches("session");
            let prefix = format!("connection{sid}:");
            let mut session = read_session(&dir, name.clone());
            session.connections = connection_names
                .iter()
                .filter(|c| c.starts_with(&prefix))
                .map(|c| read_connection(&connections.join(c), c.clone()))
                .collect();
            session.disks = session_disks(&dir);
            session
        })
        .collect()
}

fn read_session(dir: &Path, name: String) -> Session {
    let timeout = |attr_name: &str| {
        let value = read_attr(dir, attr_name);
        let parsed = value.value().and_then(parse_timeout);
        if parsed.is_none() && matches!(value, Attr::Value(_)) {
            tracing::warn!(file = %dir.join(attr_name).display(), "Ignoring an unparsable iSCSI timeout.");
        }
        parsed
    };
    Session {
        state: attr(dir, "state").and_then(|s| parse_known(&s, &SESSION_STATES)),
        target: attr(dir, "targetname").filter(|t| !t.is_empty()),
        tpgt: attr(dir, "tpgt").filter(|t| t.parse::<i64>().is_ok()),
        recovery_tmo_seconds: timeout("recovery_tmo"),
        abort_tmo_seconds: timeout("abort_tmo"),
        lu_reset_tmo_seconds: timeout("lu_reset_tmo"),
        tgt_reset_tmo_seconds: timeout("tgt_reset_tmo"),
        initiator: attr(dir, "initiatorname"),
        iface: attr(dir, "ifacename"),
        target_state: attr(dir, "target_state").and_then(|s| parse_known(&s, &TARGET_STATES)),
        name,
        ..Session::default()
    }
}

fn read_connection(dir: &Path, name: String) -> Connection {
    Connection {
        name,
        state: attr(dir, "state").and_then(|s| parse_known(&s, &CONNECTION_STATES)),
        address: attr(dir, "address"),
        port: attr(dir, "port").filter(|p| p.parse::<u16>().is_ok()),
        persistent_address: attr(dir, "persistent_address"),
        persistent_port: attr(dir, "persistent_port").filter(|p| p.parse::<u16>().is_ok()),
    }
}

/// `sessionN/device/targetH:C:T/H:C:T:L/block/sdX`.
pub fn session_disks(session_dir: &Path) -> Vec<String> {
    let Some(device) = real_dir(&session_dir.join("device")) else {
        return Vec::new();
    };
    let mut disks = Vec::new();
    for target in list_dir(&device)
        .into_iter()
        .filter(|t| t.starts_with("target"))
    {
        let target_dir = device.join(&target);
        for lun in list_dir(&target_dir).into_iter().filter(|l| is_hctl(l)) {
            disks.extend(list_dir(&target_dir.join(lun).join("block")));
        }
    }
    disks
}

/// `H:C:T:L`, four decimal numbers.
pub fn is_hctl(name: &str) -> bool {
    let parts: Vec<&str> = name.split(':').collect();
    parts.len() == 4 && parts.iter().all(|p| p.parse::<u64>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        for (text, expected) in [
            ("20", Some(20.0)),
            ("120\n", Some(120.0)),
            ("off", Some(f64::INFINITY)),
            ("-1", Some(f64::INFINITY)),
            ("", None),
            ("2x", None),
            ("-5", None),
        ] {
            assert_eq!(parse_timeout(text), expected, "{text:?}");
        }
    }

    #[test]
    fn known_states() {
        for (text, expected) in [
            ("LOGGED_IN", Some("LOGGED_IN")),
            ("FAILED\n", Some("FAILED")),
            ("FREE", Some("FREE")),
            ("LOGGED_", None),
            ("", None),
        ] {
            assert_eq!(
                parse_known(text, &SESSION_STATES).as_deref(),
                expected,
                "{text:?}"
            );
        }
        assert_eq!(
            parse_known("SCANNED", &TARGET_STATES).as_deref(),
            Some("SCANNED")
        );
        assert_eq!(
            parse_known("failed", &CONNECTION_STATES).as_deref(),
            Some("failed")
        );
    }

    #[test]
    fn portal_prefers_persistent_and_brackets_ipv6() {
        let mut conn = Connection {
            persistent_address: Some("10.99.0.1".into()),
            persistent_port: Some("3260".into()),
            ..Connection::default()
        };
        assert_eq!(conn.portal().as_deref(), Some("10.99.0.1:3260"));
        conn.persistent_address = None;
        conn.address = Some("fd00::1".into());
        conn.port = Some("3260".into());
        assert_eq!(conn.portal().as_deref(), Some("[fd00::1]:3260"));
        assert_eq!(Connection::default().portal(), None);
    }

    #[test]
    fn hctl_names() {
        assert!(is_hctl("0:0:0:1"));
        assert!(!is_hctl("target0:0:0"));
        assert!(!is_hctl("0:0:0"));
    }
}
