//! Renders a status `Document` as the `/` page: server-side HTML with an
//! inline stylesheet, no script, refreshed by `<meta http-equiv="refresh">`,
//! laid out for a phone as well as a desk. Every text from the host (mount
//! paths, labels, kernel messages, evidence) goes through `escape`. Rows
//! carry their tone and tags as CSS classes (`row tone-bad stuck`, `row
//! tone-bad down`) so that what is wrong stands out, and tests can find it in the DOM.

use std::fmt::Write as _;
use std::time::Duration;

use super::render::{Block, Cell, Document, Row, Tone};

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
:root{color-scheme:light dark;--bg:#fff;--fg:#1b1f24;--muted:#6a737d;--line:#d8dee4;
--good:#1a7f37;--warn:#9a6700;--bad:#cf222e;--badbg:#ffebe9;--warnbg:#fff8c5;--goodbg:#dafbe1}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#8b949e;--line:#30363d;
--good:#3fb950;--warn:#d29922;--bad:#f85149;--badbg:#3d1418;--warnbg:#3b2e05;--goodbg:#0f2e1a}}
*{box-sizing:border-box}
body{margin:0;padding:12px;background:var(--bg);color:var(--fg);
font:15px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}
main{max-width:1100px;margin:0 auto}
header h1{font-size:1.1em;margin:0 0 6px}
.verdict{padding:10px 12px;border-radius:6px;font-weight:600;overflow-wrap:anywhere}
.verdict.ok{background:var(--goodbg);color:var(--good)}
.verdict.warning,.verdict.unknown{background:var(--warnbg);color:var(--warn)}
.verdict.critical{background:var(--badbg);color:var(--bad)}
.verdict ul{margin:6px 0 0;padding-left:20px;font-weight:400}
.origin,.muted{color:var(--muted)}
.origin{font-size:.85em;margin:6px 0 0}
nav{font-size:.9em;margin:6px 0 0}nav a{margin-right:12px}
section{margin-top:18px}
h2{font-size:1em;margin:0 0 6px;border-bottom:1px solid var(--line);padding-bottom:3px}
dl{display:flex;flex-wrap:wrap;gap:4px 18px;margin:0}
dl div{display:flex;gap:6px}dt{color:var(--muted)}dd{margin:0}
p.line{margin:2px 0;overflow-wrap:anywhere}
table{border-collapse:collapse;width:100%;font-size:.92em}
th{text-align:left;color:var(--muted);font-weight:500;border-bottom:1px solid var(--line);padding:3px 8px 3px 0}
td{padding:4px 8px 4px 0;vertical-align:top;overflow-wrap:anywhere}
tr.row{border-top:1px solid var(--line)}
tr.tone-bad{background:var(--badbg)}tr.tone-warn{background:var(--warnbg)}
tr.row.tone-bad td:first-child{box-shadow:inset 4px 0 var(--bad);padding-left:8px}
tr.row.tone-warn td:first-child{box-shadow:inset 4px 0 var(--warn);padding-left:8px}
tr.details-row.tone-bad td:first-child{box-shadow:inset 4px 0 var(--bad);padding-left:8px}
tr.details-row.tone-warn td:first-child{box-shadow:inset 4px 0 var(--warn);padding-left:8px}
td.details{padding-top:0;padding-bottom:6px;font-size:.88em}
td.details div{margin:1px 0}
.good{color:var(--good)}.warn{color:var(--warn)}.bad{color:var(--bad);font-weight:600}
td.details .bad{font-weight:400}
@media (max-width:640px){
body{padding:8px;font-size:14px}
table,tbody,tr,td{display:block;width:100%}
thead{display:none}
tr.row{padding:6px 8px;margin-top:8px;border:1px solid var(--line);border-radius:6px}
tr.row.has-details{border-bottom:0;border-radius:6px 6px 0 0}
tr.details-row{border:1px solid var(--line);border-top:0;border-radius:0 0 6px 6px;padding:0 8px 6px}
tr td{padding:1px 0!important;box-shadow:none!important}
tr.row td[data-label]::before{content:attr(data-label) ': ';color:var(--muted);font-weight:400}
tr.row td:first-child{font-weight:600}
}
";

pub fn render(document: &Document, refresh: Duration) -> String {
    let mut out = String::new();
    let state = document.verdict.state.as_str();
    let title = format!("OCFS2 {state}");
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"{}\">\
         <title>{} - ocfs2-watchdog</title><style>{STYLE}</style></head><body><main>",
        refresh.as_secs().max(1),
        escape(&title),
    );
    out.push_str("<header><h1>ocfs2-watchdog</h1>");
    verdict_html(&mut out, document);
    let _ = write!(
        out,
        "<p class=\"origin\">{}</p><nav><a href=\"metrics\">/metrics</a>\
         <a href=\"status\">/status (JSON)</a><a href=\"healthz\">/healthz</a>\
         <a href=\"readyz\">/readyz</a></nav></header>",
        escape(&document.origin)
    );
    for section in &document.sections {
        let _ = write!(
            out,
            "<section id=\"{}\"><h2>{}</h2>",
            section.id,
            escape(&section.title)
        );
        for block in &section.blocks {
            match block {
                Block::Pairs(pairs) => {
                    out.push_str("<dl>");
                    for (key, value) in pairs {
                        let _ = write!(
                            out,
                            "<div><dt>{}</dt><dd class=\"{}\">{}</dd></div>",
                            escape(key),
                            value.tone.as_str(),
                            escape(&value.text)
                        );
                    }
                    out.push_str("</dl>");
                }
                Block::Lines(lines) => {
                    for line in lines {
                        line_html(&mut out, line);
                    }
                }
                Block::Table { headers, rows } => table_html(&mut out, headers, rows),
            }
        }
        out.push_str("</section>");
    }
    out.push_str("</main></body></html>\n");
    out
}

fn verdict_html(out: &mut String, document: &Document) {
    let verdict = &document.verdict;
    let state = verdict.state.as_str();
    let _ = write!(
        out,
        "<div class=\"verdict {}\" id=\"verdict\">OCFS2 {state}",
        state.to_ascii_lowercase()
    );
    let problems: Vec<_> = verdict
        .findings
        .iter()
        .filter(|f| f.state != super::check::State::Ok)
        .collect();
    if problems.is_empty() {
        let _ = write!(out, " - {}", escape(&verdict.summary));
    } else {
        out.push_str("<ul>");
        for finding in problems {
            let _ = write!(
                out,
                "<li class=\"{}\">{}</li>",
                Tone::of_state(finding.state).as_str(),
                escape(&finding.text)
            );
        }
        out.push_str("</ul>");
    }
    out.push_str("</div>");
}

fn line_html(out: &mut String, line: &Cell) {
    let _ = write!(
        out,
        "<p class=\"line {}\">{}</p>",
        line.tone.as_str(),
        escape(&line.text)
    );
}

fn table_html(out: &mut String, headers: &[&str], rows: &[Row]) {
    out.push_str("<table><thead><tr>");
    for header in headers {
        let _ = write!(out, "<th>{}</th>", escape(header));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        let tone = format!("tone-{}", row.tone.as_str());
        let mut classes = vec!["row", tone.as_str()];
        classes.extend(row.tags.iter().copied());
        if !row.details.is_empty() {
            classes.push("has-details");
        }
        let _ = write!(out, "<tr class=\"{}\">", classes.join(" "));
        for (i, cell) in row.cells.iter().enumerate() {
            let label = headers.get(i).copied().unwrap_or("");
            // The first cell names the row; it needs no label on a phone.
            let label = if i == 0 {
                String::new()
            } else {
                format!(" data-label=\"{}\"", escape(label))
            };
            let _ = write!(
                out,
                "<td class=\"{}\"{label}>{}</td>",
                cell.tone.as_str(),
                escape(&cell.text)
            );
        }
        out.push_str("</tr>");
        if !row.details.is_empty() {
            let _ = write!(
                out,
                "<tr class=\"details-row tone-{}\"><td class=\"details\" colspan=\"{}\">",
                row.tone.as_str(),
                headers.len().max(1)
            );
            for detail in &row.details {
                let _ = write!(
                    out,
                    "<div class=\"{}\">{}</div>",
                    detail.tone.as_str(),
                    escape(&detail.text)
                );
            }
            out.push_str("</td></tr>");
        }
    }
    out.push_str("</tbody></table>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_text_is_escaped_and_problem_rows_are_marked() {
        use crate::status::check::evaluate;
        use crate::status::model::{MountView, Overview, VolumeView};
        use crate::status::render::document;
        use crate::status::thresholds::CheckConfig;
        let overview = Overview {
            volumes: vec![VolumeView {
                label: "<img src=x onerror=alert(1)>".into(),
                mounts: vec![MountView {
                    mountpoint: "/srv/\"><script>alert(1)</script>".into(),
                    mounted: true,
                    stuck: true,
                    ..MountView::default()
                }],
                ..VolumeView::default()
            }],
            ..Overview::default()
        };
        let config = CheckConfig::default();
        let verdict = evaluate(&overview, &config);
        let page = render(
            &document(&overview, verdict, "o".into(), &config),
            Duration::from_secs(5),
        );
        assert!(
            !page.contains("<script>") && !page.contains("<img"),
            "{page}"
        );
        assert!(page.contains("/srv/&quot;&gt;&lt;script&gt;"), "{page}");
        assert!(page.contains("<tr class=\"row tone-bad stuck"), "{page}");
        assert!(page.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
    }

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("/srv/<script>\"a\" & 'b'"),
            "/srv/&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;"
        );
    }
}
