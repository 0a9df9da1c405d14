use super::*;

const NOW: i64 = 1_795_262_400; // 2026-11-21T12:00:00Z

#[test]
fn kmsg_records_and_continuations() {
    let record = parse_line(
        Format::Kmsg,
        "6,1234,92337534,-;o2net: Connection to node n2",
        NOW,
    )
    .unwrap();
    assert_eq!(record.seq, Some(1234));
    assert_eq!(record.monotonic_usec, Some(92_337_534));
    assert_eq!(record.text, "o2net: Connection to node n2");
    // Extra fields before ';' (newer kernels add the caller id) and ';' in text.
    let record = parse_line(Format::Kmsg, "14,7,5,c,caller=T1;a;b", NOW).unwrap();
    assert_eq!((record.seq, record.text.as_str()), (Some(7), "a;b"));
    assert_eq!(parse_line(Format::Kmsg, " SUBSYSTEM=scsi", NOW), None);
    assert_eq!(parse_line(Format::Kmsg, " DEVICE=+scsi:2:0:0:0", NOW), None);
    // Garbage: kept as plain text, no time.
    for garbage in ["x,1,2,-;t", "6,1;t", "no semicolon"] {
        let record = parse_line(Format::Kmsg, garbage, NOW).unwrap();
        assert_eq!(record, Record::plain(garbage));
    }
}

#[test]
fn dmesg_lines() {
    let record = parse_line(
        Format::Monotonic,
        "[   92.337534] o2net: Connection to node n2 (num 2) at 10.99.0.2:7777 has been idle for 10.202 secs.",
        NOW,
    )
    .unwrap();
    assert_eq!(record.monotonic_usec, Some(92_337_534));
    assert!(record.text.starts_with("o2net: Connection"));
    // Indented continuation text of a multi-line dump keeps its indent.
    let record = parse_line(Format::Monotonic, "[  191.532509]   last used: 0", NOW).unwrap();
    assert_eq!(record.text, "  last used: 0");
    // pstore dmesg-* (syslog priority) and short-monotonic journal output.
    let record = parse_line(
        Format::Monotonic,
        "<0>[  300.5] *** ocfs2 is very sorry ***",
        NOW,
    )
    .unwrap();
    assert_eq!(
        (record.monotonic_usec, record.text.as_str()),
        (Some(300_500_000), "*** ocfs2 is very sorry ***")
    );
    let record = parse_line(
        Format::Monotonic,
        "[   97.983829] n1 kernel: ocfs2: Begin replay journal",
        NOW,
    )
    .unwrap();
    assert_eq!(record.text, "ocfs2: Begin replay journal");
    // A pstore header is plain text; truncated stamps too.
    assert_eq!(
        parse_line(Format::Monotonic, "Panic#1 Part1", NOW).unwrap(),
        Record::plain("Panic#1 Part1")
    );
    assert_eq!(
        parse_line(Format::Monotonic, "[  92.33", NOW).unwrap(),
        Record::plain("[  92.33")
    );
    assert_eq!(
        parse_line(Format::Monotonic, "[abc.def] x", NOW).unwrap(),
        Record::plain("[abc.def] x")
    );
}

#[test]
fn dmesg_t_lines() {
    let a = parse_line(
        Format::WallBracket,
        "[Sat Nov 21 12:00:00 2026] o2net: x",
        NOW,
    )
    .unwrap();
    let b = parse_line(
        Format::WallBracket,
        "[Sat Nov 21 12:00:30 2026] o2net: y",
        NOW,
    )
    .unwrap();
    assert_eq!(a.text, "o2net: x");
    assert_eq!(b.wall_seconds.unwrap() - a.wall_seconds.unwrap(), 30.0);
    assert_eq!(
        parse_line(Format::WallBracket, "[Sat Nov 99 12:00:00 2026] x", NOW)
            .unwrap()
            .wall_seconds,
        None
    );
}

#[test]
fn syslog_lines() {
    let record = parse_line(
        Format::Syslog,
        "Nov 21 11:59:00 n1 kernel: o2net: Connected to node n1",
        NOW,
    )
    .unwrap();
    assert_eq!(record.text, "o2net: Connected to node n1");
    assert!(record.wall_seconds.is_some());
    // The kernel's own time after "kernel: " is kept.
    let record = parse_line(
        Format::Syslog,
        "Nov  1 11:59:00 n1 kernel: [   12.5] ocfs2: x",
        NOW,
    )
    .unwrap();
    assert_eq!(
        (record.monotonic_usec, record.text.as_str()),
        (Some(12_500_000), "ocfs2: x")
    );
    // A December line read in November is last year's.
    let december = parse_line(Format::Syslog, "Dec 31 23:00:00 n1 kernel: x", NOW).unwrap();
    assert!(december.wall_seconds.unwrap() < NOW as f64);
    // Other programs are skipped.
    assert_eq!(
        parse_line(
            Format::Syslog,
            "Nov 21 11:59:00 n1 sshd[12]: o2net: Connected to node",
            NOW
        ),
        None
    );
    let record = parse_line(
        Format::Syslog,
        "2026-11-21T12:00:00.250000+01:00 n1 kernel: ocfs2: x",
        NOW,
    )
    .unwrap();
    assert_eq!(record.wall_seconds, Some((NOW - 3600) as f64 + 0.25));
    let record = parse_line(Format::Syslog, "2026-11-21T12:00:00Z n1 kernel: y", NOW).unwrap();
    assert_eq!(record.wall_seconds, Some(NOW as f64));
    // A forged year or offset is no time at all: no overflow, no panic.
    for stamp in [
        "9223372036854775807-11-21T12:00:00Z",
        "2026-11-21T12:00:00+9223372036854775807:00",
        "2026-11-21T12:00:00+01:9223372036854775807",
        "2026-11-21T12:00:00+24:00",
    ] {
        let line = format!("{stamp} n1 kernel: z");
        let wall = parse_line(Format::Syslog, &line, NOW).and_then(|r| r.wall_seconds);
        assert_eq!(wall, None, "{line}");
    }
}

#[test]
fn detects_each_format() {
    assert_eq!(detect("6,1,2,-;a\n SUBSYSTEM=x\n6,2,3,-;b\n"), Format::Kmsg);
    // The lab capture, as copied byte for byte into tests/data.
    let dmesg = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/kernel-log/n1-03a-pause-dmesg-full.txt"
    ))
    .unwrap();
    assert_eq!(detect(&dmesg), Format::Monotonic);
    assert_eq!(
        detect("[Sat Nov 21 12:00:00 2026] a\n"),
        Format::WallBracket
    );
    assert_eq!(
        detect("Nov 21 12:00:00 n1 kernel: a\nNov 21 12:00:01 n1 kernel: b\n"),
        Format::Syslog
    );
    assert_eq!(
        detect("2026-11-21T12:00:00+00:00 n1 kernel: a\n"),
        Format::Syslog
    );
    assert_eq!(
        detect("-- Journal begins --\n[    1.000000] n1 kernel: a\n"),
        Format::Monotonic
    );
}

#[test]
fn civil_dates_round_trip() {
    for days in [-1, 0, 1, 365, 20_413, 20_778] {
        let (y, m, d) = civil_from_days(days);
        assert_eq!(days_from_civil(y, m, d), days);
    }
    assert_eq!(civil_from_days(NOW / 86_400), (2026, 11, 21));
}
