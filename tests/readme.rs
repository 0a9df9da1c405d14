//! The README cannot drift from the binary: its flags table lists exactly
//! the flags `--help` shows, its configuration block is what
//! `--check-config` prints for the default, every document under docs/ is
//! linked, and every link stays inside the repository and exists.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

fn watchdog(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
        .args(args)
        .env_remove("WATCHDOG_USEC")
        .output()
        .unwrap();
    assert!(output.status.success(), "{args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// The `--flag` and `-f` words of `text`.
fn flags_in(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_'))
        .filter(|word| word.starts_with('-') && word.len() > 1 && !word.starts_with("---"))
        .map(|word| word.trim_end_matches('.').to_string())
        .collect()
}

fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let start = text.find(heading).unwrap_or_else(|| panic!("no {heading}"));
    let rest = &text[start + heading.len()..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

#[test]
fn the_flags_table_matches_help() {
    let help = watchdog(&["--help"]);
    let options = &help[help.find("Options:").unwrap()..];
    // Only the flag column (a description may name a flag), and one row
    // each for the per-collector switches, as the README writes them.
    let flag_column: String = options
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .map(|l| l.split("  ").next().unwrap_or_default().to_string() + "\n")
        .collect();
    let collector = |flag: &str| {
        ocfs2_watchdog::config::collector_names().any(|name| {
            flag == format!("--collector.{name}") || flag == format!("--no-collector.{name}")
        })
    };
    let from_help: BTreeSet<String> = flags_in(&flag_column)
        .into_iter()
        .map(|flag| match flag {
            f if collector(&f) && f.starts_with("--no-") => "--no-collector.NAME".to_string(),
            f if collector(&f) => "--collector.NAME".to_string(),
            f => f,
        })
        .collect();
    let readme = readme();
    let table = section(&readme, "## Flags");
    let first_columns: String = table
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| l.split('|').nth(1).unwrap_or_default().to_string() + "\n")
        .collect();
    // Rows of subcommands (`status [--json]`) carry their own flags.
    let flag_rows: String = first_columns
        .lines()
        .filter(|l| l.trim_start().starts_with("`-"))
        .collect::<Vec<_>>()
        .join("\n");
    let from_readme = flags_in(&flag_rows);
    assert_eq!(
        from_readme, from_help,
        "README flags table vs --help:\n{help}"
    );
    // The subcommands too.
    let commands = &help[help.find("Commands:").unwrap()..help.find("Options:").unwrap()];
    for command in commands
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
    {
        if command != "help" {
            assert!(
                first_columns.contains(&format!("`{command}")),
                "{command} missing from the flags table"
            );
        }
    }
}

#[test]
fn the_configuration_block_is_what_check_config_prints() {
    let readme = readme();
    let config = section(&readme, "## Configuration");
    let start = config.find("```toml\n").unwrap() + "```toml\n".len();
    let block = &config[start..start + config[start..].find("```").unwrap()];
    let documented: toml::Value = toml::from_str(block).unwrap();
    let printed: toml::Value = toml::from_str(&watchdog(&["--check-config"])).unwrap();
    assert_eq!(
        documented, printed,
        "README configuration block vs --check-config"
    );
    assert!(
        config.contains("`state_dir` defaults to `/var/lib/ocfs2-watchdog`"),
        "state_dir's default is stated"
    );
}

/// `(target)` of every `[text](target)` link.
fn links(text: &str) -> Vec<String> {
    text.match_indices("](")
        .filter_map(|(at, _)| {
            let rest = &text[at + 2..];
            rest.find(')').map(|end| rest[..end].to_string())
        })
        .collect()
}

#[test]
fn every_doc_is_linked_and_no_link_leaves_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = readme();
    let targets = links(&readme);
    for target in &targets {
        assert!(
            !target.contains("://") && !target.starts_with("mailto:"),
            "link outside the repository: {target}"
        );
        let file = target.split('#').next().unwrap_or_default();
        assert!(root.join(file).exists(), "broken link: {target}");
    }
    for (at, _) in readme.match_indices("://") {
        let before = &readme[..at];
        let scheme_start = before
            .rfind(|c: char| !c.is_ascii_alphanumeric())
            .map_or(0, |i| i + 1);
        let url = &readme[scheme_start..];
        let host = url.split("://").nth(1).unwrap_or_default();
        assert!(
            host.starts_with("localhost") || host.starts_with("127.0.0.1") || host.starts_with('<'),
            "README points outside the repository: {}",
            &url[..url.len().min(60)]
        );
    }
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".md") {
            let wanted = format!("docs/{name}");
            assert!(
                targets
                    .iter()
                    .any(|t| t.split('#').next() == Some(wanted.as_str())),
                "{wanted} is not linked from the README"
            );
        }
    }
}
