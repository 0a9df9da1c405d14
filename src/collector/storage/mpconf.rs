//! How long multipath queues I/O with no usable path, from `/etc/multipath.conf`.
//!
//! Grammar (multipath.conf(5), libmultipath/parser.c): `#`/`!` comments,
//! `keyword value` lines and `section {` … `}` blocks; values may be quoted.
//! Only the keys that decide the stall time are kept: `no_path_retry`
//! (`fail`, `queue` or a number of checker intervals), `polling_interval`
//! (seconds) and `features` (`queue_if_no_path` queues forever when
//! `no_path_retry` is unset). Precedence as multipathd applies it:
//! `overrides` > `multipaths/multipath` (by wwid) > `devices/device` (by
//! vendor/product) > `defaults` > built-in defaults (polling_interval 5,
//! no_path_retry unset = fail). Vendor/product in `device` are regular
//! expressions; they are matched here as anchored prefixes up to their first
//! metacharacter, which covers the usual literal names. The built-in hardware
//! table (per-array defaults) is not reproduced.

use serde::Serialize;

pub const DEFAULT_POLLING_INTERVAL: u32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoPathRetry {
    Fail,
    Queue,
    Checks(u32),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Settings {
    pub no_path_retry: Option<NoPathRetry>,
    pub polling_interval: Option<u32>,
    pub queue_if_no_path: Option<bool>,
}

impl Settings {
    fn overlay(&mut self, other: &Settings) {
        self.no_path_retry = other.no_path_retry.or(self.no_path_retry);
        self.polling_interval = other.polling_interval.or(self.polling_interval);
        self.queue_if_no_path = other.queue_if_no_path.or(self.queue_if_no_path);
    }

    /// Seconds I/O waits with all paths down before it fails; infinite when
    /// queueing forever.
    pub fn stall_seconds(&self) -> f64 {
        let interval = f64::from(self.polling_interval.unwrap_or(DEFAULT_POLLING_INTERVAL));
        match self.no_path_retry {
            Some(NoPathRetry::Queue) => f64::INFINITY,
            Some(NoPathRetry::Checks(n)) => f64::from(n) * interval,
            Some(NoPathRetry::Fail) => 0.0,
            None if self.queue_if_no_path == Some(true) => f64::INFINITY,
            None => 0.0,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MultipathConf {
    pub defaults: Settings,
    pub devices: Vec<(String, String, Settings)>,
    pub multipaths: Vec<(String, Settings)>,
    pub overrides: Settings,
    /// `polling_interval` only exists in `defaults`.
    pub invalid_values: usize,
}

impl MultipathConf {
    /// The settings multipathd applies to a map.
    pub fn effective(&self, wwid: &str, vendor: &str, product: &str) -> Settings {
        let mut settings = self.defaults.clone();
        for (v, p, device) in &self.devices {
            if pattern_matches(v, vendor) && pattern_matches(p, product) {
                settings.overlay(device);
            }
        }
        for (id, multipath) in &self.multipaths {
            if id == wwid {
                settings.overlay(multipath);
            }
        }
        settings.overlay(&self.overrides);
        settings.polling_interval = self.defaults.polling_interval;
        settings
    }
}

fn pattern_matches(pattern: &str, value: &str) -> bool {
    let literal: String = pattern
        .trim_start_matches('^')
        .chars()
        .take_while(|c| !".*+?[](){}|\\$".contains(*c))
        .collect();
    value.trim().starts_with(&literal)
}

/// One token: a word, a quoted string, `{`, `}` or the end of a line.
fn tokenize(text: &str) -> Vec<Vec<String>> {
    let mut lines = Vec::new();
    for raw in text.lines() {
        let mut words = Vec::new();
        let mut chars = raw.chars().peekable();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                chars.next();
            } else if c == '#' || c == '!' {
                break;
            } else if c == '"' {
                chars.next();
                let word: String = chars.by_ref().take_while(|&c| c != '"').collect();
                words.push(word);
            } else if c == '{' || c == '}' {
                chars.next();
                words.push(c.to_string());
            } else {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == '{' || c == '}' || c == '#' {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                words.push(word);
            }
        }
        if !words.is_empty() {
            lines.push(words);
        }
    }
    lines
}

pub fn parse_multipath_conf(text: &str) -> MultipathConf {
    let mut conf = MultipathConf::default();
    // The section path, e.g. ["devices", "device"]; each open block pushes.
    let mut path: Vec<String> = Vec::new();
    let mut current = Settings::default();
    let mut ids = (String::new(), String::new(), String::new()); // vendor, product, wwid
    for words in tokenize(text) {
        let mut words = words.into_iter().peekable();
        while let Some(word) = words.next() {
            match word.as_str() {
                "}" => {
                    match path.join("/").as_str() {
                        "defaults" => conf.defaults = std::mem::take(&mut current),
                        "overrides" => conf.overrides = std::mem::take(&mut current),
                        "devices/device" => {
                            let (v, p, _) = std::mem::take(&mut ids);
                            conf.devices.push((v, p, std::mem::take(&mut current)));
                        }
                        "multipaths/multipath" => {
                            let (_, _, w) = std::mem::take(&mut ids);
                            conf.multipaths.push((w, std::mem::take(&mut current)));
                        }
                        _ => {}
                    }
                    path.pop();
                }
                _ if words.peek().map(String::as_str) == Some("{") => {
                    words.next();
                    path.push(word);
                    current = Settings::default();
                }
                key => {
                    let mut value = Vec::new();
                    while let Some(w) = words.next_if(|w| w != "{" && w != "}") {
                        value.push(w);
                    }
                    let value = value.join(" ");
                    apply(
                        &mut conf.invalid_values,
                        &mut current,
                        &mut ids,
                        key,
                        &value,
                    );
                }
            }
        }
    }
    conf
}

fn apply(
    invalid: &mut usize,
    settings: &mut Settings,
    ids: &mut (String, String, String),
    key: &str,
    value: &str,
) {
    match key {
        "no_path_retry" => {
            settings.no_path_retry = match value {
                "fail" => Some(NoPathRetry::Fail),
                "queue" => Some(NoPathRetry::Queue),
                n => match n.parse::<u32>() {
                    Ok(0) => Some(NoPathRetry::Fail),
                    Ok(n) => Some(NoPathRetry::Checks(n)),
                    Err(_) => {
                        *invalid += 1;
                        None
                    }
                },
            }
        }
        "polling_interval" => match value.parse::<u32>() {
            Ok(n) if n > 0 => settings.polling_interval = Some(n),
            _ => *invalid += 1,
        },
        "features" => {
            settings.queue_if_no_path =
                Some(value.split_whitespace().any(|w| w == "queue_if_no_path"))
        }
        "vendor" => ids.0 = value.to_string(),
        "product" => ids.1 = value.to_string(),
        "wwid" => ids.2 = value.to_string(),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = r#"
defaults {
	user_friendly_names yes
	polling_interval 10   # seconds
	no_path_retry 12
}
devices {
	device {
		vendor "LIO-ORG"
		product ".*"
		no_path_retry queue
	}
	device {
		vendor "IET"
		product "VIRTUAL-DISK"
		features "1 queue_if_no_path"
	}
}
multipaths {
	multipath {
		wwid 36001405aaaa
		alias shared
		no_path_retry 3
	}
}
"#;

    #[test]
    fn precedence() {
        let conf = parse_multipath_conf(CONF);
        assert_eq!(conf.invalid_values, 0);
        assert_eq!(
            conf.effective("x", "QEMU", "HARDDISK").stall_seconds(),
            120.0
        );
        assert_eq!(
            conf.effective("x", "LIO-ORG", "block0").stall_seconds(),
            f64::INFINITY
        );
        // no_path_retry from defaults wins over features, as in multipathd.
        assert_eq!(
            conf.effective("x", "IET", "VIRTUAL-DISK").stall_seconds(),
            120.0
        );
        assert_eq!(
            conf.effective("36001405aaaa", "LIO-ORG", "x")
                .stall_seconds(),
            30.0
        );
    }

    #[test]
    fn defaults_and_garbage() {
        assert_eq!(
            parse_multipath_conf("")
                .effective("", "", "")
                .stall_seconds(),
            0.0
        );
        let conf =
            parse_multipath_conf("defaults {\n no_path_retry soon\n polling_interval 0\n}\n");
        assert_eq!(conf.invalid_values, 2);
        assert_eq!(conf.effective("", "", "").stall_seconds(), 0.0);
        let conf = parse_multipath_conf("defaults { features \"1 queue_if_no_path\" }");
        assert_eq!(conf.effective("", "", "").stall_seconds(), f64::INFINITY);
        let conf = parse_multipath_conf("defaults {\n no_path_retry 4\n}\n}\n}");
        assert_eq!(conf.effective("", "", "").stall_seconds(), 20.0);
    }
}
