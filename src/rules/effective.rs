//! The effective settings of every rule, as `--check-config` prints them
//! after the configuration: each rule's defaults (docs/rules.md) with its
//! `[remediation.rules.<name>]` overrides applied, so an operator sees what
//! the engine will use without reading the source. Printed as TOML comments,
//! so the output stays a configuration file that loads unchanged.

use std::fmt::Write as _;

use super::config::RemediationConfig;
use super::RULES;

/// One commented `[remediation.rules.<name>]` table per rule.
pub fn render(remediation: &RemediationConfig) -> String {
    let show = |d: std::time::Duration| humantime::format_duration(d).to_string();
    let mut out = String::from(
        "\n# Effective settings of every rule (defaults with [remediation.rules.*] applied):\n",
    );
    for rule in RULES {
        let s = rule.defaults().with(remediation.rules.get(rule.name()));
        let _ = writeln!(out, "# [remediation.rules.{}]", rule.name());
        let _ = writeln!(out, "# enabled = {}", s.enabled);
        let _ = writeln!(out, "# alert_only = {}", s.alert_only);
        let _ = writeln!(out, "# for = \"{}\"", show(s.r#for));
        let _ = writeln!(out, "# cooldown = \"{}\"", show(s.cooldown));
        let _ = writeln!(out, "# backoff = \"{}\"", show(s.backoff));
        let _ = writeln!(out, "# backoff_max = \"{}\"", show(s.backoff_max));
        let _ = writeln!(out, "# max_attempts = {}", s.max_attempts);
        let _ = writeln!(out, "# failure_window = \"{}\"", show(s.failure_window));
        let _ = writeln!(
            out,
            "# max_precondition_changed = {}",
            s.max_precondition_changed
        );
        let _ = writeln!(
            out,
            "# actions_per_hour = {}",
            s.budget_share(remediation.actions_per_hour)
        );
        if !s.stop_services.is_empty() {
            let _ = writeln!(out, "# stop_services = {:?}", s.stop_services);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_with_its_overrides() {
        let mut config = RemediationConfig::default();
        let text = render(&config);
        for rule in RULES {
            assert!(
                text.contains(&format!("# [remediation.rules.{}]\n", rule.name())),
                "{text}"
            );
        }
        let name = RULES[0].name();
        config.rules.insert(
            name.to_string(),
            toml::from_str("max_attempts = 7\nenabled = false\n").unwrap(),
        );
        let text = render(&config);
        let section = text
            .split(&format!("# [remediation.rules.{name}]\n"))
            .nth(1)
            .and_then(|rest| rest.split("# [").next())
            .unwrap();
        assert!(section.contains("# max_attempts = 7\n"), "{section}");
        assert!(section.contains("# enabled = false\n"), "{section}");
    }
}
