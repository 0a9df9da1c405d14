//! Mount-table cost at the sizes seen in incidents: one path stacked 4096
//! times, and a host with 20 000 distinct mounts. Measures the parser alone,
//! and a whole collector run plus `/metrics` rendering on a fixture root.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use ocfs2_watchdog::collector::mounts::mountinfo::parse_mountinfo;
use ocfs2_watchdog::collector::Context;
use ocfs2_watchdog::config::Config;
use ocfs2_watchdog::host::HostPaths;
use ocfs2_watchdog::sampler::Sampler;

const OPTIONS: &str = "rw,_netdev,heartbeat=local,nointr,data=ordered,errors=remount-ro,atime_quantum=60,cluster_stack=o2cb,coherency=full,user_xattr,acl";

fn stacked_table(layers: u32) -> String {
    let mut text = String::from("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n");
    for i in 0..layers {
        let parent = if i == 0 { 1 } else { 99 + i };
        text += &format!(
            "{} {parent} 254:0 / /srv/data rw,relatime shared:5 - ocfs2 /dev/vda {OPTIONS}\n",
            100 + i
        );
    }
    text
}

fn distinct_table(mounts: u32) -> String {
    let mut text = String::from("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n");
    for i in 0..mounts {
        text += &format!(
            "{} 1 254:{} / /var/lib/kubelet/pods/{i:05}/volumes/data rw,relatime - ocfs2 /dev/vd{} {OPTIONS}\n",
            100 + i,
            i % 16,
            (b'a' + (i % 16) as u8) as char
        );
    }
    text
}

fn sampler_on(table: &str) -> (tempfile::TempDir, Sampler, std::time::Duration) {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("proc/1")).unwrap();
    std::fs::write(root.path().join("proc/1/mountinfo"), table).unwrap();
    let config = Arc::new(Config::default());
    let budget = config.sampler.collector_timeout;
    let ctx = Context::new(
        HostPaths::new(root.path().to_path_buf(), None, None),
        config,
    );
    (root, Sampler::new(Arc::new(ctx)), budget)
}

fn bench(c: &mut Criterion) {
    for (name, table) in [
        ("stacked_4096", stacked_table(4096)),
        ("distinct_20000", distinct_table(20_000)),
    ] {
        c.bench_function(&format!("parse_mountinfo/{name}"), |b| {
            b.iter(|| black_box(parse_mountinfo(black_box(&table))))
        });
        let (_root, mut sampler, budget) = sampler_on(&table);
        c.bench_function(&format!("collect_and_render/{name}"), |b| {
            b.iter(|| {
                let snapshot = sampler.tick(budget);
                black_box(snapshot.rendered().len())
            })
        });
        let snapshot = sampler.tick(budget);
        c.bench_function(&format!("render_only/{name}"), |b| {
            b.iter(|| {
                let mut copy = snapshot.clone();
                copy.rendered.take();
                black_box(copy.rendered().len())
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
