//! The accumulator shared by the log reader thread and the `kernel_log`
//! collector: counters, last times, and a bounded ring of recent events.
//!
//! The reader classifies (and deduplicates) without the lock and takes it
//! only to add an event or bump the record counters, so a flood costs one
//! short lock per record and memory stays fixed: counters per event, at most
//! `recent_capacity` messages, each cut to `MESSAGE_MAX_BYTES`.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use serde::Serialize;

use super::classify::Event;
use crate::collector::ErrorKind;

/// Longest message kept in the ring; kernel records are at most a few KiB.
pub const MESSAGE_MAX_BYTES: usize = 512;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecentEvent {
    /// Unix time of the message (boot time + kernel time, or the log's clock).
    pub timestamp_seconds: Option<f64>,
    pub event: Event,
    pub message: String,
}

/// Why the source cannot be followed; reported as the collector's error.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceError {
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counters {
    pub events: [u64; Event::ALL.len()],
    pub last_timestamp_seconds: [Option<f64>; Event::ALL.len()],
    /// Records read from the source (all messages, classified or not).
    pub records_read: u64,
    /// Records overwritten in the ring buffer before they were read.
    pub records_lost: u64,
    /// Failed writes of the persisted state.
    pub state_write_errors: u64,
    /// `None` until the previous boot was examined.
    pub fence_previous_boot: Option<bool>,
    pub fences_total: Option<u64>,
    /// The source has been read to its end at least once (files: replayed).
    pub caught_up: bool,
}

#[derive(Debug, Default)]
pub struct Accumulator {
    pub counters: Counters,
    pub recent: VecDeque<RecentEvent>,
    pub source_error: Option<SourceError>,
    /// `Some(reason)` when there is nothing to follow on this host.
    pub absent: Option<String>,
}

/// Shared between the reader thread and the collector (`Context::kernel_log`).
#[derive(Debug)]
pub struct KernelLogState {
    inner: Mutex<Accumulator>,
    recent_capacity: usize,
    /// Set once the source was started, so `main` and the first collect can
    /// both ask for it and only one reader ever runs.
    pub(super) started: OnceLock<()>,
    /// Events counted so far, with a condition the sampler waits on so it
    /// can publish an event without waiting for the next tick.
    events_counted: Mutex<u64>,
    event_arrived: Condvar,
}

impl Default for KernelLogState {
    fn default() -> Self {
        Self::new(64)
    }
}

impl KernelLogState {
    pub fn new(recent_capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Accumulator::default()),
            recent_capacity,
            started: OnceLock::new(),
            events_counted: Mutex::new(0),
            event_arrived: Condvar::new(),
        }
    }

    /// Events counted so far (compare with `wait_for_event`).
    pub fn events_counted(&self) -> u64 {
        *self
            .events_counted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until more than `seen` events were counted, or `until`; returns
    /// the count then.
    pub fn wait_for_event(&self, seen: u64, until: Instant) -> u64 {
        let mut counted = self
            .events_counted
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        while *counted <= seen {
            let now = Instant::now();
            if now >= until {
                break;
            }
            counted = match self.event_arrived.wait_timeout(counted, until - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        *counted
    }

    /// The lock, recovered if a holder panicked: the counters stay usable.
    pub fn lock(&self) -> MutexGuard<'_, Accumulator> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn record_event(&self, event: Event, timestamp_seconds: Option<f64>, message: &str) {
        self.add_event(event, timestamp_seconds, message);
        *self
            .events_counted
            .lock()
            .unwrap_or_else(|e| e.into_inner()) += 1;
        self.event_arrived.notify_all();
    }

    fn add_event(&self, event: Event, timestamp_seconds: Option<f64>, message: &str) {
        let mut acc = self.lock();
        let index = event.index();
        acc.counters.events[index] += 1;
        if let Some(t) = timestamp_seconds {
            acc.counters.last_timestamp_seconds[index] = Some(t);
        }
        if self.recent_capacity == 0 {
            return;
        }
        while acc.recent.len() >= self.recent_capacity {
            acc.recent.pop_front();
        }
        acc.recent.push_back(RecentEvent {
            timestamp_seconds,
            event,
            message: truncate(message, MESSAGE_MAX_BYTES).to_string(),
        });
    }

    /// A snapshot of the counters and the ring, for the collector.
    pub fn view(
        &self,
    ) -> (
        Counters,
        Vec<RecentEvent>,
        Option<SourceError>,
        Option<String>,
    ) {
        let acc = self.lock();
        (
            acc.counters.clone(),
            acc.recent.iter().cloned().collect(),
            acc.source_error.clone(),
            acc.absent.clone(),
        )
    }
}

/// Cuts at a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_is_bounded_and_counts_are_not() {
        let state = KernelLogState::new(3);
        for i in 0..10 {
            state.record_event(Event::NetConnected, Some(f64::from(i)), &"x".repeat(2000));
        }
        let (counters, recent, _, _) = state.view();
        assert_eq!(counters.events[Event::NetConnected.index()], 10);
        assert_eq!(
            counters.last_timestamp_seconds[Event::NetConnected.index()],
            Some(9.0)
        );
        assert_eq!(recent.len(), 3);
        assert_eq!(recent[0].timestamp_seconds, Some(7.0));
        assert_eq!(recent[2].message.len(), MESSAGE_MAX_BYTES);
    }

    #[test]
    fn a_waiter_wakes_on_the_next_event() {
        let state = std::sync::Arc::new(KernelLogState::new(3));
        let seen = state.events_counted();
        let soon = Instant::now() + std::time::Duration::from_millis(20);
        assert_eq!(state.wait_for_event(seen, soon), seen, "times out quietly");
        let writer = std::sync::Arc::clone(&state);
        let thread = std::thread::spawn(move || {
            writer.record_event(Event::NetConnected, None, "o2net: connected");
        });
        let later = Instant::now() + std::time::Duration::from_secs(60);
        assert_eq!(state.wait_for_event(seen, later), seen + 1);
        thread.join().unwrap();
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 5), "abc");
    }
}
