//! Build-time facts for `ocfs2_watchdog_build_info`: the git revision and the
//! rustc version, as Go exporters get them from `-ldflags`.
//!
//! Both fall back to "unknown" when git or the checkout's `.git` is missing
//! (a release tarball, a vendored build): the build never fails for them.
//! `OCFS2_WATCHDOG_REVISION` overrides the revision for packagers building
//! outside a checkout.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=OCFS2_WATCHDOG_REVISION");
    println!("cargo:rerun-if-changed=build.rs");
    // A worktree's `.git` is a file; ask git where HEAD and its branch live.
    for path in git_paths() {
        println!("cargo:rerun-if-changed={path}");
    }
    let revision = std::env::var("OCFS2_WATCHDOG_REVISION")
        .ok()
        .filter(|value| !value.trim().is_empty())
        .or_else(|| output("git", &["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let rustc_version = output(&rustc, &["--version"])
        .and_then(|line| line.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=OCFS2_WATCHDOG_REVISION={revision}");
    println!("cargo:rustc-env=OCFS2_WATCHDOG_RUSTC_VERSION={rustc_version}");
}

/// HEAD and the ref it names, so a commit or checkout rebuilds build_info.
fn git_paths() -> Vec<String> {
    let mut paths: Vec<String> = output("git", &["rev-parse", "--git-path", "HEAD"])
        .into_iter()
        .collect();
    if let Some(branch) = output("git", &["symbolic-ref", "-q", "HEAD"]) {
        paths.extend(output("git", &["rev-parse", "--git-path", &branch]));
    }
    paths
        .into_iter()
        .filter(|path| std::path::Path::new(path).exists())
        .collect()
}

/// The trimmed stdout of a command that succeeded, or None.
fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}
