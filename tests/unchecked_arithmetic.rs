//! No clock arithmetic in `src/` that can panic on an outside value.
//!
//! clippy.toml's `disallowed-methods` refuses the panicking conversions
//! (`Duration::from_secs_f64`, `mul_f64`, ...) under `cargo clippy -D
//! warnings`; clippy cannot refuse an operator, so this test reads the
//! sources for `+` on an `Instant` or a `SystemTime` (`Instant::now() + d`,
//! `UNIX_EPOCH + d`, `now + d`, `deadline + d`, `x + Duration::...`). Use
//! `checked_add`, `saturating_add` or the helpers of `crate::input`
//! (`deadline`, `saturating_instant`, `saturating_add`) instead. Tests may
//! add freely: `#[cfg(test)]` items and `*tests.rs` files are not read.

use std::path::Path;

#[path = "support/sources.rs"]
mod sources;

/// What each forbidden form looks like, and why it is forbidden.
const FORBIDDEN: &[(&str, &str)] = &[
    (
        r"\b(Instant|SystemTime)::now\(\)\s*\+[^=]",
        "adds to the clock unchecked: use crate::input::deadline or checked_add",
    ),
    (
        r"\bUNIX_EPOCH\s*\+[^=]",
        "adds to the epoch unchecked: use UNIX_EPOCH.checked_add",
    ),
    (
        r"\b(now|deadline|started|start_time|until|next|wall|since|expires)\s*\+=?\s*[^=+\d\s]",
        "adds to a time unchecked: use checked_add or crate::input::saturating_instant",
    ),
    (
        r"\s\+=?\s*[\w.()]*(timeout|interval|grace|cooldown|backoff|jitter|delay|duration|budget|span|window)\b",
        "adds a duration with `+`: use checked_add, saturating_add or crate::input",
    ),
    (
        r"\+=?\s*[\w.()]*\.elapsed\(\)",
        "adds an elapsed time with `+`: use checked_add or crate::input::saturating_add",
    ),
    (
        r"\+=?\s*(std::time::)?Duration::",
        "adds a Duration with `+`: use checked_add or saturating_add",
    ),
    (
        r"Duration::(from_secs_f64|from_secs_f32)|\.(mul_f64|mul_f32|div_f64|div_f32)\(",
        "panics on NaN, negative or huge input: use Duration::try_from_secs_f64",
    ),
];

/// Every forbidden form in `code`, as `line: why`.
fn findings(code: &str) -> Vec<String> {
    let patterns: Vec<(regex::Regex, &str)> = FORBIDDEN
        .iter()
        .map(|(pattern, why)| (regex::Regex::new(pattern).unwrap(), *why))
        .collect();
    let mut found = Vec::new();
    for (number, line) in code.lines().enumerate() {
        for (pattern, why) in &patterns {
            if pattern.is_match(line) {
                found.push(format!("line {}: {why}: {}", number + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn src_has_no_unchecked_clock_arithmetic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let sources = sources::read_sources(&root);
    assert!(
        sources.len() > 50,
        "read too few source files from {root:?}"
    );
    let mut found = Vec::new();
    for (file, text) in &sources {
        if file.ends_with("tests.rs") {
            continue;
        }
        // Comments out first, as the line numbers need not match then:
        // a finding quotes its line.
        let code = sources::strip_test_items(&sources::strip_comments(text));
        found.extend(
            findings(&code)
                .into_iter()
                .map(|f| format!("src/{file}: {f}")),
        );
    }
    assert!(
        found.is_empty(),
        "unchecked clock arithmetic:\n{}",
        found.join("\n")
    );
}

#[test]
fn each_forbidden_form_is_found_and_the_checked_ones_pass() {
    for bad in [
        "let deadline = Instant::now() + timeout;",
        "let at = SystemTime::now() + ahead;",
        "let when = UNIX_EPOCH + offset;",
        "history.waiting = Some((now + settings.cooldown, Wait::Cooldown));",
        "let wait = probes.wait(key, started + wait);",
        "next += interval;",
        "let limit = timeout * 2 + Duration::from_secs(5);",
        "let left = Duration::from_secs_f64(expires - now);",
        "let until = at + self.config.request_timeout;",
        "time: AuditRecord::at(self.clock.wall(now) + self.tick_started.elapsed()),",
        "let jitter = span.mul_f64(fraction);",
    ] {
        assert!(!findings(bad).is_empty(), "not found: {bad}");
    }
    for good in [
        "let deadline = crate::input::deadline(timeout);",
        "let at = UNIX_EPOCH.checked_add(Duration::from_secs(s));",
        "let wait = crate::input::saturating_instant(now, wait);",
        "next = crate::input::saturating_instant(next, interval);",
        "let left = Duration::try_from_secs_f64(expires - now).ok();",
        "let end = (start + slot_bytes).min(data.len());",
        "let expected = last_seq.map_or(0, |last| last + 1);",
        "if now == until { now += 1 }",
    ] {
        assert!(findings(good).is_empty(), "flagged: {good}");
    }
}
