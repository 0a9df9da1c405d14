//! listmount(2)/statmount(2) (Linux 6.8+) against reading the mountinfo
//! text, on the mount namespace this runs in; benches/steady_state.sh runs it
//! inside each of its hosts. Prints one line of medians (ms) so the design
//! choice in docs/design.md rests on numbers from this kernel.

use std::time::Instant;

use ocfs2_watchdog::collector::mounts::mountinfo::parse_mountinfo_partial;

const SYS_STATMOUNT: libc::c_long = 457;
const SYS_LISTMOUNT: libc::c_long = 458;
const LSMT_ROOT: u64 = u64::MAX;
const STATMOUNT_SB_BASIC: u64 = 0x1;
const STATMOUNT_MNT_BASIC: u64 = 0x2;
const STATMOUNT_MNT_ROOT: u64 = 0x8;
const STATMOUNT_MNT_POINT: u64 = 0x10;
const STATMOUNT_FS_TYPE: u64 = 0x20;

#[repr(C)]
struct MntIdReq {
    size: u32,
    spare: u32,
    mnt_id: u64,
    param: u64,
}

/// One listmount or statmount call: `mnt_id` and `param` as each defines
/// them, into `buf` of `len` elements (ids or bytes).
fn mount_syscall<T>(
    number: libc::c_long,
    mnt_id: u64,
    param: u64,
    buf: &mut [T],
) -> std::io::Result<usize> {
    let req = MntIdReq {
        size: 24,
        spare: 0,
        mnt_id,
        param,
    };
    // SAFETY: req and buf outlive the call; the kernel writes at most
    // buf.len() elements of the size the call defines (u64 ids or bytes).
    let n = unsafe {
        libc::syscall(
            number,
            &req as *const MntIdReq,
            buf.as_mut_ptr(),
            buf.len(),
            0u32,
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n as usize)
}

fn listmount() -> std::io::Result<Vec<u64>> {
    let mut all = Vec::new();
    let mut last = 0u64;
    let mut buf = vec![0u64; 4096];
    loop {
        let n = mount_syscall(SYS_LISTMOUNT, LSMT_ROOT, last, &mut buf)?;
        all.extend_from_slice(&buf[..n]);
        if n < buf.len() {
            return Ok(all);
        }
        last = buf[n - 1];
    }
}

fn statmount_all(ids: &[u64], mask: u64) -> std::io::Result<usize> {
    let mut buf = vec![0u8; 8192];
    for &id in ids {
        mount_syscall(SYS_STATMOUNT, id, mask, &mut buf)?;
    }
    Ok(ids.len())
}

fn median_ms(mut run: impl FnMut()) -> f64 {
    let mut samples: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            run();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[2]
}

/// CPU time of this thread (user + system), in ms: what a read costs,
/// whatever else the machine is doing.
fn thread_cpu_ms() -> f64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).map_or(0.0, |t| {
        t.tv_sec() as f64 * 1000.0 + t.tv_nsec() as f64 / 1e6
    })
}

fn median_cpu_ms(mut run: impl FnMut()) -> f64 {
    let mut samples: Vec<f64> = (0..7)
        .map(|_| {
            let t = thread_cpu_ms();
            run();
            thread_cpu_ms() - t
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[3]
}

fn main() {
    // The kernel producing the text (read only) against what the daemon does
    // after a change (read + partial parse), both in CPU time.
    let kernel_cpu = median_cpu_ms(|| {
        let _ = std::fs::read("/proc/self/mountinfo");
    });
    let daemon_cpu = median_cpu_ms(|| {
        let bytes = std::fs::read("/proc/self/mountinfo").unwrap_or_default();
        let text = String::from_utf8(bytes).unwrap_or_default();
        let _ = parse_mountinfo_partial(&text, |t| t == "ocfs2", &Default::default());
    });
    print!(
        "cpu: kernel read {kernel_cpu:.1}, read + parse {daemon_cpu:.1} (ratio {:.2}); ",
        daemon_cpu / kernel_cpu.max(0.001)
    );
    let mut lines = 0;
    let text_ms = median_ms(|| {
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        lines = parse_mountinfo_partial(&text, |t| t == "ocfs2", &Default::default()).total_entries;
    });
    let read_ms = median_ms(|| {
        let _ = std::fs::read_to_string("/proc/self/mountinfo");
    });
    let read64k_ms = median_ms(|| {
        use std::io::Read;
        let mut file = std::fs::File::open("/proc/self/mountinfo").unwrap();
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 1 << 16];
        while let Ok(n) = file.read(&mut chunk) {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    });
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let parse_ms = median_ms(|| {
        let _ = parse_mountinfo_partial(&text, |t| t == "ocfs2", &Default::default());
    });
    print!(
        "wall: read_to_string {read_ms:.1}, 64 KiB reads {read64k_ms:.1}, parse {parse_ms:.1}; "
    );
    let ids = match listmount() {
        Ok(ids) => ids,
        Err(e) => {
            println!(
                "listmount unavailable ({e}); text read+parse {text_ms:.1} ms for {lines} lines"
            );
            return;
        }
    };
    let list_ms = median_ms(|| {
        let _ = listmount();
    });
    let basic_ms = median_ms(|| {
        let _ = statmount_all(&ids, STATMOUNT_SB_BASIC | STATMOUNT_MNT_BASIC);
    });
    let full_ms = median_ms(|| {
        let _ = statmount_all(
            &ids,
            STATMOUNT_SB_BASIC
                | STATMOUNT_MNT_BASIC
                | STATMOUNT_MNT_ROOT
                | STATMOUNT_MNT_POINT
                | STATMOUNT_FS_TYPE,
        );
    });
    println!(
        "text read+parse {text_ms:.1} ({lines} lines); listmount {list_ms:.1} ({} ids), \
         + statmount basic {basic_ms:.1}, + statmount with root, point, type {full_ms:.1}",
        ids.len()
    );
}
