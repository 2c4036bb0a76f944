//! Metric names and queries: the KEDA OTel add-on's grammar, and a PromQL sanity check.
//!
//! The add-on reads `metricQuery` as `op(name{k=v,k2="v2"})` where `op` is one of
//! sum|avg|min|max|count (optional), the label selector is optional and only exact `=`
//! matches exist. Metric names may contain `:` (vLLM, Prometheus recording rules) and, since
//! OTLP pushes OTel-style names, `.`, `-` and `/`. Everything else — `!=`, `=~`, arithmetic,
//! a second metric name, unbalanced parentheses — the add-on would silently misread, so it is
//! refused here with the 1-based column of the error.

use std::fmt;

use crate::keda::MetricType;

/// Aggregation across series (the `op` of `op(name{...})`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Aggregation {
    Sum,
    Avg,
    Min,
    Max,
    Count,
}

impl Aggregation {
    pub const ALL: [Aggregation; 5] = [
        Aggregation::Sum,
        Aggregation::Avg,
        Aggregation::Min,
        Aggregation::Max,
        Aggregation::Count,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Aggregation::Sum => "sum",
            Aggregation::Avg => "avg",
            Aggregation::Min => "min",
            Aggregation::Max => "max",
            Aggregation::Count => "count",
        }
    }

    pub fn parse(s: &str) -> Option<Aggregation> {
        Aggregation::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// The metric type a trigger of this aggregation needs: totals (`sum`, `count`) are
    /// averaged per pod by the HPA, means and extremes are compared as they are.
    pub fn metric_type(self) -> MetricType {
        match self {
            Aggregation::Sum | Aggregation::Count => MetricType::AverageValue,
            Aggregation::Avg | Aggregation::Min | Aggregation::Max => MetricType::Value,
        }
    }
}

/// A parsed add-on query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddonQuery {
    pub aggregation: Option<Aggregation>,
    pub metric: String,
    /// Label matchers in the order written; values without quotes.
    pub labels: Vec<(String, String)>,
}

impl AddonQuery {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Adds `key=value` unless the key is already matched; returns the existing value if any.
    pub fn scope(&mut self, key: &str, value: &str) -> Option<String> {
        match self.label(key) {
            Some(existing) => Some(existing.to_string()),
            None => {
                self.labels.push((key.to_string(), value.to_string()));
                None
            }
        }
    }
}

impl fmt::Display for AddonQuery {
    /// The canonical form: no spaces, values unquoted unless they need quotes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(op) = self.aggregation {
            write!(f, "{}(", op.as_str())?;
        }
        f.write_str(&self.metric)?;
        if !self.labels.is_empty() {
            f.write_str("{")?;
            for (i, (k, v)) in self.labels.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                if v.chars().all(is_unquoted_value_char) && !v.is_empty() {
                    write!(f, "{k}={v}")?;
                } else {
                    write!(f, "{k}=\"{v}\"")?;
                }
            }
            f.write_str("}")?;
        }
        if self.aggregation.is_some() {
            f.write_str(")")?;
        }
        Ok(())
    }
}

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

fn is_unquoted_value_char(c: char) -> bool {
    !c.is_whitespace()
        && !matches!(
            c,
            ',' | '{' | '}' | '(' | ')' | '=' | '"' | '\'' | '!' | '~'
        )
}

struct Cursor<'a> {
    chars: Vec<char>,
    pos: usize,
    _src: &'a str,
}

impl<'a> Cursor<'a> {
    fn new(src: &'a str) -> Self {
        Cursor {
            chars: src.chars().collect(),
            pos: 0,
            _src: src,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek2(&self) -> Option<char> {
        self.chars.get(self.pos + 1).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> String {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        self.chars
            .get(start..self.pos)
            .unwrap_or_default()
            .iter()
            .collect()
    }

    fn err<T>(&self, message: impl Into<String>) -> Result<T, QueryError> {
        self.err_at(self.pos, message)
    }

    fn err_at<T>(&self, pos: usize, message: impl Into<String>) -> Result<T, QueryError> {
        Err(QueryError {
            column: pos + 1,
            message: message.into(),
        })
    }

    fn describe_here(&self) -> String {
        match self.peek() {
            None => "the end of the query".to_string(),
            Some(c) => format!("`{c}`"),
        }
    }
}

/// Parses an add-on `metricQuery`.
pub fn parse_addon_query(src: &str) -> Result<AddonQuery, QueryError> {
    let mut c = Cursor::new(src);
    c.skip_ws();
    if c.peek().is_none() {
        return c.err("the query is empty; write e.g. sum(vllm:num_requests_waiting)");
    }
    let first_start = c.pos;
    let first = c.take_while(is_name_char);
    if first.is_empty() || !first.chars().next().is_some_and(is_name_start) {
        return c.err_at(
            first_start,
            format!(
                "expected a metric name or one of sum|avg|min|max|count, found {}",
                if first.is_empty() {
                    c.describe_here()
                } else {
                    format!("`{first}`")
                }
            ),
        );
    }
    c.skip_ws();
    let (aggregation, metric) = if c.peek() == Some('(') {
        let Some(op) = Aggregation::parse(&first) else {
            let hint = if matches!(
                first.as_str(),
                "rate" | "irate" | "increase" | "avg_over_time" | "max_over_time" | "min_over_time"
            ) {
                "; the add-on has no range functions: use operationOverTime (e.g. `rate`) instead"
            } else {
                ""
            };
            return c.err_at(
                first_start,
                format!("`{first}` is not an aggregation: use one of sum|avg|min|max|count{hint}"),
            );
        };
        c.pos += 1;
        c.skip_ws();
        let name_start = c.pos;
        let name = c.take_while(is_name_char);
        if name.is_empty() || !name.chars().next().is_some_and(is_name_start) {
            if c.peek() == Some('(') || Aggregation::parse(&name).is_some() {
                return c.err_at(name_start, "nested functions are not supported: the add-on takes one aggregation around one metric name");
            }
            return c.err_at(
                name_start,
                format!("expected a metric name, found {}", c.describe_here()),
            );
        }
        if c.peek() == Some('(') {
            return c.err_at(
                name_start,
                "nested functions are not supported: the add-on takes one aggregation around one metric name",
            );
        }
        (Some(op), name)
    } else {
        (None, first)
    };
    c.skip_ws();
    let labels = if c.peek() == Some('{') {
        parse_labels(&mut c)?
    } else {
        Vec::new()
    };
    c.skip_ws();
    if aggregation.is_some() {
        match c.peek() {
            Some(')') => {
                c.pos += 1;
            }
            None => return c.err("missing `)` to close the aggregation"),
            Some(_) => return unexpected(&c),
        }
        c.skip_ws();
    }
    match c.peek() {
        None => Ok(AddonQuery {
            aggregation,
            metric,
            labels,
        }),
        Some(')') => c.err("unbalanced parentheses: this `)` closes nothing"),
        Some(_) => unexpected(&c),
    }
}

fn unexpected<T>(c: &Cursor<'_>) -> Result<T, QueryError> {
    match c.peek() {
        Some(ch) if matches!(ch, '+' | '-' | '*' | '/' | '%' | '^') => {
            c.err(format!("unexpected `{ch}`: arithmetic is not supported by the KEDA OTel scaler"))
        }
        Some(ch) if is_name_start(ch) => c.err(
            "a second metric name: a query names exactly one metric (combine metrics with several triggers instead)",
        ),
        Some('(') => c.err("unexpected `(`: only one aggregation around one metric name is supported"),
        _ => c.err(format!("unexpected {}", c.describe_here())),
    }
}

fn parse_labels(c: &mut Cursor<'_>) -> Result<Vec<(String, String)>, QueryError> {
    let open = c.pos;
    c.pos += 1; // '{'
    let mut labels: Vec<(String, String)> = Vec::new();
    c.skip_ws();
    if c.peek() == Some('}') {
        return c.err("empty label selector `{}`: remove the braces or add key=value");
    }
    loop {
        c.skip_ws();
        let key_start = c.pos;
        let key = c.take_while(is_label_char);
        if key.is_empty() {
            if c.peek().is_none() {
                return c.err_at(open, "unclosed `{`: missing `}`");
            }
            return c.err(format!(
                "expected a label name, found {}",
                c.describe_here()
            ));
        }
        if !key.chars().next().is_some_and(is_label_start) {
            return c.err_at(key_start, format!("`{key}` is not a label name"));
        }
        c.skip_ws();
        match (c.peek(), c.peek2()) {
            (Some('!'), Some('=')) => {
                return c.err("`!=` is not supported by the KEDA OTel scaler (only exact `=` matches); select the series you want with `=`");
            }
            (Some('!'), Some('~')) | (Some('='), Some('~')) => {
                return c.err("regular-expression matchers (`=~`, `!~`) are not supported by the KEDA OTel scaler; use exact `=` matches");
            }
            (Some('='), Some('=')) => {
                return c.err("`==` is not a matcher: write a single `=`");
            }
            (Some('='), _) => c.pos += 1,
            _ => {
                return c.err(format!(
                    "expected `=` after label `{key}`, found {}",
                    c.describe_here()
                ));
            }
        }
        c.skip_ws();
        let value = match c.peek() {
            Some('"') => {
                let quote = c.pos;
                c.pos += 1;
                let v = c.take_while(|ch| ch != '"');
                if c.peek() != Some('"') {
                    return c.err_at(quote, "unclosed `\"` in label value");
                }
                c.pos += 1;
                v
            }
            Some('\'') => {
                return c.err("single quotes are not understood by the KEDA OTel scaler: use `\"` or no quotes");
            }
            _ => {
                let v = c.take_while(is_unquoted_value_char);
                if v.is_empty() {
                    return c.err(format!(
                        "expected a value for label `{key}`, found {}",
                        c.describe_here()
                    ));
                }
                v
            }
        };
        if labels.iter().any(|(k, _)| *k == key) {
            return c.err_at(key_start, format!("label `{key}` is matched twice"));
        }
        labels.push((key.clone(), value));
        c.skip_ws();
        match c.peek() {
            Some(',') => {
                c.pos += 1;
                c.skip_ws();
                if c.peek() == Some('}') {
                    return c
                        .err("trailing `,` before `}`: the add-on would read an empty matcher");
                }
            }
            Some('}') => {
                c.pos += 1;
                return Ok(labels);
            }
            None => return c.err_at(open, "unclosed `{`: missing `}`"),
            Some('=') => {
                return c.err("unexpected `=` in a label value: quote the value (`k=\"a=b\"`)");
            }
            Some(_) => {
                return c.err(format!(
                    "expected `,` or `}}` after `{key}=…`, found {}",
                    c.describe_here()
                ));
            }
        }
    }
}

/// Checks a PromQL query: first what a trigger query must not contain (comments, `;`) and
/// where brackets or strings go wrong, with the column; then a real PromQL parser
/// (`promql-parser`), whose message is passed on. Metric names with `:` pass.
pub fn check_promql(src: &str) -> Result<(), QueryError> {
    check_promql_shape(src)?;
    promql_parser::parser::parse(src)
        .map(|_| ())
        .map_err(|message| QueryError {
            column: column_in(&message).unwrap_or(0),
            message: format!("not valid PromQL (promql-parser: {message})"),
        })
}

/// The column a parser message names (`... column 13 ...`), if any.
fn column_in(message: &str) -> Option<usize> {
    let rest = message.split("column").nth(1)?;
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn check_promql_shape(src: &str) -> Result<(), QueryError> {
    let chars: Vec<char> = src.chars().collect();
    if chars.iter().all(|c| c.is_whitespace()) {
        return Err(QueryError {
            column: 1,
            message: "the query is empty".into(),
        });
    }
    let mut stack: Vec<(char, usize)> = Vec::new();
    let mut i = 0;
    let mut saw_identifier = false;
    while let Some(&ch) = chars.get(i) {
        match ch {
            '"' | '\'' | '`' => {
                let start = i;
                i += 1;
                while let Some(&c) = chars.get(i).filter(|c| **c != ch) {
                    if c == '\\' && ch != '`' {
                        i += 1;
                    }
                    i += 1;
                }
                if i >= chars.len() {
                    return Err(QueryError {
                        column: start + 1,
                        message: format!("unclosed string starting with {ch}"),
                    });
                }
            }
            '(' | '[' | '{' => stack.push((ch, i)),
            ')' | ']' | '}' => {
                let want = match ch {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                match stack.pop() {
                    Some((open, _)) if open == want => {}
                    Some((open, at)) => {
                        return Err(QueryError {
                            column: i + 1,
                            message: format!(
                                "`{ch}` does not match the `{open}` at column {}",
                                at + 1
                            ),
                        });
                    }
                    None => {
                        return Err(QueryError {
                            column: i + 1,
                            message: format!("unbalanced `{ch}`: it closes nothing"),
                        });
                    }
                }
            }
            '#' => {
                return Err(QueryError {
                    column: i + 1,
                    message: "comments are not allowed in a trigger query".into(),
                });
            }
            ';' => {
                return Err(QueryError {
                    column: i + 1,
                    message: "`;` is not PromQL".into(),
                });
            }
            c if is_name_start(c) => saw_identifier = true,
            _ => {}
        }
        i += 1;
    }
    if let Some((open, at)) = stack.pop() {
        return Err(QueryError {
            column: at + 1,
            message: format!("unclosed `{open}`"),
        });
    }
    if !saw_identifier {
        return Err(QueryError {
            column: 1,
            message: "no metric name or function in the query".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(q: &str) -> AddonQuery {
        parse_addon_query(q).unwrap_or_else(|e| panic!("{q}: {e}"))
    }

    fn err(q: &str) -> QueryError {
        parse_addon_query(q).expect_err(q)
    }

    #[test]
    fn vllm_names_with_colons_parse() {
        let q = ok("sum(vllm:num_requests_running{model_name=x})");
        assert_eq!(q.aggregation, Some(Aggregation::Sum));
        assert_eq!(q.metric, "vllm:num_requests_running");
        assert_eq!(q.labels, vec![("model_name".into(), "x".into())]);
        assert_eq!(
            ok("sum(vllm:vllm:num_requests_waiting)").metric,
            "vllm:vllm:num_requests_waiting"
        );
    }

    #[test]
    fn forms_from_the_addon_docs_parse() {
        for q in [
            "avg(http_requests_total{code=200,handler=targets,instance=example:8080,method=get})",
            "up{instance=prod:8080}",
            "foobar",
            "avg(http_server_request_count{app_id=nodeapp, method=GET, path=/v1.0/state/statestore})",
            "sum(vllm:gpu_cache_usage_perc{deployment=vllm-llama3-deployment-vllm})",
            "sum(process_cpu_seconds_total{namespace=\"kserve-ci-e2e-test\", deployment=\"isvc-sklearn-keda-otel-add-on-predictor\"})",
            "  count( http.server.duration { a = b } )  ",
        ] {
            ok(q);
        }
    }

    #[test]
    fn quoted_values_lose_their_quotes() {
        let q = ok(r#"sum(x{namespace="llm", deployment="d"})"#);
        assert_eq!(q.label("namespace"), Some("llm"));
        assert_eq!(q.to_string(), "sum(x{namespace=llm,deployment=d})");
    }

    #[test]
    fn canonical_form_quotes_only_when_needed() {
        let q = AddonQuery {
            aggregation: None,
            metric: "m".into(),
            labels: vec![("a".into(), "x y".into()), ("b".into(), "c".into())],
        };
        assert_eq!(q.to_string(), r#"m{a="x y",b=c}"#);
        assert_eq!(ok(&q.to_string()), q);
    }

    #[test]
    fn not_equal_is_refused_with_its_column() {
        let e = err("sum(vllm:x{a!=b})");
        assert_eq!(e.column, 13);
        assert!(e.message.contains("`!=`"), "{e}");
    }

    #[test]
    fn regex_matchers_are_refused() {
        let e = err("sum(vllm:x{a=~\"b.*\"})");
        assert_eq!(e.column, 13);
        assert!(e.message.contains("=~"));
        assert!(err("x{a!~b}").message.contains("regular-expression"));
    }

    #[test]
    fn unbalanced_parentheses_are_refused() {
        let e = err("sum(vllm:x");
        assert!(e.message.contains("missing `)`"), "{e}");
        assert_eq!(e.column, 11);
        let e = err("vllm:x)");
        assert!(e.message.contains("closes nothing"), "{e}");
        assert_eq!(e.column, 7);
        let e = err("sum(x))");
        assert_eq!(e.column, 7);
        let e = err("sum(x{a=b)");
        assert!(e.message.contains("expected `,` or `}`"), "{e}");
        let e = err("x{a=b");
        assert!(e.message.contains("unclosed `{`"), "{e}");
        assert_eq!(e.column, 2);
    }

    #[test]
    fn two_metric_names_are_refused() {
        let e = err("sum(a b)");
        assert!(e.message.contains("second metric name"), "{e}");
        assert_eq!(e.column, 7);
        let e = err("sum(a) + sum(b)");
        assert!(e.message.contains("arithmetic"), "{e}");
        assert_eq!(e.column, 8);
    }

    #[test]
    fn other_malformed_queries() {
        assert!(err("").message.contains("empty"));
        assert!(err("rate(x)").message.contains("operationOverTime"));
        assert!(err("sum(rate(x))").message.contains("nested"));
        assert!(err("sum(sum(x))").message.contains("nested"));
        assert!(err("x{}").message.contains("empty label selector"));
        assert!(err("x{a=b,}").message.contains("trailing"));
        assert!(err("x{a==b}").message.contains("single `=`"));
        assert!(err("x{a=b,a=c}").message.contains("twice"));
        assert!(err("x{a='b'}").message.contains("single quotes"));
        assert!(err("x{a=\"b}").message.contains("unclosed `\"`"));
        assert!(err("x{a=}").message.contains("expected a value"));
        assert!(err("x{1a=b}").message.contains("not a label name"));
        assert!(err("9x").message.contains("expected a metric name"));
        assert!(err("x{a=b=c}").message.contains("quote the value"));
    }

    #[test]
    fn scope_adds_missing_labels_only() {
        let mut q = ok("sum(x{deployment=other})");
        assert_eq!(q.scope("deployment", "d"), Some("other".into()));
        assert_eq!(q.scope("namespace", "ns"), None);
        assert_eq!(q.to_string(), "sum(x{deployment=other,namespace=ns})");
    }

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

    #[test]
    fn promql_sanity() {
        for q in [
            r#"sum(vllm:num_requests_waiting{namespace="llm",pod=~"a-[a-z0-9]+-[a-z0-9]{5}"})"#,
            "sum(rate(vllm:generation_tokens_total[1m]))",
            "vllm:num_requests_running",
            r#"sum(x{a="("})"#,
        ] {
            check_promql(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        }
        assert_eq!(check_promql("sum(x").unwrap_err().column, 4);
        assert_eq!(check_promql("sum(x))").unwrap_err().column, 7);
        assert_eq!(check_promql("sum(x[1m)]").unwrap_err().column, 9);
        assert!(
            check_promql("x{a=\"b}")
                .unwrap_err()
                .message
                .contains("unclosed string")
        );
        assert!(check_promql("  ").is_err());
        assert!(check_promql("1 + 2").is_err());
        assert!(check_promql("x; drop").is_err());
    }

    #[test]
    fn promql_is_parsed_for_real() {
        // Balanced and closed, but not PromQL: the parser says so.
        for q in [
            "sum(rate(x[1m])) by",
            "sum by (le) x",
            "rate(x[1zz])",
            "sum(x) +",
            "histogram_quantile(0.9, sum by (le) (rate(x_bucket[1m]))) ==",
        ] {
            let e = check_promql(q).unwrap_err();
            assert!(e.message.starts_with("not valid PromQL"), "{q}: {e}");
            assert!(
                !e.to_string().contains("column"),
                "no invented position: {e}"
            );
        }
        check_promql(
            "histogram_quantile(0.9, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket{namespace=\"llm\"}[2m])))",
        )
        .unwrap();
    }
}
