//! Keeps the layers of `src/` apart: a module-dependency check over the
//! `crate::` paths every source file names.
//!
//! The collectors produce `collector::Section`s and the snapshot gathers them,
//! so nothing under `src/collector/` may name `crate::snapshot` (or anything
//! above the snapshot). The sections of the configuration that live with their
//! owners (`rules/config.rs`, `status/thresholds.rs`, `cluster/config.rs`) sit
//! below the whole-file `config.rs` that includes them, so they may not name
//! it (only its leaf `config::error`). And no two files may name each other,
//! except the pairs listed in `KNOWN_CIRCLES` (docs/design.md, "Layout", says
//! why they are left): a new circle fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

#[path = "support/sources.rs"]
mod sources;
use sources::{read_sources, strip_comments, strip_test_items};

/// Two files that name each other today; each entry is a debt, not a licence.
const KNOWN_CIRCLES: &[(&str, &str)] = &[
    // The kernel log state records a collector `ErrorKind`; the collector
    // context carries the state the reader thread feeds.
    ("collector/mod.rs", "kernel_log/state.rs"),
    // The snapshot carries the rule engine's last `Report`, which the engine
    // builds from a snapshot.
    ("rules/mod.rs", "snapshot.rs"),
];

/// Layers everything under `src/collector/` stays below.
const ABOVE_COLLECTORS: &[&str] = &[
    "snapshot.rs",
    "sampler.rs",
    "rules",
    "actions",
    "status",
    "http",
    "service.rs",
];

/// Sections of the configuration owned by other modules, below `config.rs`.
const CONFIG_SECTIONS: &[&str] = &[
    "rules/config.rs",
    "status/thresholds.rs",
    "cluster/config.rs",
    "config/error.rs",
];

/// The `crate::` paths named in `text`, each as its segments; grouped imports
/// (`crate::a::{b, c::{d, e}}`) are expanded. Comments and `#[cfg(test)]`
/// items do not count: tests may reach anywhere.
fn crate_paths(text: &str) -> Vec<Vec<String>> {
    let code = strip_test_items(&strip_comments(text));
    let mut paths = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let preceded_by_ident = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        rest = &rest[at + "crate::".len()..];
        if !preceded_by_ident {
            let mut chars = rest.chars().peekable();
            expand(&mut chars, Vec::new(), &mut paths);
        }
    }
    paths
}

/// Reads one path tree (`a::b`, `a::{b, c::d}`) after `prefix`.
fn expand(
    chars: &mut std::iter::Peekable<std::str::Chars>,
    prefix: Vec<String>,
    out: &mut Vec<Vec<String>>,
) {
    let mut path = prefix;
    loop {
        skip_space(chars);
        if chars.peek() == Some(&'{') {
            chars.next();
            loop {
                expand(chars, path.clone(), out);
                skip_space(chars);
                match chars.next() {
                    Some(',') => {
                        skip_space(chars);
                        if chars.peek() == Some(&'}') {
                            chars.next();
                            return;
                        }
                    }
                    _ => return,
                }
            }
        }
        let mut segment = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_alphanumeric() || c == '_' {
                segment.push(c);
                chars.next();
            } else {
                break;
            }
        }
        if segment.is_empty() {
            break;
        }
        path.push(segment);
        let mut lookahead = chars.clone();
        if lookahead.next() == Some(':') && lookahead.next() == Some(':') {
            chars.next();
            chars.next();
        } else {
            break;
        }
    }
    if !path.is_empty() {
        out.push(path);
    }
}

fn skip_space(chars: &mut std::iter::Peekable<std::str::Chars>) {
    while chars.peek().is_some_and(|c| c.is_whitespace()) {
        chars.next();
    }
}

/// The source file (relative to `src/`) a module path lands in: the deepest
/// prefix of `segments` that is a module file.
fn module_file(files: &BTreeSet<String>, segments: &[String]) -> String {
    for len in (1..=segments.len()).rev() {
        let base = segments[..len].join("/");
        for candidate in [format!("{base}.rs"), format!("{base}/mod.rs")] {
            if files.contains(&candidate) {
                return candidate;
            }
        }
    }
    "lib.rs".to_string()
}

/// File -> the files it names, for every non-test file in `sources`
/// (path relative to `src/` -> text).
fn dependencies(sources: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let files: BTreeSet<String> = sources.keys().cloned().collect();
    sources
        .iter()
        .filter(|(file, _)| !file.ends_with("tests.rs"))
        .map(|(file, text)| {
            let named = crate_paths(text)
                .iter()
                .map(|segments| module_file(&files, segments))
                .filter(|target| target != file)
                .collect();
            (file.clone(), named)
        })
        .collect()
}

/// Every rule broken in `deps`, one line each.
fn violations(deps: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut found = Vec::new();
    let under = |file: &str, layer: &str| {
        file == layer || file.starts_with(&format!("{}/", layer.trim_end_matches(".rs")))
    };
    for (file, named) in deps {
        for target in named {
            if file.starts_with("collector/")
                && ABOVE_COLLECTORS.iter().any(|layer| under(target, layer))
            {
                found.push(format!(
                    "src/{file} names src/{target}, a layer above the collectors"
                ));
            }
            if CONFIG_SECTIONS.contains(&file.as_str()) && target == "config.rs" {
                found.push(format!(
                    "src/{file} names src/config.rs, the whole-file config that includes it"
                ));
            }
            let circle = deps.get(target).is_some_and(|back| back.contains(file));
            let known = KNOWN_CIRCLES
                .iter()
                .any(|&(a, b)| (a, b) == (file, target) || (b, a) == (file, target));
            if circle && !known && file < target {
                found.push(format!("src/{file} and src/{target} name each other"));
            }
        }
    }
    found
}

#[test]
fn the_layers_of_src_hold() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let deps = dependencies(&read_sources(&root));
    assert!(deps.len() > 50, "read too few source files from {root:?}");
    assert!(
        deps["snapshot.rs"].contains("collector/dlm.rs"),
        "the check no longer sees the snapshot's own imports: {:?}",
        deps["snapshot.rs"]
    );
    let found = violations(&deps);
    assert!(found.is_empty(), "layer violations:\n{}", found.join("\n"));
    for &(a, b) in KNOWN_CIRCLES {
        assert!(
            deps[a].contains(b) && deps[b].contains(a),
            "{a} and {b} no longer name each other: drop them from KNOWN_CIRCLES"
        );
    }
}

fn tree(files: &[(&str, &str)]) -> BTreeMap<String, BTreeSet<String>> {
    dependencies(
        &files
            .iter()
            .map(|(f, t)| (f.to_string(), t.to_string()))
            .collect(),
    )
}

#[test]
fn grouped_imports_and_inline_paths_are_read() {
    let paths = crate_paths(
        "use crate::collector::{dlm::DlmFacts, mounts::{MountFacts, table}};\n\
         /// see `crate::snapshot::Snapshot`\n\
         fn f(c: &crate::config::Config) {}\n\
         #[cfg(test)]\nmod tests { use crate::rules::RULES; }\n\
         mycrate::ignored::Path;\n",
    );
    let joined: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        joined,
        [
            "collector::dlm::DlmFacts",
            "collector::mounts::MountFacts",
            "collector::mounts::table",
            "config::Config",
        ]
    );
}

#[test]
fn each_kind_of_violation_is_reported() {
    let deps = tree(&[
        ("collector/mod.rs", ""),
        ("collector/dlm.rs", "use crate::snapshot::Snapshot;"),
        ("snapshot.rs", "use crate::collector::dlm::DlmFacts;"),
        (
            "config.rs",
            "pub r: crate::rules::config::RemediationConfig,",
        ),
        ("rules/mod.rs", ""),
        ("rules/config.rs", "use crate::config::ConfigError;"),
        ("config/error.rs", ""),
    ]);
    let found = violations(&deps);
    assert_eq!(found.len(), 4, "{found:#?}");
    assert!(found[0].contains("collector/dlm.rs names src/snapshot.rs"));
    assert!(found
        .iter()
        .any(|v| v.contains("rules/config.rs names src/config.rs")));
    assert!(found
        .iter()
        .any(|v| v.contains("src/collector/dlm.rs and src/snapshot.rs name each other")));
    assert!(found
        .iter()
        .any(|v| v.contains("src/config.rs and src/rules/config.rs name each other")));

    let settled = tree(&[
        ("collector/mod.rs", ""),
        (
            "collector/section.rs",
            "use crate::collector::dlm::DlmFacts;",
        ),
        (
            "collector/dlm.rs",
            "use crate::collector::{Facts, Section};",
        ),
        ("snapshot.rs", "use crate::collector::{Facts, Section};"),
        (
            "config.rs",
            "pub r: crate::rules::config::RemediationConfig,",
        ),
        ("rules/mod.rs", ""),
        ("rules/config.rs", "use crate::config::error::ConfigError;"),
        ("config/error.rs", ""),
    ]);
    let found = violations(&settled);
    assert!(found.is_empty(), "{found:#?}");
}
