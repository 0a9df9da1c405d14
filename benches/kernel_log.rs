//! Kernel log classification throughput, in records per second: a flood is
//! mostly messages of other subsystems, with a few OCFS2 ones. Run with
//! `cargo bench --bench kernel_log`; criterion prints `thrpt` in elem/s.
//! The daemon's memory under a real `/dev/kmsg` flood is measured by the
//! ignored test `tests/kernel_log_flood.rs` (see docs/kernel-log.md).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ocfs2_watchdog::kernel_log::classify::classify;
use ocfs2_watchdog::kernel_log::record::parse_kmsg;
use ocfs2_watchdog::kernel_log::source::Ingest;
use ocfs2_watchdog::kernel_log::state::KernelLogState;

/// 1000 kmsg records: 9 in 10 unrelated (audit, network, SCSI), the rest the
/// OCFS2 lines of the lab capture n1-03a.
fn flood() -> Vec<String> {
    let other = [
        "audit: type=1400 audit(1700000000.000:42): apparmor=\"DENIED\" operation=\"open\" profile=\"snap\" name=\"/proc/1/environ\" pid=1234 comm=\"snapd\"",
        "e1000e 0000:00:19.0 eth0: NIC Link is Up 1000 Mbps Full Duplex, Flow Control: Rx/Tx",
        "sd 2:0:0:0: [sdb] tag#12 FAILED Result: hostbyte=DID_OK driverbyte=DRIVER_OK cmd_age=0s",
        "(sh,970,0):ocfs2_mknod:273 ERROR: status = -22",
        "nf_conntrack: nf_conntrack: table full, dropping packet",
    ];
    let ocfs2 = [
        "o2net: Connection to node n2 (num 2) at 10.99.0.2:7777 has been idle for 10.202 secs.",
        "o2net: No longer connected to node n2 (num 2) at 10.99.0.2:7777",
        "o2cb: o2dlm has evicted node 2 from domain DEA93192F0874F53BB5290B5205C6B64",
        "ocfs2: Begin replay journal (node 2, slot 1) on device (254,0)",
    ];
    (0..1000)
        .map(|i| {
            let text = if i % 10 == 0 {
                ocfs2[(i / 10) % ocfs2.len()]
            } else {
                other[i % other.len()]
            };
            format!("6,{i},{},-;{text}", 1_000_000 + i * 10)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let records = flood();
    let mut group = c.benchmark_group("kernel_log");
    group.throughput(Throughput::Elements(records.len() as u64));
    group.bench_function("classify", |b| {
        b.iter(|| records.iter().filter(|r| classify(r).is_some()).count())
    });
    let state = KernelLogState::new(64);
    let mut ingest = Ingest::new(Some(0.0));
    group.bench_function("parse_classify_count", |b| {
        b.iter(|| {
            records
                .iter()
                .filter_map(|line| parse_kmsg(line))
                .filter(|record| ingest.apply(&state, record).is_some())
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
