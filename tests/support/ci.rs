//! The one place that says whether the tests run under CI. Shared by the
//! integration tests (through tests/support) and the unit tests in src/
//! (through `#[path]`), so both read `CI` the same way.

/// True when `CI` is `true` or `1`: prerequisites then fail instead of skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Skips (locally) or fails (CI) when a prerequisite is missing: true when
/// the test can go on.
pub fn require(ok: bool, what: &str) -> bool {
    if ok {
        return true;
    }
    if in_ci() {
        panic!("prerequisite missing in CI: {what}");
    }
    eprintln!("SKIPPED: prerequisite missing: {what}");
    false
}
