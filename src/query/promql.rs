//! PromQL: a shape check with columns, then a real parser.

use super::{QueryError, is_name_start};

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

fn at<T>(index: usize, message: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError {
        column: index + 1,
        message: message.into(),
    })
}

fn check_promql_shape(src: &str) -> Result<(), QueryError> {
    let chars: Vec<char> = src.chars().collect();
    if chars.iter().all(|c| c.is_whitespace()) {
        return at(0, "the query is empty");
    }
    let mut stack: Vec<(char, usize)> = Vec::new();
    let mut i = 0;
    let mut saw_identifier = false;
    while let Some(&ch) = chars.get(i) {
        match ch {
            '"' | '\'' | '`' => i = string_end(&chars, i)?,
            '(' | '[' | '{' => stack.push((ch, i)),
            ')' | ']' | '}' => close(&mut stack, ch, i)?,
            '#' => return at(i, "comments are not allowed in a trigger query"),
            ';' => return at(i, "`;` is not PromQL"),
            c if is_name_start(c) => saw_identifier = true,
            _ => {}
        }
        i += 1;
    }
    if let Some((open, index)) = stack.pop() {
        return at(index, format!("unclosed `{open}`"));
    }
    if !saw_identifier {
        return at(0, "no metric name or function in the query");
    }
    Ok(())
}

/// The index of the quote closing the string that starts at `start`.
fn string_end(chars: &[char], start: usize) -> Result<usize, QueryError> {
    let Some(&quote) = chars.get(start) else {
        return at(start, "expected a string");
    };
    let mut i = start + 1;
    while let Some(&c) = chars.get(i).filter(|c| **c != quote) {
        if c == '\\' && quote != '`' {
            i += 1;
        }
        i += 1;
    }
    if i >= chars.len() {
        return at(start, format!("unclosed string starting with {quote}"));
    }
    Ok(i)
}

/// Pops the bracket `ch` (at `index`) closes, or says why it does not match.
fn close(stack: &mut Vec<(char, usize)>, ch: char, index: usize) -> Result<(), QueryError> {
    let want = match ch {
        ')' => '(',
        ']' => '[',
        _ => '{',
    };
    match stack.pop() {
        Some((open, _)) if open == want => Ok(()),
        Some((open, opened)) => at(
            index,
            format!(
                "`{ch}` does not match the `{open}` at column {}",
                opened + 1
            ),
        ),
        None => at(index, format!("unbalanced `{ch}`: it closes nothing")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
