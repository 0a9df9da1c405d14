//! The man page and shell completions, generated from the CLI definition
//! (`cli::Args`) so they list exactly the flags `--help` shows.
//!
//! `main` runs `write` for the hidden argument `__generate-assets DIR`
//! (not a user-facing subcommand, like the namespace helper); the package
//! build (`deploy/build-release`, for the .deb and the RPM) calls it and the
//! packages install the files: `ocfs2-watchdog.8` under /usr/share/man/man8
//! and the completions for bash, zsh and fish.

use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Args;

/// The hidden argument that makes `main` write the assets and exit.
pub const GENERATE_ASSETS: &str = "__generate-assets";

/// Writes `ocfs2-watchdog.8` and the completion scripts into `dir`.
pub fn write(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let command = Args::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .section("8")
        .manual("System Administration")
        .render(&mut page)?;
    std::fs::write(dir.join("ocfs2-watchdog.8"), page)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut command = command.clone();
        clap_complete::generate_to(shell, &mut command, "ocfs2-watchdog", dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_page_and_completions_list_every_flag() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path()).unwrap();
        let page = std::fs::read_to_string(dir.path().join("ocfs2-watchdog.8")).unwrap();
        let bash = std::fs::read_to_string(dir.path().join("ocfs2-watchdog.bash")).unwrap();
        let zsh = std::fs::read_to_string(dir.path().join("_ocfs2-watchdog")).unwrap();
        let fish = std::fs::read_to_string(dir.path().join("ocfs2-watchdog.fish")).unwrap();
        assert!(
            page.starts_with(".ie") || page.contains(".TH ocfs2-watchdog 8"),
            "{page}"
        );
        for arg in Args::command().get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            // roff escapes '-' as '\-'.
            assert!(
                page.contains(&format!("\\-\\-{}", long.replace('-', "\\-"))),
                "{long} missing from the man page"
            );
            assert!(
                bash.contains(&format!("--{long}")),
                "{long} missing from bash"
            );
            assert!(
                zsh.contains(&format!("--{long}")),
                "{long} missing from zsh"
            );
            assert!(
                fish.contains(&format!("-l {long}")) || fish.contains(&format!("-l '{long}'")),
                "{long} missing from fish"
            );
        }
        assert!(page.contains("status"), "subcommands in the man page");
    }
}
