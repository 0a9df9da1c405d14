//! Deadline probes: run a call that can block on the SAN on its own thread.
//!
//! Anything that can hang on a dead device (stat/statfs of a mount, an O_DIRECT
//! read of a heartbeat slot, a whole collector run) goes through a `Prober`.
//! The caller starts a probe per target key and waits for it only until a
//! deadline it chooses; the thread goes on alone. While a probe for a key is
//! still running, no second one starts for that key, so a hung mount costs one
//! blocked thread, not one per tick. The `ProbePool` shared by all probers
//! bounds how many probe threads may be alive at once and counts those blocked
//! past their deadline (`ocfs2_watchdog_probe_stuck`). Nothing here waits on
//! the async runtime; the sampler thread is the only caller that blocks.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Threads alive across every prober, and which of them overran.
#[derive(Debug, Clone)]
pub struct ProbePool {
    inner: Arc<PoolInner>,
}

#[derive(Debug)]
struct PoolInner {
    max_threads: usize,
    next_id: AtomicU64,
    running: Mutex<HashMap<u64, (Instant, Duration)>>,
}

impl ProbePool {
    pub fn new(max_threads: usize) -> Self {
        Self {
            inner: Arc::new(PoolInner {
                max_threads,
                next_id: AtomicU64::new(0),
                running: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn running(&self) -> MutexGuard<'_, HashMap<u64, (Instant, Duration)>> {
        // A poisoned map still holds valid entries: keep counting.
        self.inner.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Probe threads alive now.
    pub fn threads(&self) -> usize {
        self.running().len()
    }

    /// Probe threads blocked past their deadline now.
    pub fn stuck(&self) -> usize {
        let now = Instant::now();
        self.running()
            .values()
            .filter(|(started, deadline)| now.duration_since(*started) > *deadline)
            .count()
    }

    fn admit(&self, deadline: Duration) -> Option<PoolTicket> {
        let mut running = self.running();
        if running.len() >= self.inner.max_threads {
            return None;
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        running.insert(id, (Instant::now(), deadline));
        Some(PoolTicket {
            pool: self.clone(),
            id,
        })
    }
}

/// Held by a probe thread; leaving the pool happens on drop, so a panicking
/// probe is counted out as well.
struct PoolTicket {
    pool: ProbePool,
    id: u64,
}

impl Drop for PoolTicket {
    fn drop(&mut self) {
        self.pool.running().remove(&self.id);
    }
}

/// What a probe for one key looks like when the caller stops waiting.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeState<T> {
    Done {
        value: T,
        elapsed: Duration,
    },
    /// Still running, within its deadline.
    Pending {
        elapsed: Duration,
    },
    /// Still running past its deadline; no new probe starts for this key.
    Stuck {
        elapsed: Duration,
    },
    /// The probe function panicked (a bug); reported, never propagated.
    Panicked,
    /// Never started: the pool is full of blocked threads.
    NoCapacity,
    /// No probe was started for this key.
    Idle,
}

type Cell<T> = Arc<(Mutex<Option<Option<T>>>, Condvar)>;

struct Slot<T> {
    started: Instant,
    deadline: Duration,
    cell: Cell<T>,
}

/// Probes of one kind (e.g. statfs of mount points), keyed by target.
pub struct Prober<T> {
    name: &'static str,
    pool: ProbePool,
    slots: Mutex<HashMap<String, Slot<T>>>,
}

impl<T: Send + 'static> Prober<T> {
    pub fn new(name: &'static str, pool: ProbePool) -> Self {
        Self {
            name,
            pool,
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<String, Slot<T>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts `probe` for `key` unless one is already in flight (its result not
    /// yet taken). Returns false when the pool had no room.
    pub fn start<F>(&self, key: &str, deadline: Duration, probe: F) -> bool
    where
        F: FnOnce() -> T + Send + 'static,
    {
        let mut slots = self.slots();
        if slots.contains_key(key) {
            return true;
        }
        let Some(ticket) = self.pool.admit(deadline) else {
            return false;
        };
        let cell: Cell<T> = Arc::new((Mutex::new(None), Condvar::new()));
        let thread_cell = Arc::clone(&cell);
        let spawned = std::thread::Builder::new()
            .name(format!("probe-{}", self.name))
            .spawn(move || {
                // Contained: reported as `Panicked`, not an exit (crate::liveness).
                let value =
                    catch_unwind(AssertUnwindSafe(|| crate::liveness::contained(probe))).ok();
                // Leave the pool before publishing, so whoever sees the result
                // also sees the thread counted out.
                drop(ticket);
                let (lock, ready) = &*thread_cell;
                *lock.lock().unwrap_or_else(|e| e.into_inner()) = Some(value);
                ready.notify_all();
            });
        if spawned.is_err() {
            // The ticket moved into the closure was dropped with it.
            return false;
        }
        slots.insert(
            key.to_string(),
            Slot {
                started: Instant::now(),
                deadline,
                cell,
            },
        );
        true
    }

    /// Waits for `key`'s probe until `until` at the latest. A finished result
    /// is handed out once; the next `start` for the key runs a fresh probe.
    pub fn wait(&self, key: &str, until: Instant) -> ProbeState<T> {
        let (started, deadline, cell) = match self.slots().get(key) {
            Some(slot) => (slot.started, slot.deadline, Arc::clone(&slot.cell)),
            None => return ProbeState::Idle,
        };
        let (lock, ready) = &*cell;
        let mut result = lock.lock().unwrap_or_else(|e| e.into_inner());
        while result.is_none() {
            let now = Instant::now();
            if now >= until {
                break;
            }
            result = ready
                .wait_timeout(result, until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let elapsed = started.elapsed();
        match result.take() {
            Some(value) => {
                drop(result);
                self.slots().remove(key);
                match value {
                    Some(value) => ProbeState::Done { value, elapsed },
                    None => ProbeState::Panicked,
                }
            }
            None if elapsed > deadline => ProbeState::Stuck { elapsed },
            None => ProbeState::Pending { elapsed },
        }
    }

    /// Starts (if needed) and waits up to the deadline: the one-call form.
    pub fn run<F>(&self, key: &str, deadline: Duration, probe: F) -> ProbeState<T>
    where
        F: FnOnce() -> T + Send + 'static,
    {
        if !self.start(key, deadline, probe) {
            return ProbeState::NoCapacity;
        }
        let until = self.started_at(key).unwrap_or_else(Instant::now) + deadline;
        self.wait(key, until)
    }

    fn started_at(&self, key: &str) -> Option<Instant> {
        self.slots().get(key).map(|slot| slot.started)
    }

    /// Forgets finished probes of keys no longer watched; running ones stay so
    /// a hung target can never get a second thread.
    pub fn retain_keys(&self, keep: &dyn Fn(&str) -> bool) {
        self.slots().retain(|key, slot| {
            keep(key)
                || slot
                    .cell
                    .0
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .is_none()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn quick_probe_is_done() {
        let prober = Prober::new("t", ProbePool::new(4));
        let state = prober.run("a", Duration::from_secs(5), || 7);
        assert!(matches!(state, ProbeState::Done { value: 7, .. }));
        assert_eq!(prober.wait("a", Instant::now()), ProbeState::Idle);
    }

    #[test]
    fn hung_probe_is_stuck_and_never_doubled() {
        let pool = ProbePool::new(4);
        let prober = Prober::new("t", pool.clone());
        let (release, hold) = mpsc::channel::<()>();
        let state = prober.run("hung", Duration::from_millis(50), move || {
            let _ = hold.recv();
            1
        });
        assert!(matches!(state, ProbeState::Stuck { .. }), "{state:?}");
        // A second start while the first is blocked must not add a thread.
        let again = prober.run("hung", Duration::from_millis(50), || 2);
        assert!(matches!(again, ProbeState::Stuck { .. }), "{again:?}");
        assert_eq!(pool.threads(), 1);
        assert_eq!(pool.stuck(), 1);
        release.send(()).unwrap();
        let done = prober.wait("hung", Instant::now() + Duration::from_secs(5));
        assert!(
            matches!(done, ProbeState::Done { value: 1, .. }),
            "{done:?}"
        );
        while pool.threads() > 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn pool_bound_refuses_new_threads() {
        let pool = ProbePool::new(2);
        let prober = Prober::new("t", pool.clone());
        let (release, hold) = mpsc::channel::<()>();
        let hold = Arc::new(Mutex::new(hold));
        for key in ["a", "b"] {
            let hold = Arc::clone(&hold);
            prober.start(key, Duration::from_millis(1), move || {
                let _ = hold.lock().unwrap().recv();
            });
        }
        assert_eq!(
            prober.run("c", Duration::from_millis(1), || ()),
            ProbeState::NoCapacity
        );
        assert_eq!(pool.threads(), 2);
        release.send(()).unwrap();
        release.send(()).unwrap();
    }

    #[test]
    fn panicking_probe_is_reported_and_leaves_the_pool() {
        let pool = ProbePool::new(2);
        let prober: Prober<u8> = Prober::new("t", pool.clone());
        let state = prober.run("p", Duration::from_secs(5), || panic!("bug"));
        assert_eq!(state, ProbeState::Panicked);
        while pool.threads() > 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
