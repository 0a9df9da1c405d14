//! Liveness that means something: a panic anywhere in the daemon ends the
//! process, and the rule engine's thread reports that it still loops.
//!
//! `install_panic_hook` (main, at start) logs a panic with `tracing` and
//! exits with `EXIT_PANIC`, so systemd (`Restart=on-failure`) and the
//! kubelet restart a daemon whose thread or tokio task died, instead of
//! leaving a process that answers `/healthz` while it no longer samples,
//! acts or renders (docs/design.md, "A panic ends the process", says why
//! exit rather than 503). Panics that the code contains on purpose (a
//! collector or an action on a probe thread, reported as `panicked`) run
//! inside `contained` and are only logged.
//!
//! `EngineHealth` is the engine thread's heartbeat (`rules::runner` beats
//! it every loop; an action in progress is allowed its deadline); the
//! sampler's `Health` carries it so `/healthz` answers 503 when the engine
//! is stuck inside a tick.

use std::cell::Cell;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Exit status after an uncontained panic (as Rust's own default).
pub const EXIT_PANIC: i32 = 101;

/// Test hook, inert unless set: `panic` makes the engine thread panic and
/// `wedge` makes it hang at its first snapshot, so tests can show the
/// process exits and `/healthz` fails (tests/liveness.rs).
pub const TEST_ENGINE_FAULT_ENV: &str = "OCFS2_WATCHDOG_TEST_ENGINE_FAULT";

thread_local! {
    static CONTAINED: Cell<u32> = const { Cell::new(0) };
}

/// Restores the depth when `contained` ends, by return or by unwinding.
struct Depth;

impl Drop for Depth {
    fn drop(&mut self) {
        CONTAINED.with(|c| c.set(c.get().saturating_sub(1)));
    }
}

/// Runs `f`, whose panic the caller catches and reports (probe threads):
/// the panic hook logs it and lets it unwind instead of exiting.
pub fn contained<T>(f: impl FnOnce() -> T) -> T {
    CONTAINED.with(|c| c.set(c.get().saturating_add(1)));
    let _depth = Depth;
    f()
}

fn is_contained() -> bool {
    CONTAINED.with(|c| c.get() > 0)
}

/// Installs the hook that turns an uncontained panic into a logged exit.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(not a string)".into());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_string();
        if is_contained() {
            tracing::error!(thread = %thread, location = %location, error = %message, "A probe thread panicked; it is reported and the daemon goes on.");
            return;
        }
        tracing::error!(thread = %thread, location = %location, error = %message, "A daemon thread panicked; exiting so that the supervisor restarts the daemon.");
        std::process::exit(EXIT_PANIC);
    }));
}

/// The engine thread's heartbeat, read by `/healthz`.
#[derive(Debug)]
pub struct EngineHealth {
    /// How long the engine may go without a beat (outside an action).
    limit: Duration,
    started: Instant,
    last_beat: Mutex<Option<Instant>>,
    /// The deadline of the action the engine is waiting for, if any.
    busy_until: Mutex<Option<Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl EngineHealth {
    pub fn new(limit: Duration) -> Self {
        Self {
            limit,
            started: Instant::now(),
            last_beat: Mutex::new(None),
            busy_until: Mutex::new(None),
        }
    }

    /// The engine finished a tick or woke idle.
    pub fn beat(&self) {
        *lock(&self.last_beat) = Some(Instant::now());
    }

    /// The engine waits for an action up to `deadline` from now; `None`
    /// when it returned.
    pub fn busy(&self, deadline: Option<Duration>) {
        *lock(&self.busy_until) = deadline.map(crate::input::deadline);
    }

    /// `Some(how long)` when the engine has not beaten for longer than its
    /// limit and is not inside an action's deadline.
    pub fn stalled(&self) -> Option<Duration> {
        let now = Instant::now();
        if lock(&self.busy_until).is_some_and(|until| now < until) {
            return None;
        }
        let since = now.saturating_duration_since(lock(&self.last_beat).unwrap_or(self.started));
        (since > self.limit).then_some(since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_engine_is_stalled_unless_an_action_holds_it() {
        let health = EngineHealth::new(Duration::from_millis(30));
        assert_eq!(health.stalled(), None);
        std::thread::sleep(Duration::from_millis(60));
        assert!(health.stalled().is_some());
        health.busy(Some(Duration::from_secs(60)));
        assert_eq!(health.stalled(), None, "inside an action's deadline");
        health.busy(None);
        assert!(health.stalled().is_some());
        health.beat();
        assert_eq!(health.stalled(), None);
    }

    #[test]
    fn contained_depth_survives_an_unwind() {
        let caught = std::panic::catch_unwind(|| contained(|| panic!("contained")));
        assert!(caught.is_err());
        assert!(!is_contained(), "the depth was restored");
        assert_eq!(contained(|| 7), 7);
    }
}
