//! Parser for `/etc/ocfs2/cluster.conf`, the o2cb cluster layout (ocfs2-tools
//! o2cb_ctl/jconfig.c, o2cb_config.c, ocfs2.cluster.conf.5; docs/interfaces.md §5.5).
//!
//! A stanza header is an identifier at column 0 followed by `:`; its
//! attributes are indented `name = value` lines (a trailing `\` continues the
//! line); a blank line ends the stanza; `#` at the start of a line is a
//! comment. Stanzas used here: `cluster:` (`name`, `heartbeat_mode`,
//! `node_count`), `node:` (`name`, `number`, `ip_address`, `ip_port`,
//! `cluster`). A bad line or an incomplete node stanza is a `ParseIssue`; the
//! rest of the file is still used.

use std::collections::BTreeMap;

use serde::Serialize;

use super::sysconfig::ParseIssue;

/// `ip_port` when a node stanza does not say (o2cb add-node default).
pub const DEFAULT_PORT: u16 = 7777;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfCluster {
    pub name: String,
    pub heartbeat_mode: Option<String>,
    pub node_count: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfNode {
    pub name: String,
    pub number: u8,
    pub ip_address: Option<String>,
    pub ip_port: u16,
    pub cluster: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClusterConf {
    pub clusters: Vec<ConfCluster>,
    pub nodes: Vec<ConfNode>,
    pub issues: Vec<ParseIssue>,
}

impl ClusterConf {
    pub fn cluster(&self, name: &str) -> Option<&ConfCluster> {
        self.clusters.iter().find(|c| c.name == name)
    }

    pub fn nodes_of<'a>(&'a self, cluster: &'a str) -> impl Iterator<Item = &'a ConfNode> + 'a {
        self.nodes.iter().filter(move |n| n.cluster == cluster)
    }
}

struct Stanza {
    kind: String,
    line: usize,
    attrs: BTreeMap<String, String>,
}

pub fn parse_cluster_conf(text: &str) -> ClusterConf {
    let mut conf = ClusterConf::default();
    let mut stanzas = Vec::new();
    let mut current: Option<Stanza> = None;
    for (number, line) in logical_lines(text) {
        if line.trim().is_empty() {
            stanzas.extend(current.take());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            let Some(stanza) = current.as_mut() else {
                conf.issue(number, "attribute outside a stanza");
                continue;
            };
            match line.trim().split_once('=') {
                Some((key, value)) if !key.trim().is_empty() => {
                    stanza
                        .attrs
                        .insert(key.trim().to_string(), value.trim().to_string());
                }
                _ => conf.issue(number, "not a `name = value` attribute"),
            }
            continue;
        }
        stanzas.extend(current.take());
        match line.trim_end().strip_suffix(':') {
            Some(kind) if !kind.is_empty() && kind.chars().all(is_ident) => {
                current = Some(Stanza {
                    kind: kind.to_string(),
                    line: number,
                    attrs: BTreeMap::new(),
                });
            }
            _ => conf.issue(number, "not a stanza header (`name:`)"),
        }
    }
    stanzas.extend(current);
    for stanza in stanzas {
        conf.add(stanza);
    }
    conf.issues.sort_by_key(|issue| issue.line);
    conf
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Lines joined across `\`-newline, with the number of their first line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, line) in text.lines().enumerate() {
        let (start, mut joined) = pending.take().unwrap_or((index + 1, String::new()));
        match line.strip_suffix('\\') {
            Some(head) => {
                joined.push_str(head);
                pending = Some((start, joined));
            }
            None => {
                joined.push_str(line);
                lines.push((start, joined));
            }
        }
    }
    lines.extend(pending);
    lines
}

impl ClusterConf {
    fn issue(&mut self, line: usize, message: &str) {
        self.issues.push(ParseIssue {
            line,
            message: message.to_string(),
        });
    }

    fn add(&mut self, stanza: Stanza) {
        let get = |key: &str| stanza.attrs.get(key).filter(|v| !v.is_empty()).cloned();
        match stanza.kind.as_str() {
            "cluster" => match get("name") {
                Some(name) => self.clusters.push(ConfCluster {
                    name,
                    heartbeat_mode: get("heartbeat_mode"),
                    node_count: get("node_count").and_then(|v| v.parse().ok()),
                }),
                None => self.issue(stanza.line, "cluster stanza without a name"),
            },
            "node" => {
                let number = get("number").and_then(|v| v.parse::<u8>().ok());
                let port = match get("ip_port") {
                    None => Some(DEFAULT_PORT),
                    Some(v) => v.parse().ok(),
                };
                match (get("name"), number, port, get("cluster")) {
                    (Some(name), Some(number), Some(ip_port), Some(cluster)) if number < 255 => {
                        self.nodes.push(ConfNode {
                            name,
                            number,
                            ip_address: get("ip_address"),
                            ip_port,
                            cluster,
                        })
                    }
                    _ => self.issue(
                        stanza.line,
                        "node stanza needs name, number (0-254), cluster and a valid ip_port",
                    ),
                }
            }
            // `heartbeat:` (global regions) and unknown stanzas are not compared.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lab's cluster.conf (tests/lab/guest/cluster.conf), as
    /// `o2cb list-cluster labclu` printed it in the captures.
    pub const LAB_CONF: &str = "cluster:\n\tnode_count = 2\n\theartbeat_mode = local\n\tname = labclu\n\n\
        node:\n\tip_port = 7777\n\tip_address = 10.99.0.1\n\tnumber = 1\n\tname = n1\n\tcluster = labclu\n\n\
        node:\n\tip_port = 7777\n\tip_address = 10.99.0.2\n\tnumber = 2\n\tname = n2\n\tcluster = labclu\n";

    #[test]
    fn parses_the_lab_file() {
        let conf = parse_cluster_conf(LAB_CONF);
        assert!(conf.issues.is_empty(), "{:?}", conf.issues);
        assert_eq!(
            conf.cluster("labclu"),
            Some(&ConfCluster {
                name: "labclu".into(),
                heartbeat_mode: Some("local".into()),
                node_count: Some(2),
            })
        );
        let nodes: Vec<&ConfNode> = conf.nodes_of("labclu").collect();
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[1].name, "n2");
        assert_eq!(nodes[1].number, 2);
        assert_eq!(nodes[1].ip_address.as_deref(), Some("10.99.0.2"));
    }

    #[test]
    fn comments_spaces_continuations_and_default_port() {
        let conf = parse_cluster_conf(
            "# managed by hand\nnode:\n    name = n3\n    number = 3\n    cluster = \\\nlabclu\n\n",
        );
        assert!(conf.issues.is_empty(), "{:?}", conf.issues);
        assert_eq!(conf.nodes[0].cluster, "labclu");
        assert_eq!(conf.nodes[0].ip_port, DEFAULT_PORT);
    }

    #[test]
    fn garbage_and_truncation_are_named_by_line() {
        let conf = parse_cluster_conf(
            "\tname = orphan\ncluster: trailing\nnode:\n\tjunk\n\tname = n1\n\nnode:\n\tname = n2\n\tnumber = 300\n\tcluster = labclu\n\ncluster:\n\theartbeat_mode = local\n\nnode:\n\tname = n4\n\tnum",
        );
        let lines: Vec<usize> = conf.issues.iter().map(|i| i.line).collect();
        // orphan attribute, bad header, incomplete node (3), bad attribute,
        // number out of range (7), nameless cluster (12), truncated node (15, 17).
        assert_eq!(lines, vec![1, 2, 3, 4, 7, 12, 15, 17], "{:?}", conf.issues);
        assert!(conf.nodes.is_empty());
        assert!(parse_cluster_conf("").issues.is_empty());
    }
}
