//! Text that someone outside the daemon chose (a maintenance or pause
//! reason, an admin's or a peer's caller name, a peer's node name), made
//! safe to put in a log field.
//!
//! The text log format writes a `%` (Display) field as it is, so a reason
//! holding a newline and a forged timestamp would read as a second log line
//! (and an escape sequence could rewrite the terminal that shows it). Every
//! such field goes through `Escaped`: control characters, backslashes and
//! the Unicode line separators and direction overrides are written as Rust
//! escapes (`\n`, `\u{1b}`), everything else unchanged, so ordinary text
//! reads as before. The audit log needs nothing: it is JSON, and serde
//! escapes every control character in a string.

use std::fmt;

/// Displays its text with anything that could break or disguise a log line
/// escaped.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write as _;
        for c in self.0.chars() {
            if needs_escape(c) {
                for e in c.escape_default() {
                    f.write_char(e)?;
                }
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || c == '\\'
        // Line and paragraph separators, and the marks that reorder text.
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_start_a_line() {
        let forged = "disk swap\n2026-01-01T00:00:00Z  INFO Remediation resumed.\r\u{1b}[2K";
        let shown = Escaped(forged).to_string();
        assert!(!shown.contains('\n') && !shown.contains('\r') && !shown.contains('\u{1b}'));
        assert_eq!(
            shown,
            "disk swap\\n2026-01-01T00:00:00Z  INFO Remediation resumed.\\r\\u{1b}[2K"
        );
        // Ambiguity: a literal backslash-n is not the same as a newline.
        assert_eq!(Escaped("a\\nb").to_string(), "a\\\\nb");
        assert_eq!(
            Escaped("x\u{2028}y\u{202e}").to_string(),
            "x\\u{2028}y\\u{202e}"
        );
    }

    #[test]
    fn ordinary_text_is_unchanged() {
        let text = "kernel upgrade on node-2 (ticket #42), grüße";
        assert_eq!(Escaped(text).to_string(), text);
    }

    #[test]
    fn a_log_line_with_a_forged_reason_stays_one_line() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let reason = "test\n2026-01-01T00:00:00.000000Z  WARN Remediation resumed by an operator.";
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(reason = %Escaped(reason), "Cluster maintenance changed.");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("reason=test\\n2026"), "{text}");
    }
}
