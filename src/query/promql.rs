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
