//! Reading PostgreSQL's `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` in the plan tests.

use serde_json::Value;

/// Outbox rows the plan's scans of `outbox` visited: those they returned and those their
/// filters removed, over all their loops.
pub fn outbox_rows_visited(node: &Value) -> f64 {
    let own = if node["Relation Name"] == "outbox" {
        let returned = node["Actual Rows"].as_f64().unwrap_or(0.0);
        let removed = node["Rows Removed by Filter"].as_f64().unwrap_or(0.0);
        (returned + removed) * node["Actual Loops"].as_f64().unwrap_or(1.0)
    } else {
        0.0
    };
    let children = node["Plans"]
        .as_array()
        .map_or(0.0, |plans| plans.iter().map(outbox_rows_visited).sum());
    own + children
}

/// Shared buffers the whole plan hit or read (a node's counts include its children's).
pub fn pages_touched(root: &Value) -> f64 {
    ["Shared Hit Blocks", "Shared Read Blocks"]
        .iter()
        .map(|field| root[*field].as_f64().unwrap_or(0.0))
        .sum()
}
