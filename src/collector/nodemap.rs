//! The node bitmap format shared by o2hb, o2net and o2dlm debugfs files.
//!
//! fs/ocfs2/cluster/heartbeat.c (`o2hb_debug_open`), netdebug.c and
//! dlm/dlmdebug.c print every set bit as `%d ` and end with `\n`: nodes 1 and
//! 2 are `"1 2 \n"`, no node is `"\n"` (docs/interfaces.md §2). An empty file (no
//! newline at all) or a token that is not a node number 0–254 is an error.

use std::collections::BTreeSet;

use super::parse_error::ParseError;

pub type NodeSet = BTreeSet<u8>;

/// A whole bitmap file.
pub fn parse_node_map_file(text: &str) -> Result<NodeSet, ParseError> {
    if text.is_empty() {
        return Err(ParseError::EmptyFile);
    }
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    if lines.any(|l| !l.trim().is_empty()) {
        return Err(ParseError::ExtraLines);
    }
    parse_node_list(first)
}

/// Space-separated node numbers, as in a bitmap file or a `dlm_state` map.
pub fn parse_node_list(text: &str) -> Result<NodeSet, ParseError> {
    text.split_whitespace()
        .map(|token| match token.parse::<u8>() {
            Ok(n) if n < 255 => Ok(n),
            _ => Err(ParseError::NotANodeNumber(token.to_string())),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmaps_from_the_captures_and_garbage() {
        // o2hb/livenodes and o2net/connected_nodes, captures/n1-02-*.
        assert_eq!(parse_node_map_file("1 2 \n"), Ok(NodeSet::from([1, 2])));
        assert_eq!(parse_node_map_file("2 \n"), Ok(NodeSet::from([2])));
        assert_eq!(parse_node_map_file("\n"), Ok(NodeSet::new()));
        assert_eq!(parse_node_map_file("1 2"), Ok(NodeSet::from([1, 2])));
        assert!(parse_node_map_file("").is_err());
        assert!(parse_node_map_file("1 x \n").is_err());
        assert!(parse_node_map_file("255 \n").is_err());
        assert!(parse_node_map_file("1 \n2 \n").is_err());
        assert!(parse_node_map_file("-1 \n").is_err());
    }
}
