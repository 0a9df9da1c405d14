//! The `heartbeat` collector: this node's disk-heartbeat timing and which
//! nodes each region sees live.
//!
//! Reads debugfs `/sys/kernel/debug/o2hb/` (fs/ocfs2/cluster/heartbeat.c,
//! docs/interfaces.md §2): the global `livenodes` and, in global mode,
//! `live_regions`/`quorum_regions`/`failed_regions`; per region
//! `elapsed_time_in_ms` (ms since the last successful, verified heartbeat
//! write; 0 until heartbeat is steady), `livenodes`, `num` and `pinned`. All
//! are generated at open, so they are re-opened every sample. Regions, nodes
//! and the self-fence timeout come from configfs (`configfs::read_cluster`).
//! Every debugfs file is required: missing, unreadable, empty or garbage fails
//! the collector with a reason. No cluster registered means absent.
//!
//! Heartbeat lag is spiky (a SAN stall of seconds between two scrapes), so
//! besides the current ratio the collector keeps the largest ratio of the last
//! `heartbeat.ratio_max_window` and counts slow samples in a counter.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::configfs::{self, ClusterConfig, HeartbeatMode};
use super::heartbeat_disk::{self, observe_region, TrackerState};
use super::nodemap::{parse_node_map_file, NodeSet};
use super::parse_error::ParseError;
use super::{CollectError, Collector, Context};
use crate::collector::{Facts, Section};
use crate::metrics::{bool_value, family_table, Families, Family};

pub struct Heartbeat;

#[derive(Debug, Clone, Default, Serialize)]
pub struct RegionHeartbeat {
    pub uuid: String,
    pub device: String,
    pub num: u32,
    pub pinned: bool,
    pub elapsed_ms: u64,
    /// Elapsed ÷ self-fence timeout; `None` when the timeout is unknown.
    pub ratio: Option<f64>,
    pub ratio_max: Option<f64>,
    pub live: NodeSet,
    pub samples: u64,
    pub slow_samples: u64,
    /// Ratios of the current window, oldest first.
    #[serde(skip)]
    pub recent: VecDeque<(Instant, f64)>,
    /// Every slot as the shared disk shows it (`heartbeat.read_disk`).
    pub disk: Option<TrackerState>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct HeartbeatFacts {
    pub cluster: String,
    pub mode: Option<HeartbeatMode>,
    pub timeout_seconds: Option<u32>,
    /// Configured node numbers.
    pub configured: NodeSet,
    /// Live in any region (global `livenodes`), including this node.
    pub live_any: NodeSet,
    pub regions: Vec<RegionHeartbeat>,
    /// Global mode only: region numbers by state.
    pub live_regions: NodeSet,
    pub quorum_regions: NodeSet,
    pub failed_regions: NodeSet,
}

impl HeartbeatFacts {
    pub fn region(&self, uuid: &str) -> Option<&RegionHeartbeat> {
        self.regions.iter().find(|r| r.uuid == uuid)
    }
}

impl Collector for Heartbeat {
    fn name(&self) -> &'static str {
        "heartbeat"
    }

    fn collect(&self, ctx: &Context, previous: Option<&Section>) -> Result<Section, CollectError> {
        let Some(cluster) = configfs::read_cluster(&ctx.paths)? else {
            return Ok(Section {
                absent: Some("no o2cb cluster registered in configfs".into()),
                ..Section::default()
            });
        };
        let previous = previous.and_then(|p| match &p.facts {
            Facts::Heartbeat(facts) => Some(facts.as_ref()),
            _ => None,
        });
        let facts = read_heartbeat(ctx, &cluster, previous, Instant::now())?;
        Ok(Section {
            families: families(&facts),
            facts: Facts::Heartbeat(Arc::new(facts)),
            absent: None,
        })
    }
}

fn read_heartbeat(
    ctx: &Context,
    cluster: &ClusterConfig,
    previous: Option<&HeartbeatFacts>,
    now: Instant,
) -> Result<HeartbeatFacts, CollectError> {
    let base = ctx.paths.sys("kernel/debug/o2hb");
    let config = &ctx.config.heartbeat;
    let mut facts = HeartbeatFacts {
        cluster: cluster.name.clone(),
        mode: cluster.heartbeat_mode,
        timeout_seconds: cluster.heartbeat_timeout_seconds(),
        configured: cluster.numbered_nodes().iter().map(|(n, _)| *n).collect(),
        live_any: read_map(&base.join("livenodes"))?,
        ..HeartbeatFacts::default()
    };
    if cluster.heartbeat_mode == Some(HeartbeatMode::Global) {
        facts.live_regions = read_map(&base.join("live_regions"))?;
        facts.quorum_regions = read_map(&base.join("quorum_regions"))?;
        facts.failed_regions = read_map(&base.join("failed_regions"))?;
    }
    for region in &cluster.regions {
        let dir = base.join(&region.uuid);
        let elapsed_ms = read_parsed(&dir.join("elapsed_time_in_ms"), parse_elapsed_ms)?;
        let mut current = RegionHeartbeat {
            uuid: region.uuid.clone(),
            device: region.device_path().unwrap_or_default(),
            num: read_parsed(&dir.join("num"), parse_number)?,
            pinned: read_parsed(&dir.join("pinned"), parse_number)? != 0,
            live: read_map(&dir.join("livenodes"))?,
            elapsed_ms,
            ..RegionHeartbeat::default()
        };
        let before = previous.and_then(|p| p.region(&region.uuid));
        account(
            &mut current,
            before,
            facts.timeout_seconds,
            config.warn_ratio,
            config.ratio_max_window,
            now,
        );
        if config.read_disk {
            let configured: Vec<u8> = facts.configured.iter().copied().collect();
            let wait = ctx.config.sampler.interval / 2;
            current.disk = observe_region(
                ctx,
                region,
                &configured,
                before.and_then(|b| b.disk.as_ref()),
                wait,
            );
        }
        facts.regions.push(current);
    }
    Ok(facts)
}

/// Updates ratio, window maximum and counters from the previous sample.
fn account(
    region: &mut RegionHeartbeat,
    before: Option<&RegionHeartbeat>,
    timeout_seconds: Option<u32>,
    warn_ratio: f64,
    window: Duration,
    now: Instant,
) {
    if let Some(before) = before {
        region.samples = before.samples;
        region.slow_samples = before.slow_samples;
        region.recent = before.recent.clone();
    }
    region.samples += 1;
    region.ratio = timeout_seconds
        .filter(|t| *t > 0)
        .map(|t| region.elapsed_ms as f64 / (f64::from(t) * 1000.0));
    if let Some(ratio) = region.ratio {
        if ratio >= warn_ratio {
            region.slow_samples += 1;
        }
        region.recent.push_back((now, ratio));
    }
    while region
        .recent
        .front()
        .is_some_and(|(at, _)| now.duration_since(*at) > window)
    {
        region.recent.pop_front();
    }
    region.ratio_max = region.recent.iter().map(|(_, r)| *r).reduce(f64::max);
}

fn read_map(path: &Path) -> Result<NodeSet, CollectError> {
    read_parsed(path, parse_node_map_file)
}

fn read_parsed<T>(
    path: &Path,
    parse: fn(&str) -> Result<T, ParseError>,
) -> Result<T, CollectError> {
    super::net::read_parsed(path, parse)
}

/// `elapsed_time_in_ms`: `"%lu\n"`.
pub fn parse_elapsed_ms(text: &str) -> Result<u64, ParseError> {
    let value = text.strip_suffix('\n').unwrap_or(text);
    if value.is_empty() {
        return Err(ParseError::EmptyFile);
    }
    value
        .parse()
        .map_err(|_| ParseError::NotANumber(value.to_string()))
}

/// `num` and `pinned`: `"%d\n"`, never negative here.
pub fn parse_number(text: &str) -> Result<u32, ParseError> {
    parse_elapsed_ms(text).and_then(|v| u32::try_from(v).map_err(|_| ParseError::OutOfRange(v)))
}

family_table! {
    /// The heartbeat collector's families (the on-disk view: `DiskFamily`).
    enum HeartbeatFamily {
        Elapsed = gauge(
            "ocfs2_heartbeat_elapsed_seconds",
            "Time since this node's last successful heartbeat write (o2hb elapsed_time_in_ms); 0 until heartbeat is steady.",
        ),
        Ratio = gauge(
            "ocfs2_heartbeat_timeout_ratio",
            "Elapsed / self-fence timeout; at 1.0 the node fences itself.",
        ),
        RatioMax = gauge(
            "ocfs2_heartbeat_timeout_ratio_max",
            "Largest timeout ratio sampled within heartbeat.ratio_max_window, so spikes between scrapes show.",
        ),
        SlowSamples = counter(
            "ocfs2_heartbeat_slow_samples",
            "Samples whose timeout ratio was at or over heartbeat.warn_ratio.",
        ),
        Samples = counter(
            "ocfs2_heartbeat_samples",
            "Heartbeat samples taken of the region.",
        ),
        Pinned = gauge(
            "ocfs2_heartbeat_region_pinned",
            "1 when the region is pinned (o2hb debugfs pinned).",
        ),
        NodeLive = gauge(
            "ocfs2_heartbeat_node_live",
            "One per configured node: 1 when live in this region's heartbeat.",
        ),
        UnknownLiveNodes = gauge(
            "ocfs2_heartbeat_unknown_live_nodes",
            "Nodes live in this region's heartbeat that configfs does not know.",
        ),
        GlobalRegionState = gauge(
            "ocfs2_heartbeat_global_region_state",
            "Global heartbeat mode only: 1 when the region is live / a quorum region / failed (write timeout fired).",
        ),
        LiveNodes = gauge(
            "ocfs2_heartbeat_live_nodes",
            "Nodes live in any heartbeat region (o2hb livenodes), this node included.",
        ),
    }
}

fn families(facts: &HeartbeatFacts) -> Vec<Family> {
    use HeartbeatFamily as F;
    let mut f = Families::<HeartbeatFamily>::new();
    let mut disk = Families::<heartbeat_disk::DiskFamily>::new();
    for region in &facts.regions {
        let r = region.uuid.as_str();
        let with_device = [("hb_region", r), ("device", region.device.as_str())];
        f[F::Elapsed].push(&with_device, region.elapsed_ms as f64 / 1000.0);
        if let Some(value) = region.ratio {
            f[F::Ratio].push(&with_device, value);
        }
        if let Some(value) = region.ratio_max {
            f[F::RatioMax].push(&with_device, value);
        }
        f[F::SlowSamples].push(&[("hb_region", r)], region.slow_samples as f64);
        f[F::Samples].push(&[("hb_region", r)], region.samples as f64);
        f[F::Pinned].push(&[("hb_region", r)], bool_value(region.pinned));
        for node in &facts.configured {
            let num = node.to_string();
            f[F::NodeLive].push(
                &[("hb_region", r), ("node_num", num.as_str())],
                bool_value(region.live.contains(node)),
            );
        }
        f[F::UnknownLiveNodes].push(
            &[("hb_region", r)],
            region.live.difference(&facts.configured).count() as f64,
        );
        if facts.mode == Some(HeartbeatMode::Global) {
            let num = u8::try_from(region.num).unwrap_or(u8::MAX);
            for (state, set) in [
                ("live", &facts.live_regions),
                ("quorum", &facts.quorum_regions),
                ("failed", &facts.failed_regions),
            ] {
                f[F::GlobalRegionState].push(
                    &[("hb_region", r), ("state", state)],
                    bool_value(set.contains(&num)),
                );
            }
        }
        if let Some(state) = &region.disk {
            heartbeat_disk::push_families(state, r, &mut disk);
        }
    }
    f[F::LiveNodes].push(&[], facts.live_any.len() as f64);
    let mut all = f.into_vec();
    all.extend(disk.into_vec());
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_and_numbers_from_the_captures() {
        // captures/n1-02-2node-mounted-debugfs-o2hb.txt and the pause timeline.
        assert_eq!(parse_elapsed_ms("1700\n"), Ok(1700));
        assert_eq!(parse_elapsed_ms("928\n"), Ok(928));
        assert_eq!(parse_elapsed_ms("0\n"), Ok(0));
        assert_eq!(parse_number("1\n"), Ok(1));
        assert!(parse_elapsed_ms("").is_err());
        assert!(parse_elapsed_ms("\n").is_err());
        assert!(parse_elapsed_ms("17").is_ok());
        assert!(parse_elapsed_ms("-5\n").is_err());
        assert!(parse_elapsed_ms("garbage\n").is_err());
        assert!(parse_number("99999999999\n").is_err());
    }

    fn sample(elapsed_ms: u64) -> RegionHeartbeat {
        RegionHeartbeat {
            uuid: "DEA93192F0874F53BB5290B5205C6B64".into(),
            elapsed_ms,
            ..RegionHeartbeat::default()
        }
    }

    #[test]
    fn slow_samples_count_and_the_window_keeps_the_spike() {
        let window = Duration::from_secs(10);
        let start = Instant::now();
        let mut previous: Option<RegionHeartbeat> = None;
        // Timeout 12 s (dead_threshold 7, as in the lab): 6 s is the 0.5 mark.
        for (second, elapsed_ms, slow, max) in [
            (0, 1700, 0, 1700),
            (2, 10_000, 1, 10_000),
            (4, 6000, 2, 10_000),
            (6, 500, 2, 10_000),
            (13, 400, 2, 6000),
            (20, 300, 2, 400),
        ] {
            let mut current = sample(elapsed_ms);
            let now = start + Duration::from_secs(second);
            account(&mut current, previous.as_ref(), Some(12), 0.5, window, now);
            assert_eq!(current.slow_samples, slow, "at {second}s");
            assert_eq!(current.ratio, Some(elapsed_ms as f64 / 12_000.0));
            assert_eq!(
                current.ratio_max,
                Some(max as f64 / 12_000.0),
                "at {second}s"
            );
            previous = Some(current);
        }
        assert_eq!(previous.map(|p| p.samples), Some(6));
    }

    #[test]
    fn unknown_timeout_gives_no_ratio() {
        let mut current = sample(1700);
        account(
            &mut current,
            None,
            None,
            0.5,
            Duration::from_secs(60),
            Instant::now(),
        );
        assert_eq!(current.ratio, None);
        assert_eq!(current.ratio_max, None);
        let mut current = sample(1700);
        account(
            &mut current,
            None,
            Some(0),
            0.5,
            Duration::from_secs(60),
            Instant::now(),
        );
        assert_eq!(current.ratio, None);
    }
}
