//! Kernel log records in the formats the daemon reads, auto-detected per file.
//!
//! * `/dev/kmsg` (Documentation/ABI/testing/dev-kmsg):
//!   `<prio>,<seq>,<usec>,<flags>[,...];<text>` then continuation lines
//!   starting with a space (` SUBSYSTEM=scsi`), which carry no message.
//! * `dmesg` text: `[  58.781234] text` (kernel time since boot), optionally
//!   behind a syslog priority (`<6>[  58.781234] text`, as pstore `dmesg-*`
//!   files and `dmesg -r` write it); `journalctl -o short-monotonic` is the
//!   same with `host kernel: ` before the text.
//! * `dmesg -T`: `[Sat Nov 21 12:00:00 2026] text` (local time).
//! * `journalctl -k` short format and classic syslog files:
//!   `Nov 21 12:00:00 host kernel: text` (local time, no year: the year that
//!   puts the line not after `now` is taken), and rsyslog's RFC 3339 form
//!   `2026-11-21T12:00:00.123456+00:00 host kernel: text`. Lines from other
//!   programs than `kernel` are skipped; a `[  12.3]` kernel time after
//!   `kernel: ` is kept as the monotonic time.
//!
//! A line that does not parse in the detected format is kept as plain text
//! without a time (pstore headers such as `Panic#1 Part1`), so a fence line is
//! never lost to a framing surprise.

/// One kernel message.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// `/dev/kmsg` sequence number.
    pub seq: Option<u64>,
    /// Kernel time since boot.
    pub monotonic_usec: Option<u64>,
    /// Unix time, when the format carries a wall clock.
    pub wall_seconds: Option<f64>,
    pub text: String,
}

impl Record {
    pub fn plain(text: &str) -> Self {
        Self {
            seq: None,
            monotonic_usec: None,
            wall_seconds: None,
            text: text.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Kmsg,
    /// `[ seconds.micros] text`, with optional `<prio>` and `host kernel: `.
    Monotonic,
    /// `dmesg -T`.
    WallBracket,
    /// `Nov 21 12:00:00 host kernel: text` or RFC 3339 syslog.
    Syslog,
}

/// Picks the format most of the first non-empty lines parse as.
pub fn detect(sample: &str) -> Format {
    let mut votes = [0usize; 4];
    let formats = [
        Format::Kmsg,
        Format::Monotonic,
        Format::WallBracket,
        Format::Syslog,
    ];
    for line in sample.lines().filter(|l| !l.trim().is_empty()).take(32) {
        for (vote, format) in votes.iter_mut().zip(formats) {
            if parse_line(format, line, 0)
                .is_some_and(|r| r.monotonic_usec.is_some() || r.wall_seconds.is_some())
            {
                *vote += 1;
            }
        }
    }
    let best = votes
        .iter()
        .enumerate()
        .max_by_key(|(index, votes)| (**votes, usize::MAX - index))
        .map_or(0, |(index, _)| index);
    formats[best]
}

/// Parses one line. `None` for lines that carry no message (blank, kmsg
/// continuation, syslog lines of other programs). `now_unix` resolves the
/// missing year of the short syslog format.
pub fn parse_line(format: Format, line: &str, now_unix: i64) -> Option<Record> {
    let line = line.trim_end_matches(['\n', '\r']);
    if line.trim().is_empty() {
        return None;
    }
    let parsed = match format {
        Format::Kmsg => {
            if line.starts_with(' ') {
                return None;
            }
            parse_kmsg(line)
        }
        Format::Monotonic => parse_monotonic(line),
        Format::WallBracket => parse_wall_bracket(line),
        Format::Syslog => match parse_syslog(line, now_unix) {
            Some(None) => return None,
            Some(Some(record)) => Some(record),
            None => None,
        },
    };
    Some(parsed.unwrap_or_else(|| Record::plain(line)))
}

/// `pri,seq,usec,flags[,...];text`.
pub fn parse_kmsg(line: &str) -> Option<Record> {
    let (prefix, text) = line.split_once(';')?;
    let mut fields = prefix.split(',');
    let _priority: u32 = fields.next()?.parse().ok()?;
    let seq: u64 = fields.next()?.parse().ok()?;
    let usec: u64 = fields.next()?.parse().ok()?;
    Some(Record {
        seq: Some(seq),
        monotonic_usec: Some(usec),
        wall_seconds: None,
        text: text.to_string(),
    })
}

/// `[  58.781234] text`, `<6>[  58.781234] text`, `[  58.781234] host kernel: text`.
fn parse_monotonic(line: &str) -> Option<Record> {
    let rest = strip_priority(line);
    let (usec, text) = split_kernel_time(rest)?;
    let text = strip_host_kernel(text).unwrap_or(text);
    Some(Record {
        seq: None,
        monotonic_usec: Some(usec),
        wall_seconds: None,
        text: text.to_string(),
    })
}

fn strip_priority(line: &str) -> &str {
    if let Some(rest) = line.strip_prefix('<') {
        if let Some((digits, after)) = rest.split_once('>') {
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                return after;
            }
        }
    }
    line
}

/// `[ seconds.fraction] rest` → (µs, rest).
fn split_kernel_time(line: &str) -> Option<(u64, &str)> {
    let inner = line.strip_prefix('[')?;
    let (stamp, rest) = inner.split_once(']')?;
    let (seconds, fraction) = stamp.trim().split_once('.')?;
    let seconds: u64 = seconds.parse().ok()?;
    if fraction.is_empty() || fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let scaled: u64 = format!("{fraction:0<6}")[..6].parse().ok()?;
    Some((
        seconds * 1_000_000 + scaled,
        rest.strip_prefix(' ').unwrap_or(rest),
    ))
}

/// `host kernel: text` → `text`.
fn strip_host_kernel(text: &str) -> Option<&str> {
    let (host, rest) = text.split_once(' ')?;
    if host.is_empty() || host.contains(':') {
        return None;
    }
    rest.strip_prefix("kernel: ")
}

/// `[Sat Nov 21 12:00:00 2026] text`.
fn parse_wall_bracket(line: &str) -> Option<Record> {
    let inner = line.strip_prefix('[')?;
    let (stamp, rest) = inner.split_once(']')?;
    let parts: Vec<&str> = stamp.split_whitespace().collect();
    let [_weekday, month, day, time, year] = parts.as_slice() else {
        return None;
    };
    let wall = local_time(
        year.parse().ok()?,
        month_number(month)?,
        day.parse().ok()?,
        time,
    )?;
    Some(Record {
        seq: None,
        monotonic_usec: None,
        wall_seconds: Some(wall as f64),
        text: rest.strip_prefix(' ').unwrap_or(rest).to_string(),
    })
}

/// `Some(None)`: a well-formed line of another program.
fn parse_syslog(line: &str, now_unix: i64) -> Option<Option<Record>> {
    let (wall, rest) = parse_syslog_time(line, now_unix)?;
    let (_host, rest) = rest.split_once(' ')?;
    let Some(text) = rest.strip_prefix("kernel: ") else {
        return Some(None);
    };
    let (monotonic_usec, text) = match split_kernel_time(text) {
        Some((usec, text)) => (Some(usec), text),
        None => (None, text),
    };
    Some(Some(Record {
        seq: None,
        monotonic_usec,
        wall_seconds: Some(wall),
        text: text.to_string(),
    }))
}

fn parse_syslog_time(line: &str, now_unix: i64) -> Option<(f64, &str)> {
    let (first, rest) = line.split_once(' ')?;
    if let Some(month) = month_number(first) {
        // "Nov 21 12:00:00 host": the day may be space-padded ("Nov  1").
        let rest = rest.trim_start();
        let (day, rest) = rest.split_once(' ')?;
        let (time, rest) = rest.split_once(' ')?;
        let day: u32 = day.parse().ok()?;
        let this_year = civil_from_days(now_unix.div_euclid(86_400)).0;
        let mut wall = local_time(this_year, month, day, time)?;
        if wall > now_unix + 86_400 {
            wall = local_time(this_year - 1, month, day, time)?;
        }
        return Some((wall as f64, rest));
    }
    Some((parse_rfc3339(first)?, rest))
}

/// `2026-11-21T12:00:00.123456+00:00` (rsyslog's default on Debian 12).
fn parse_rfc3339(stamp: &str) -> Option<f64> {
    let (date, time) = stamp.split_once('T')?;
    let mut date_parts = date.split('-');
    let year: i64 = date_parts.next()?.parse().ok()?;
    let month: u32 = date_parts.next()?.parse().ok()?;
    let day: u32 = date_parts.next()?.parse().ok()?;
    let (mut offset_hours, mut offset_minutes) = (0i64, 0i64);
    let (clock, offset_seconds) = if let Some(clock) = time.strip_suffix('Z') {
        (clock, 0i64)
    } else {
        let at = time.rfind(['+', '-'])?;
        let (clock, offset) = time.split_at(at);
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let (hours, minutes) = offset[1..].split_once(':').unwrap_or((&offset[1..], "0"));
        offset_hours = hours.parse().ok()?;
        offset_minutes = minutes.parse().ok()?;
        if !(0..=23).contains(&offset_hours) || !(0..=59).contains(&offset_minutes) {
            return None;
        }
        (clock, sign * (offset_hours * 3600 + offset_minutes * 60))
    };
    let (whole, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let (h, m, s) = hms(whole)?;
    let fraction: f64 = if fraction.is_empty() {
        0.0
    } else {
        format!("0.{fraction}").parse().ok()?
    };
    // Text from a log file: bounded before any arithmetic on it, so a
    // forged year or offset cannot overflow (a wrong time, or a panic in a
    // build with overflow checks).
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || !(0..=9999).contains(&year)
        || !(0..=23).contains(&offset_hours)
        || !(0..=59).contains(&offset_minutes)
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some((days * 86_400 + h * 3600 + m * 60 + s - offset_seconds) as f64 + fraction)
}

fn hms(time: &str) -> Option<(i64, i64, i64)> {
    let mut parts = time.split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let s: i64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some((h, m, s))
}

fn month_number(name: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    MONTHS.iter().position(|m| *m == name).map(|i| i as u32 + 1)
}

/// Local wall time → Unix time through the C library (dmesg -T and the
/// journal print local time; the TZ database is the libc's business).
fn local_time(year: i64, month: u32, day: u32, time: &str) -> Option<i64> {
    let (h, m, s) = hms(time)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // SAFETY: `tm` is a plain C struct for which all-zero is a valid value;
    // mktime only reads and normalises the struct we own.
    let unix = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        tm.tm_year = i32::try_from(year - 1900).ok()?;
        tm.tm_mon = i32::try_from(month).ok()? - 1;
        tm.tm_mday = i32::try_from(day).ok()?;
        tm.tm_hour = i32::try_from(h).ok()?;
        tm.tm_min = i32::try_from(m).ok()?;
        tm.tm_sec = i32::try_from(s).ok()?;
        tm.tm_isdst = -1;
        libc::mktime(&mut tm)
    };
    (unix != -1).then_some(unix)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// (year, month, day) of days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;

/// Lines of a log file, invalid UTF-8 replaced rather than ending the read
/// (kernel messages may carry raw bytes from devices).
pub fn lossy_lines(mut reader: impl std::io::BufRead) -> impl Iterator<Item = String> {
    let mut buffer = Vec::new();
    std::iter::from_fn(move || {
        buffer.clear();
        match reader.read_until(b'\n', &mut buffer) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(String::from_utf8_lossy(&buffer).into_owned()),
        }
    })
}
