//! Stacks COUNT bind mounts of PATH on PATH (`mount --bind` COUNT times
//! without a process per layer, which TCG makes slow): the lab's 4096-layer
//! stack for the unstack heal time. Built with plain `rustc` (std only).
//! Usage: stack_binds PATH COUNT

use std::ffi::{c_char, c_int, c_ulong, c_void, CString};

extern "C" {
    fn mount(
        source: *const c_char,
        target: *const c_char,
        fstype: *const c_char,
        flags: c_ulong,
        data: *const c_void,
    ) -> c_int;
}

const MS_BIND: c_ulong = 4096;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(count)) = (args.get(1), args.get(2).and_then(|c| c.parse::<u32>().ok()))
    else {
        eprintln!("usage: stack_binds PATH COUNT");
        std::process::exit(2);
    };
    let Ok(path) = CString::new(path.as_str()) else {
        eprintln!("PATH holds a NUL byte");
        std::process::exit(2);
    };
    for layer in 0..count {
        // SAFETY: both pointers are valid NUL-terminated strings for the
        // call; fstype and data are ignored for a bind mount.
        let rc = unsafe {
            mount(path.as_ptr(), path.as_ptr(), std::ptr::null(), MS_BIND, std::ptr::null())
        };
        if rc != 0 {
            eprintln!("bind {layer}: {}", std::io::Error::last_os_error());
            std::process::exit(1);
        }
    }
    println!("stacked {count}");
}
