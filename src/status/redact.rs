//! What `/` and `/status` leave out when anyone on the network may read
//! them: a listener that is not loopback and asks for no credentials
//! (`[web] show_sensitive_details = false`, the default, decided in
//! `http::security`). The rest of the page stays: counts, kinds, states.
//!
//! Left out: who called the admin API (audit and maintenance `caller`, the
//! caller in a pause reason), the text of kernel log messages (an event
//! keeps its kind and time) and iSCSI names (IQN, EUI, NAA: they name the
//! SAN and the initiator a forged login would need). Everything is done on
//! the JSON form, so the `/status` document and the overview behind the
//! page are redacted by the same walk, including the audit lines the
//! engine's report carries as raw JSON text.

use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

use super::model::Overview;

/// What stands where text was left out.
pub const HIDDEN: &str = "(hidden)";

/// Whether `/` and `/status` leave the sensitive details out; carried to
/// the handlers as a request extension.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Redaction(pub bool);

/// Redacts a `/status` document (or any part of one) in place.
pub fn redact_value(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let kernel_event = map.contains_key("event") && map.contains_key("message");
            for (key, field) in map.iter_mut() {
                match (key.as_str(), &mut *field) {
                    ("caller", Value::String(text)) if !text.is_empty() => {
                        *text = HIDDEN.to_string();
                    }
                    ("message", Value::String(text)) if kernel_event => {
                        *text = HIDDEN.to_string();
                    }
                    ("recent_audit", Value::Array(lines)) => {
                        lines.iter_mut().for_each(redact_json_line);
                    }
                    _ => redact_value(field),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        Value::String(text) => *text = redact_text(text),
        _ => {}
    }
}

/// An audit line kept as JSON text: parsed, redacted, written back. A
/// line that does not parse is not shown at all.
fn redact_json_line(line: &mut Value) {
    let Value::String(text) = line else {
        redact_value(line);
        return;
    };
    *text = match serde_json::from_str::<Value>(text) {
        Ok(mut record) => {
            redact_value(&mut record);
            record.to_string()
        }
        Err(_) => HIDDEN.to_string(),
    };
}

/// The overview behind the page, redacted the same way. A failure to
/// round-trip (it cannot happen with the model as it is) shows nothing
/// rather than everything.
pub fn redact_overview(overview: &Overview) -> Overview {
    let Ok(mut value) = serde_json::to_value(overview) else {
        return Overview::default();
    };
    redact_value(&mut value);
    serde_json::from_value(value).unwrap_or_default()
}

fn patterns() -> Option<&'static (Regex, Regex)> {
    static PATTERNS: OnceLock<Option<(Regex, Regex)>> = OnceLock::new();
    PATTERNS
        .get_or_init(|| {
            let names = Regex::new(
                r"(?i)\b(iqn)\.\d{4}-\d{2}\.[^\s,;'\x22)\]]+|\b(eui)\.[0-9a-f]{16}\b|\b(naa)\.[0-9a-f]{16,32}\b",
            );
            let by = Regex::new(r"(POST /[a-z]+ by ).*");
            names.ok().zip(by.ok())
        })
        .as_ref()
}

/// iSCSI names and the admin caller taken out of free text.
pub fn redact_text(text: &str) -> String {
    let Some((names, by)) = patterns() else {
        return HIDDEN.to_string();
    };
    let text = names.replace_all(text, |c: &regex::Captures<'_>| {
        let kind = c
            .get(1)
            .or(c.get(2))
            .or(c.get(3))
            .map_or("", |m| m.as_str());
        format!("{kind}.{HIDDEN}")
    });
    by.replace_all(&text, format!("${{1}}{HIDDEN}").as_str())
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn callers_kernel_text_and_iscsi_names_are_left_out() {
        let audit = json!({"rule": "x", "caller": "10.1.2.3:4711", "detail": "ok"}).to_string();
        let mut document = json!({
            "kernel_log": {"recent": [
                {"event": "fence", "timestamp_seconds": 1.0,
                 "message": "o2hb: node 2 fenced by 10.0.0.9"}
            ]},
            "remediation": {
                "pause_reason": "paused through POST /pause by 192.0.2.7:5123",
                "maintenance": {"reason": "disk swap", "caller": "uid 0 on admin.sock"},
                "recent_audit": [audit, "{torn"],
            },
            "overview": {"volumes": [{"storage": {"disks": [{"session": {
                "name": "session3",
                "target": "iqn.2003-01.org.linux-iscsi.san:vol1",
                "initiator": "iqn.1994-05.com.redhat:node1"
            }}]}}]},
            "collectors": {"iscsi": {"error": "session to eui.0123456789abcdef, naa.60014055f3a7bd6e1a94e3b9cd8c9e26 failed"}},
        });
        redact_value(&mut document);
        let text = document.to_string();
        for secret in [
            "10.1.2.3",
            "10.0.0.9",
            "fenced",
            "192.0.2.7",
            "uid 0",
            "linux-iscsi",
            "redhat",
            "0123456789abcdef",
            "60014055f3a7",
            "torn",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        // Kinds, names of things and reasons stay.
        assert_eq!(document["kernel_log"]["recent"][0]["event"], "fence");
        assert_eq!(
            document["remediation"]["maintenance"]["reason"],
            "disk swap"
        );
        assert_eq!(
            document["remediation"]["pause_reason"],
            "paused through POST /pause by (hidden)"
        );
        let session = &document["overview"]["volumes"][0]["storage"]["disks"][0]["session"];
        assert_eq!(session["name"], "session3");
        assert_eq!(session["target"], "iqn.(hidden)");
        let line: Value =
            serde_json::from_str(document["remediation"]["recent_audit"][0].as_str().unwrap())
                .unwrap();
        assert_eq!(line["caller"], HIDDEN);
        assert_eq!(line["detail"], "ok");
    }

    #[test]
    fn a_message_outside_a_kernel_event_is_kept() {
        let mut value = json!({"error": {"kind": "absent", "message": "no /dev/kmsg"}});
        let before = value.clone();
        redact_value(&mut value);
        assert_eq!(value, before);
    }
}
