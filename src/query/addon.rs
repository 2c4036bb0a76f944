//! The KEDA OTel add-on's `metricQuery` grammar, as its parser reads it (kedify/otel-add-on
//! metric/simple_parser.go; the metadata key in util/handler_specific.go).

use std::fmt;

use super::{QueryError, is_label_char, is_label_start, is_name_char, is_name_start};
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
    let (aggregation, metric) = parse_head(&mut c)?;
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

const NESTED: &str =
    "nested functions are not supported: the add-on takes one aggregation around one metric name";

/// `op(name` or `name`: the aggregation, if any, and the metric name.
fn parse_head(c: &mut Cursor<'_>) -> Result<(Option<Aggregation>, String), QueryError> {
    let first_start = c.pos;
    let first = c.take_while(is_name_char);
    if first.is_empty() || !first.chars().next().is_some_and(is_name_start) {
        let found = if first.is_empty() {
            c.describe_here()
        } else {
            format!("`{first}`")
        };
        return c.err_at(
            first_start,
            format!("expected a metric name or one of sum|avg|min|max|count, found {found}"),
        );
    }
    c.skip_ws();
    if c.peek() != Some('(') {
        return Ok((None, first));
    }
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
            return c.err_at(name_start, NESTED);
        }
        return c.err_at(
            name_start,
            format!("expected a metric name, found {}", c.describe_here()),
        );
    }
    if c.peek() == Some('(') {
        return c.err_at(name_start, NESTED);
    }
    Ok((Some(op), name))
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
        let key_start = c.pos;
        let (key, value) = parse_matcher(c, open)?;
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
                return c.err(
                    "unexpected `=` in a label value: the add-on splits matchers on `=`, so a value cannot contain one",
                );
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

/// One `key=value` matcher (`open`: where the selector's `{` is, for "unclosed").
fn parse_matcher(c: &mut Cursor<'_>, open: usize) -> Result<(String, String), QueryError> {
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
    let value = parse_value(c, &key)?;
    Ok((key, value))
}

/// A label value, bare or in `"`. The add-on splits the selector on every `,` and `=` before
/// it looks at quotes, then trims spaces and quotes from each side (kedify/otel-add-on
/// metric/simple_parser.go, `ParseLabels`): a value with `,` or `=`, or with spaces at an
/// end, cannot be matched, quoted or not.
fn parse_value(c: &mut Cursor<'_>, key: &str) -> Result<String, QueryError> {
    match c.peek() {
        Some('"') => {
            let quote = c.pos;
            c.pos += 1;
            let v = c.take_while(|ch| ch != '"');
            if c.peek() != Some('"') {
                return c.err_at(quote, "unclosed `\"` in label value");
            }
            if let Some(offset) = v.chars().position(|ch| matches!(ch, ',' | '=')) {
                return c.err_at(
                    quote + 1 + offset,
                    "the add-on splits matchers on `,` and `=` even inside quotes: a label value cannot contain them",
                );
            }
            if v.trim() != v {
                return c.err_at(
                    quote,
                    "the add-on trims spaces from label values: this value would not match",
                );
            }
            c.pos += 1;
            Ok(v)
        }
        Some('\'') => {
            c.err("single quotes are not understood by the KEDA OTel scaler: use `\"` or no quotes")
        }
        _ => {
            let v = c.take_while(is_unquoted_value_char);
            if v.is_empty() {
                return c.err(format!(
                    "expected a value for label `{key}`, found {}",
                    c.describe_here()
                ));
            }
            Ok(v)
        }
    }
}

/// Can the add-on match a label value (see [`parse_value`])?
pub fn is_matchable_value(v: &str) -> bool {
    !v.is_empty() && !v.contains([',', '=', '"', '\'']) && v.trim() == v
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
        assert!(err("x{a=b=c}").message.contains("cannot contain one"));
    }

    #[test]
    fn values_the_add_on_would_split_or_trim_are_refused_even_quoted() {
        // kedify/otel-add-on metric/simple_parser.go splits on `,` and `=` before quotes.
        let e = err(r#"x{a="b,c"}"#);
        assert_eq!(e.column, 7, "{e}");
        assert!(e.message.contains("even inside quotes"), "{e}");
        assert!(err(r#"x{a="b=c"}"#).message.contains("even inside quotes"));
        assert!(err(r#"x{a=" b"}"#).message.contains("trims spaces"));
        assert_eq!(ok(r#"x{a="b c"}"#).labels[0].1, "b c");
        assert!(is_matchable_value("qwen-7b.v1") && is_matchable_value("a b"));
        for v in ["", "a,b", "a=b", "a\"", " a", "it's"] {
            assert!(!is_matchable_value(v), "{v:?}");
        }
    }

    #[test]
    fn scope_adds_missing_labels_only() {
        let mut q = ok("sum(x{deployment=other})");
        assert_eq!(q.scope("deployment", "d"), Some("other".into()));
        assert_eq!(q.scope("namespace", "ns"), None);
        assert_eq!(q.to_string(), "sum(x{deployment=other,namespace=ns})");
    }
}
