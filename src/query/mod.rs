//! Metric names and queries: the KEDA OTel add-on's grammar, and a PromQL sanity check.
//!
//! The add-on reads `metricQuery` as `op(name{k=v,k2="v2"})` where `op` is one of
//! sum|avg|min|max|count (optional), the label selector is optional and only exact `=`
//! matches exist. Metric names may contain `:` (vLLM, Prometheus recording rules) and, since
//! OTLP pushes OTel-style names, `.`, `-` and `/`. Everything else — `!=`, `=~`, arithmetic,
//! a second metric name, unbalanced parentheses — the add-on would silently misread, so it is
//! refused here with the 1-based column of the error.

mod addon;
mod promql;

pub use addon::{AddonQuery, Aggregation, is_matchable_value, parse_addon_query};
pub use promql::check_promql;

/// A query that does not parse: the 1-based column (in characters; 0 when the parser gives
/// no position) and what is wrong there.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{}", position(*.column), .message)]
pub struct QueryError {
    pub column: usize,
    pub message: String,
}

fn position(column: usize) -> String {
    if column == 0 {
        String::new()
    } else {
        format!("at column {column}: ")
    }
}

/// Is `name` a metric name the add-on and the collector can carry?
pub fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if is_name_start(c) => chars.all(is_name_char),
        _ => false,
    }
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.' | '-' | '/')
}

fn is_label_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names() {
        for n in [
            "vllm:num_requests_waiting",
            "_x",
            ":x",
            "http.server.duration",
            "a-b/c",
        ] {
            assert!(is_metric_name(n), "{n}");
        }
        for n in ["", "9x", "x y", "x{", "x\"", "x$", "-x", ".x"] {
            assert!(!is_metric_name(n), "{n}");
        }
    }
}
