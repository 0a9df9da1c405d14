//! Prints a status `Document` for a terminal, one screen like `crm_mon -1`:
//! the verdict line, then each section with aligned tables. Colour (ANSI)
//! only when asked for: the caller decides from `isatty` and `NO_COLOR`.

use std::fmt::Write as _;

use super::render::{Block, Cell, Document, Row, Tone};

/// Whether stdout gets colour: a terminal, and no `NO_COLOR` (no-color.org:
/// any non-empty value disables it).
pub fn colour_wanted() -> bool {
    use std::io::IsTerminal as _;
    colour_for(
        std::env::var_os("NO_COLOR"),
        std::io::stdout().is_terminal(),
    )
}

fn colour_for(no_color: Option<std::ffi::OsString>, terminal: bool) -> bool {
    terminal && !no_color.is_some_and(|v| !v.is_empty())
}

struct Painter {
    colour: bool,
}

impl Painter {
    fn paint(&self, text: &str, tone: Tone) -> String {
        let code = match tone {
            _ if !self.colour => return text.to_string(),
            Tone::Plain => return text.to_string(),
            Tone::Muted => "2",
            Tone::Good => "32",
            Tone::Warn => "33",
            Tone::Bad => "1;31",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }

    fn bold(&self, text: &str) -> String {
        if self.colour {
            format!("\x1b[1m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// Control characters from the host (a mount path, a kernel message) would
/// move the cursor or forge colour; show them escaped.
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<char>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

pub fn render(document: &Document, colour: bool) -> String {
    let painter = Painter { colour };
    let mut out = String::new();
    let tone = Tone::of_state(document.verdict.state);
    let _ = writeln!(
        out,
        "{}",
        painter.paint(&printable(&document.verdict.line()), tone)
    );
    let _ = writeln!(
        out,
        "{}",
        painter.paint(&printable(&document.origin), Tone::Muted)
    );
    for section in &document.sections {
        let _ = writeln!(out, "\n{}", painter.bold(&format!("{}:", section.title)));
        for block in &section.blocks {
            match block {
                Block::Pairs(pairs) => pairs_text(&mut out, &painter, pairs),
                Block::Lines(lines) => {
                    for line in lines {
                        let _ = writeln!(
                            out,
                            "  {}",
                            painter.paint(&printable(&line.text), line.tone)
                        );
                    }
                }
                Block::Table { headers, rows } => table_text(&mut out, &painter, headers, rows),
            }
        }
    }
    out
}

/// `key value` pairs, wrapped at 78 columns.
fn pairs_text(out: &mut String, painter: &Painter, pairs: &[(&str, Cell)]) {
    let mut line = String::from(" ");
    let mut width = 1;
    for (key, value) in pairs {
        let text = printable(&value.text);
        let item_width = key.chars().count() + 2 + text.chars().count() + 2;
        if width > 1 && width + item_width > 78 {
            let _ = writeln!(out, "{}", line.trim_end());
            line = String::from(" ");
            width = 1;
        }
        let _ = write!(line, " {}: {} ", key, painter.paint(&text, value.tone));
        width += item_width;
    }
    let _ = writeln!(out, "{}", line.trim_end());
}

fn table_text(out: &mut String, painter: &Painter, headers: &[&str], rows: &[Row]) {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.cells.iter().map(|c| printable(&c.text)).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &cells {
        for (i, text) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(i) {
                *width = (*width).max(text.chars().count());
            }
        }
    }
    // The last column takes what it needs: no trailing padding.
    let last = headers.len().saturating_sub(1);
    let header: Vec<String> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| pad(h, if i == last { 0 } else { widths[i] }))
        .collect();
    let _ = writeln!(
        out,
        "  {}",
        painter.paint(header.join("  ").trim_end(), Tone::Muted)
    );
    for (row, texts) in rows.iter().zip(&cells) {
        let marker = match row.tone {
            Tone::Bad => '!',
            Tone::Warn => '~',
            _ => ' ',
        };
        let line: Vec<String> = texts
            .iter()
            .zip(&row.cells)
            .enumerate()
            .map(|(i, (text, cell))| {
                let width = if i == last {
                    0
                } else {
                    widths.get(i).copied().unwrap_or(0)
                };
                painter.paint(&pad(text, width), cell.tone)
            })
            .collect();
        let _ = writeln!(out, "{marker} {}", line.join("  ").trim_end());
        for detail in &row.details {
            let _ = writeln!(
                out,
                "      {}",
                painter.paint(&printable(&detail.text), detail.tone)
            );
        }
    }
}

fn pad(text: &str, width: usize) -> String {
    let len = text.chars().count();
    if len >= width {
        text.to_string()
    } else {
        format!("{text}{}", " ".repeat(width - len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::check::{evaluate, Verdict};
    use crate::status::model::{MountView, NodeView, Overview, VolumeView};
    use crate::status::render::document;
    use crate::status::thresholds::CheckConfig;

    fn overview() -> Overview {
        Overview {
            nodes: vec![NodeView {
                number: 2,
                name: "n2".into(),
                heartbeat_live: Some(false),
                ..NodeView::default()
            }],
            volumes: vec![VolumeView {
                label: "lab\u{1b}[2Jvol".into(),
                mounts: vec![MountView {
                    mountpoint: "/srv/\u{1b}[31mdata".into(),
                    mounted: true,
                    stuck: true,
                    stuck_seconds: Some(40.0),
                    ..MountView::default()
                }],
                ..VolumeView::default()
            }],
            ..Overview::default()
        }
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour_for(None, true));
        assert!(!colour_for(None, false));
        assert!(!colour_for(Some("1".into()), true));
        // no-color.org: an empty NO_COLOR does not count.
        assert!(colour_for(Some("".into()), true));
    }

    #[test]
    fn problems_are_red_in_colour_and_host_text_cannot_paint() {
        let overview = overview();
        let config = CheckConfig::default();
        let verdict: Verdict = evaluate(&overview, &config);
        let doc = document(&overview, verdict, "origin".into(), &config);
        let plain = render(&doc, false);
        // The plugin line blanks control characters; the screen shows them escaped.
        assert!(
            plain.starts_with("OCFS2 CRITICAL - /srv/ [31mdata stuck 40s"),
            "{plain}"
        );
        assert!(plain.contains("/srv/\\u{1b}[31mdata"), "{plain}");
        assert!(plain.contains("lab\\u{1b}[2Jvol"), "{plain}");
        assert!(plain.contains("! 2  n2"), "{plain}");
        assert!(!plain.contains('\x1b'), "{plain}");
        let coloured = render(&doc, true);
        assert!(coloured.contains("\x1b[1;31mNOT LIVE"), "{coloured}");
        assert!(coloured.contains("\x1b[1;31mSTUCK 40s"), "{coloured}");
    }
}
