//! Validation of numbers that come from outside the daemon: peer answers,
//! admin requests, the state files it reloads and the configuration.
//!
//! Every such value is hostile until checked here: finite, in range, not
//! further in the future than a bounded clock skew. A refusal is a typed
//! `InputError`, counted by source and reason in
//! `ocfs2_watchdog_input_rejected_total` (rendered at scrape time by
//! `crate::http`), so a forged peer answer or a corrupt state file shows on
//! a dashboard instead of a panic in a later `now + duration`. The helpers
//! also convert checked: no float becomes a `Duration` and no time is added
//! to without a bound (clippy.toml and tests/unchecked_arithmetic.rs keep
//! it so in the rest of the code).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::metrics::Family;

/// Where a refused value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Peer,
    Admin,
    StateFile,
    Config,
}

impl Source {
    pub const ALL: [Source; 4] = [Self::Peer, Self::Admin, Self::StateFile, Self::Config];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Peer => "peer",
            Self::Admin => "admin",
            Self::StateFile => "state_file",
            Self::Config => "config",
        }
    }
}

/// Why a value was refused: the `reason` label of the counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    NotFinite,
    OutOfRange,
    Future,
    TooLong,
    Malformed,
}

impl Reason {
    pub const ALL: [Reason; 5] = [
        Self::NotFinite,
        Self::OutOfRange,
        Self::Future,
        Self::TooLong,
        Self::Malformed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFinite => "not_finite",
            Self::OutOfRange => "out_of_range",
            Self::Future => "future",
            Self::TooLong => "too_long",
            Self::Malformed => "malformed",
        }
    }
}

/// A value from outside that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    #[error("{field} is not a finite number ({value})")]
    NotFinite { field: &'static str, value: String },
    #[error("{field} = {value} is out of range ({range})")]
    OutOfRange {
        field: &'static str,
        value: String,
        range: String,
    },
    #[error("{field} lies {ahead} in the future, more than the allowed clock skew of {skew}")]
    Future {
        field: &'static str,
        ahead: String,
        skew: String,
    },
    #[error("{field} = {value} is longer than the maximum of {max}")]
    TooLong {
        field: &'static str,
        value: String,
        max: String,
    },
    #[error("{field}: {message}")]
    Malformed {
        field: &'static str,
        message: String,
    },
}

impl InputError {
    pub fn reason(&self) -> Reason {
        match self {
            Self::NotFinite { .. } => Reason::NotFinite,
            Self::OutOfRange { .. } => Reason::OutOfRange,
            Self::Future { .. } => Reason::Future,
            Self::TooLong { .. } => Reason::TooLong,
            Self::Malformed { .. } => Reason::Malformed,
        }
    }
}

const SOURCES: usize = Source::ALL.len();
const REASONS: usize = Reason::ALL.len();

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const ROW: [AtomicU64; REASONS] = [ZERO; REASONS];
static REJECTED: [[AtomicU64; REASONS]; SOURCES] = [ROW; SOURCES];

fn index<T: PartialEq>(all: &[T], item: &T) -> usize {
    all.iter().position(|x| x == item).unwrap_or(0)
}

/// Counts `error` as refused from `source` and hands it back.
pub fn reject(source: Source, error: InputError) -> InputError {
    REJECTED[index(&Source::ALL, &source)][index(&Reason::ALL, &error.reason())]
        .fetch_add(1, Ordering::Relaxed);
    error
}

/// Refusals so far from `source` for `reason` (tests and the family).
pub fn rejected(source: Source, reason: Reason) -> u64 {
    REJECTED[index(&Source::ALL, &source)][index(&Reason::ALL, &reason)].load(Ordering::Relaxed)
}

/// `ocfs2_watchdog_input_rejected_total{source,reason}`, every series
/// present from the start so `increase()` sees the first refusal.
pub fn family() -> Family {
    let mut family = Family::counter(
        "ocfs2_watchdog_input_rejected",
        "Values from outside refused as not finite, out of range, too far in the future, too long or malformed, by source (peer answer, admin request, state file, configuration).",
    );
    for source in Source::ALL {
        for reason in Reason::ALL {
            family.push(
                &[("source", source.as_str()), ("reason", reason.as_str())],
                rejected(source, reason) as f64,
            );
        }
    }
    family
}

/// Unix seconds of `time` (0 before the epoch).
pub fn unix(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn short(duration: Duration) -> String {
    humantime::format_duration(Duration::from_secs(duration.as_secs())).to_string()
}

/// A finite, non-negative number of seconds as a `Duration`.
pub fn seconds(field: &'static str, value: f64) -> Result<Duration, InputError> {
    if !value.is_finite() {
        return Err(InputError::NotFinite {
            field,
            value: value.to_string(),
        });
    }
    if value < 0.0 {
        return Err(InputError::OutOfRange {
            field,
            value: value.to_string(),
            range: "not negative".into(),
        });
    }
    Duration::try_from_secs_f64(value).map_err(|_| InputError::OutOfRange {
        field,
        value: value.to_string(),
        range: "too large for a duration".into(),
    })
}

/// A Unix time in seconds: finite, not before the epoch, and not more than
/// `skew` ahead of `now`.
pub fn timestamp(
    field: &'static str,
    value: f64,
    now: SystemTime,
    skew: Duration,
) -> Result<SystemTime, InputError> {
    let since_epoch = seconds(field, value)?;
    let at = UNIX_EPOCH
        .checked_add(since_epoch)
        .ok_or_else(|| InputError::OutOfRange {
            field,
            value: value.to_string(),
            range: "not a representable time".into(),
        })?;
    match at.duration_since(now) {
        Ok(ahead) if ahead > skew => Err(InputError::Future {
            field,
            ahead: short(ahead),
            skew: short(skew),
        }),
        _ => Ok(at),
    }
}

/// A span no longer than `max`.
pub fn bounded(
    field: &'static str,
    value: Duration,
    max: Duration,
) -> Result<Duration, InputError> {
    if value > max {
        return Err(InputError::TooLong {
            field,
            value: short(value),
            max: short(max),
        });
    }
    Ok(value)
}

/// `at + span`, or the latest time the platform can hold: for deadlines
/// and expiries already bounded elsewhere, where "never" is the meaning of
/// an overflow.
pub fn saturating_add(at: SystemTime, span: Duration) -> SystemTime {
    at.checked_add(span)
        // About 146 billion years: representable on every Unix target.
        .or_else(|| UNIX_EPOCH.checked_add(Duration::from_secs(i64::MAX.unsigned_abs() / 2)))
        .unwrap_or(at)
}

/// `at + span` for a monotonic deadline; an overflow keeps `at` plus a
/// century, which no deadline of this daemon outlives.
pub fn saturating_instant(at: std::time::Instant, span: Duration) -> std::time::Instant {
    at.checked_add(span)
        .or_else(|| at.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(at)
}

/// The deadline `span` from now (`saturating_instant`).
pub fn deadline(span: Duration) -> std::time::Instant {
    saturating_instant(std::time::Instant::now(), span)
}

/// `fraction` (clamped to 0..=1; not finite: 0) of `span`, for jitter:
/// `Duration::mul_f64` panics on a factor it cannot represent.
pub fn fraction_of(span: Duration, fraction: f64) -> Duration {
    if !fraction.is_finite() {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(span.as_secs_f64() * fraction.clamp(0.0, 1.0)).unwrap_or(span)
}

/// RFC 3339 of a Unix time, or a placeholder when it is not one.
pub fn rfc3339(seconds_since_epoch: f64) -> String {
    match seconds("time", seconds_since_epoch)
        .ok()
        .and_then(|d| UNIX_EPOCH.checked_add(d))
    {
        Some(at) if seconds_since_epoch < 253_402_300_800.0 => {
            humantime::format_rfc3339_seconds(at).to_string()
        }
        _ => "invalid".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_cannot_be_a_time() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let skew = Duration::from_secs(300);
        for (value, reason) in [
            (f64::NAN, Reason::NotFinite),
            (f64::INFINITY, Reason::NotFinite),
            (-1.0, Reason::OutOfRange),
            (1e300, Reason::OutOfRange),
            (1_700_000_301.0, Reason::Future),
        ] {
            let error = timestamp("t", value, now, skew).unwrap_err();
            assert_eq!(error.reason(), reason, "{value}: {error}");
        }
        assert!(timestamp("t", 1_700_000_299.0, now, skew).is_ok());
        assert!(timestamp("t", -0.0, now, skew).is_ok());
        assert_eq!(
            bounded("for", Duration::from_secs(10), Duration::from_secs(5))
                .unwrap_err()
                .reason(),
            Reason::TooLong
        );
    }

    #[test]
    fn rejections_are_counted_by_source_and_reason() {
        let before = rejected(Source::Admin, Reason::TooLong);
        reject(
            Source::Admin,
            bounded("for", Duration::MAX, Duration::ZERO).unwrap_err(),
        );
        assert_eq!(rejected(Source::Admin, Reason::TooLong), before + 1);
        assert_eq!(family().samples.len(), SOURCES * REASONS);
    }

    #[test]
    fn saturating_helpers_never_panic() {
        assert!(saturating_add(SystemTime::now(), Duration::MAX) > SystemTime::now());
        let now = std::time::Instant::now();
        assert!(saturating_instant(now, Duration::MAX) > now);
        assert_eq!(rfc3339(1e300), "invalid");
        assert_eq!(rfc3339(f64::NAN), "invalid");
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00Z");
        let minute = Duration::from_secs(60);
        assert_eq!(fraction_of(minute, 0.5), Duration::from_secs(30));
        assert_eq!(fraction_of(minute, f64::NAN), Duration::ZERO);
        assert_eq!(fraction_of(minute, 7.0), minute);
    }
}
