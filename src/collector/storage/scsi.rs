//! SCSI disks: device state and I/O counters from `/sys/class/block/sdX/device/`.
//!
//! Formats (drivers/scsi/scsi_sysfs.c, docs/interfaces.md §6.5): `state` is one
//! of `sdev_states` names; `iorequest_cnt`, `iodone_cnt`, `ioerr_cnt` print an
//! `atomic_t` as `"0x%llx\n"`, so they are 32-bit, wrap, and a negative value
//! prints sign-extended to 64 bits. Exported counters add the wrapped delta
//! to the previous tick's total (raw values carried in the facts).

use std::collections::BTreeMap;

use serde::Serialize;

use super::iscsi::parse_timeout;
use super::sysfs::{attr, real_dir};
use crate::host::HostPaths;

/// `sdev_states` names.
pub const DEVICE_STATES: [&str; 9] = [
    "running",
    "created",
    "cancel",
    "deleted",
    "quiesce",
    "offline",
    "transport-offline",
    "blocked",
    "created-blocked",
];

/// The three I/O counters, in their sysfs names.
pub const COUNTERS: [&str; 3] = ["iorequest_cnt", "iodone_cnt", "ioerr_cnt"];

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Disk {
    /// Kernel name, `sdb`.
    pub name: String,
    /// `H:C:T:L` of the SCSI device.
    pub hctl: Option<String>,
    pub state: Option<String>,
    pub timeout_seconds: Option<f64>,
    /// Raw 32-bit values read this tick, by counter name.
    pub raw: BTreeMap<String, u32>,
    /// Monotonic totals (wraps added), by counter name.
    pub totals: BTreeMap<String, f64>,
}

impl Disk {
    pub fn is_running(&self) -> Option<bool> {
        self.state.as_deref().map(|s| s == "running")
    }
}

/// `"0x1a2\n"` → 0x1a2, keeping the low 32 bits of a sign-extended value.
pub fn parse_hex_counter(text: &str) -> Option<u32> {
    let digits = text.trim().strip_prefix("0x")?;
    u64::from_str_radix(digits, 16)
        .ok()
        .map(|v| (v & 0xffff_ffff) as u32)
}

/// The new monotonic total from the previous tick's raw value and total.
/// A drop of more than half the range is a reset (device re-created), not a
/// wrap: 2^31 commands in one tick are impossible, so the counter restarted
/// from zero and its whole value is new.
pub fn advance_counter(previous: Option<(u32, f64)>, raw: u32) -> f64 {
    match previous {
        None => f64::from(raw),
        Some((before, total)) => {
            let delta = raw.wrapping_sub(before);
            if delta > u32::MAX / 2 {
                total + f64::from(raw)
            } else {
                total + f64::from(delta)
            }
        }
    }
}

/// Reads one disk's state and counters; `previous` is the same disk's entry
/// from the last tick.
pub fn read_disk(paths: &HostPaths, name: &str, previous: Option<&Disk>) -> Disk {
    let device = paths.sys("class/block").join(name).join("device");
    let hctl = real_dir(&device)
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| super::iscsi::is_hctl(n));
    let mut disk = Disk {
        name: name.to_string(),
        hctl,
        state: attr(&device, "state").filter(|s| DEVICE_STATES.contains(&s.as_str())),
        timeout_seconds: attr(&device, "timeout").and_then(|t| parse_timeout(&t)),
        ..Disk::default()
    };
    for counter in COUNTERS {
        let Some(raw) = attr(&device, counter).and_then(|t| parse_hex_counter(&t)) else {
            continue;
        };
        let before = previous.and_then(|p| Some((*p.raw.get(counter)?, *p.totals.get(counter)?)));
        disk.raw.insert(counter.to_string(), raw);
        disk.totals
            .insert(counter.to_string(), advance_counter(before, raw));
    }
    disk
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_counters() {
        for (text, expected) in [
            ("0x1a2\n", Some(0x1a2)),
            ("0x0", Some(0)),
            ("0xffffffff", Some(u32::MAX)),
            ("0xffffffff80000000\n", Some(0x8000_0000)),
            ("418", None),
            ("0x", None),
            ("0xzz", None),
            ("", None),
        ] {
            assert_eq!(parse_hex_counter(text), expected, "{text:?}");
        }
    }

    #[test]
    fn counters_survive_wraps_and_resets() {
        assert_eq!(advance_counter(None, 100), 100.0);
        assert_eq!(advance_counter(Some((100, 100.0)), 150), 150.0);
        // 0xffff_fff0 → 0x10 is a wrap of 0x20 commands.
        let total = 1e10;
        assert_eq!(
            advance_counter(Some((0xffff_fff0, total)), 0x10),
            total + 32.0
        );
        // A large drop is a re-created device counting from zero.
        assert_eq!(advance_counter(Some((0x8000_0000, 5e9)), 7), 5e9 + 7.0);
        assert_eq!(advance_counter(Some((42, 42.0)), 42), 42.0);
    }
}
