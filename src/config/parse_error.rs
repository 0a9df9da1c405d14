//! Turns a TOML deserialisation error into one an operator can act on: the
//! dotted key it is about (`sampler.interval`, not just a line and column)
//! and, for a duration, what a valid one looks like. `Config::parse` uses it.

/// The error's message, prefixed with the key it is about when the error
/// points into a `key = value` line or a `[table]` header.
pub fn describe(text: &str, error: &toml::de::Error) -> String {
    let message = error.to_string().trim_end().to_string();
    let message = if message.contains("expected a duration") {
        format!("{message}\n(a duration is a number and a unit, e.g. \"2s\", \"500ms\", \"1m30s\", \"1h\")")
    } else {
        message
    };
    match error.span().and_then(|span| key_at(text, span.start)) {
        Some(key) => format!("`{key}`: {message}"),
        None => message,
    }
}

/// The dotted key of the line holding byte `offset`, under the last table
/// header before it.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let mut table = String::new();
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let end = start + line.len();
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            table = trimmed
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or_default()
                .trim()
                .to_string();
            if (start..end).contains(&offset) {
                return Some(table).filter(|t| !t.is_empty());
            }
        } else if (start..end).contains(&offset) {
            let (key, _) = line.split_once('=')?;
            let key = key.trim().trim_matches('"');
            if key.is_empty() || key.starts_with('#') {
                return None;
            }
            return Some(if table.is_empty() {
                key.to_string()
            } else {
                format!("{table}.{key}")
            });
        }
        start = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> String {
        let error = toml::from_str::<crate::config::Config>(text).unwrap_err();
        describe(text, &error)
    }

    #[test]
    fn names_the_dotted_key() {
        let message = error_of("[sampler]\ninterval = \"often\"\n");
        assert!(message.starts_with("`sampler.interval`"), "{message}");
        assert!(message.contains("e.g. \"2s\""), "{message}");
        let message = error_of("[mounts]\nprobe_timeot = \"5s\"\n");
        assert!(message.starts_with("`mounts.probe_timeot`"), "{message}");
        assert!(message.contains("unknown field"), "{message}");
        let message = error_of("state_dir = 3\n");
        assert!(message.starts_with("`state_dir`"), "{message}");
    }

    #[test]
    fn finds_keys_under_nested_tables() {
        let text = "[web]\nx = 1\n[remediation.rules.o2cb_down]\nmax_attempts = \"x\"\n";
        let offset = text.find("\"x\"").unwrap();
        assert_eq!(
            key_at(text, offset).as_deref(),
            Some("remediation.rules.o2cb_down.max_attempts")
        );
    }
}
