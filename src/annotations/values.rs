//! Syntax of annotation values: replica counts, decimals, durations, ports, addresses.
//!
//! Each parser returns the reason and the fix as text so the caller can name the annotation.

/// A refusal: what is wrong and what to write instead.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: String,
    pub fix: String,
}

fn refuse<T>(reason: impl Into<String>, fix: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal {
        reason: reason.into(),
        fix: fix.into(),
    })
}

/// A non-negative integer that fits a Kubernetes int32.
pub fn count(v: &str) -> Result<i32, Refusal> {
    if v.is_empty() {
        return refuse("empty value", "write a whole number such as \"2\"");
    }
    if !v.bytes().all(|b| b.is_ascii_digit()) {
        let fix = match decimal(v) {
            Ok(d) => format!(
                "write a whole number such as \"{}\"",
                d.split('.').next().unwrap_or("1")
            ),
            Err(_) => "write a whole number such as \"2\"".to_string(),
        };
        return refuse("not a whole number", fix);
    }
    v.parse::<i32>()
        .or_else(|_| refuse("too large", "write a number below 2147483648"))
}

/// A plain non-negative decimal such as `5`, `0.8` or `.5` (returned as `0.5`).
///
/// Kubernetes quantities (`600m`, `1k`), exponents, signs and percentages are refused:
/// the KEDA OTel add-on parses `targetValue` as a float and Prometheus thresholds likewise.
pub fn decimal(v: &str) -> Result<String, Refusal> {
    let fix_example = "write a plain decimal such as \"5\" or \"0.8\"";
    if v.is_empty() {
        return refuse("empty value", fix_example);
    }
    if let Some(milli) = v.strip_suffix('m') {
        if let Ok(n) = decimal(milli) {
            return refuse(
                "Kubernetes quantities are not accepted: KEDA reads this value as a float",
                format!("write \"{}\"", scale_down(&n, 3)),
            );
        }
    }
    if let Some(pct) = v.strip_suffix('%') {
        if let Ok(n) = decimal(pct) {
            return refuse(
                "percent signs are not accepted: the value is a plain number",
                format!(
                    "write \"{}\" for {n}% of a 0–1 metric, or \"{n}\"",
                    scale_down(&n, 2)
                ),
            );
        }
    }
    if v.starts_with('-') {
        return refuse("negative values are not accepted", fix_example);
    }
    let (int, frac) = match v.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (v, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let ok = digits(int)
        && frac.is_none_or(digits)
        && !(int.is_empty() && frac.is_none_or(str::is_empty));
    if !ok {
        return refuse("not a plain decimal number", fix_example);
    }
    let int = if int.is_empty() { "0" } else { int };
    Ok(match frac {
        Some(f) if !f.is_empty() => format!("{int}.{f}"),
        _ => int.to_string(),
    })
}

/// `n / 10^places` written as a decimal, for suggestions (`600` → `0.6`).
fn scale_down(n: &str, places: usize) -> String {
    let (int, frac) = n.split_once('.').unwrap_or((n, ""));
    let digits = format!("{}{}", "0".repeat(places), int);
    let split = digits.len() - places;
    let (head, tail) = digits.split_at(split);
    let head = head.trim_start_matches('0');
    let tail = format!("{tail}{frac}");
    let tail = tail.trim_end_matches('0');
    match (head.is_empty(), tail.is_empty()) {
        (true, true) => "0".to_string(),
        (true, false) => format!("0.{tail}"),
        (false, true) => head.to_string(),
        (false, false) => format!("{head}.{tail}"),
    }
}

/// Is this canonical decimal zero?
pub fn is_zero(d: &str) -> bool {
    d.bytes().all(|b| b == b'0' || b == b'.')
}

/// A duration in whole seconds: `30`, `30s`, `5m`, `1h`, `1m30s`.
pub fn seconds(v: &str) -> Result<i32, Refusal> {
    let fix = "write seconds such as \"300\" or a duration such as \"30s\", \"5m\" or \"1h\"";
    if v.is_empty() {
        return refuse("empty value", fix);
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse::<i32>().or_else(|_| refuse("too large", fix));
    }
    let mut total: i64 = 0;
    let mut num = String::new();
    let mut last_unit = u8::MAX;
    for c in v.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let (rank, mult) = match c {
            'h' => (0, 3600),
            'm' => (1, 60),
            's' => (2, 1),
            _ => return refuse("not a duration", fix),
        };
        if num.is_empty() || (last_unit != u8::MAX && rank <= last_unit) {
            return refuse("not a duration", fix);
        }
        let n: i64 = num.parse().or_else(|_| refuse("too large", fix))?;
        total = total.saturating_add(n.saturating_mul(mult));
        num.clear();
        last_unit = rank;
    }
    if !num.is_empty() {
        return refuse("a number without a unit after another unit", fix);
    }
    i32::try_from(total).or_else(|_| refuse("too large", fix))
}

/// A TCP port, 1–65535.
pub fn port(v: &str) -> Result<u16, Refusal> {
    match v.parse::<u16>() {
        Ok(p) if p > 0 && v.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => refuse(
            "not a port number",
            "write a port between 1 and 65535, e.g. \"8000\"",
        ),
    }
}

/// An HTTP path for scraping: starts with `/`, no spaces, no `$` (the collector's
/// configuration would expand it) and no query string.
pub fn http_path(v: &str) -> Result<String, Refusal> {
    let fix = "write an absolute path such as \"/metrics\"";
    if !v.starts_with('/') {
        return refuse("the path must start with /", fix);
    }
    if v.chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '$' | '?' | '#' | '"' | '\''))
    {
        return refuse("the path has characters that cannot be scraped", fix);
    }
    Ok(v.to_string())
}

fn valid_host(host: &str) -> bool {
    if host.is_empty() || host.len() > 253 {
        return false;
    }
    if host.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-')
    })
}

/// A gRPC address `host:port` without a scheme (what KEDA's external scaler dials).
pub fn grpc_address(v: &str) -> Result<String, Refusal> {
    let fix = "write host:port, e.g. \"keda-otel-scaler.keda.svc:4318\"";
    if v.contains("://") {
        return refuse("a scheme is not expected here", fix);
    }
    let Some((host, p)) = v.rsplit_once(':') else {
        return refuse("the port is missing", fix);
    };
    if !valid_host(host) {
        return refuse("not a valid host name", fix);
    }
    port(p).map_err(|_| Refusal {
        reason: "not a valid port".into(),
        fix: fix.into(),
    })?;
    Ok(v.to_string())
}

/// An HTTP(S) URL of a Prometheus server, parsed by the `url` crate (WHATWG URL rules).
pub fn http_url(v: &str) -> Result<String, Refusal> {
    let fix = "write a URL such as \"http://prometheus-operated.monitoring.svc:9090\"";
    if !(v.starts_with("http://") || v.starts_with("https://")) {
        return refuse("the URL must start with http:// or https://", fix);
    }
    if v.chars().any(char::is_whitespace) {
        return refuse("not a valid URL: it contains white space", fix);
    }
    match url::Url::parse(v) {
        Ok(u) if u.host_str().is_some_and(|h| !h.is_empty()) => Ok(v.to_string()),
        Ok(_) => refuse("the URL has no host", fix),
        Err(e) => refuse(format!("not a valid URL ({e})"), fix),
    }
}

/// A lowercase DNS label (RFC 1123) of at most 63 characters: Kubernetes object names such as
/// an HPA or a Service.
pub fn is_dns_label(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 63
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !v.starts_with('-')
        && !v.ends_with('-')
}

/// [`is_dns_label`] as a parser.
pub fn dns_label(v: &str) -> Result<String, Refusal> {
    if is_dns_label(v) {
        Ok(v.to_string())
    } else {
        refuse(
            "not a valid name",
            "write a lowercase DNS label of at most 63 characters (letters, digits and -)",
        )
    }
}

/// A metric name the add-on and the collector can carry (colons included).
pub fn metric_name(v: &str) -> Result<String, Refusal> {
    if crate::query::is_metric_name(v) {
        Ok(v.to_string())
    } else {
        refuse(
            "not a metric name",
            "write a name such as \"vllm:num_requests_waiting\" (letters, digits, _ and :)",
        )
    }
}

/// `true`/`false`, any case.
pub fn boolean(v: &str) -> Result<bool, Refusal> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => refuse("not a boolean", "write \"true\" or \"false\""),
    }
}

/// A name usable as a KEDA trigger name (KEDA's scaling-modifier formulas refer to triggers
/// by name, so they must be identifiers).
pub fn is_identifier(v: &str) -> bool {
    let mut chars = v.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && v.len() <= 63
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        assert_eq!(count("0"), Ok(0));
        assert_eq!(count("04"), Ok(4));
        assert!(count("-1").is_err());
        assert!(count("+1").is_err());
        assert!(count("1.5").unwrap_err().fix.contains("\"1\""));
        assert!(count("").is_err());
        assert!(
            count("99999999999")
                .unwrap_err()
                .reason
                .contains("too large")
        );
        assert!(count("four").is_err());
    }

    #[test]
    fn decimals() {
        assert_eq!(decimal("5"), Ok("5".into()));
        assert_eq!(decimal("0.8"), Ok("0.8".into()));
        assert_eq!(decimal(".5"), Ok("0.5".into()));
        assert_eq!(decimal("5."), Ok("5".into()));
        for bad in [
            "", ".", "-1", "+1", "1e3", "NaN", "inf", "1.2.3", " 5", "0x10", "5k",
        ] {
            assert!(decimal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quantities_get_a_translated_fix() {
        let r = decimal("600m").unwrap_err();
        assert!(r.reason.contains("quantities"));
        assert_eq!(r.fix, "write \"0.6\"");
        assert_eq!(decimal("1500m").unwrap_err().fix, "write \"1.5\"");
        assert_eq!(decimal("5m").unwrap_err().fix, "write \"0.005\"");
        assert!(decimal("80%").unwrap_err().fix.contains("\"0.8\""));
    }

    #[test]
    fn durations() {
        assert_eq!(seconds("30"), Ok(30));
        assert_eq!(seconds("30s"), Ok(30));
        assert_eq!(seconds("5m"), Ok(300));
        assert_eq!(seconds("1h"), Ok(3600));
        assert_eq!(seconds("1m30s"), Ok(90));
        for bad in ["", "5x", "s", "30s5m", "1m30", "-5", "1.5m", "5ms"] {
            assert!(seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ports_paths_addresses() {
        assert_eq!(port("8000"), Ok(8000));
        assert!(port("0").is_err() && port("70000").is_err() && port("+80").is_err());
        assert!(http_path("/metrics").is_ok());
        assert!(
            http_path("metrics").is_err()
                && http_path("/a b").is_err()
                && http_path("/$x").is_err()
        );
        assert!(grpc_address("keda-otel-scaler.keda.svc:4318").is_ok());
        assert!(grpc_address("10.0.0.1:4318").is_ok());
        assert!(grpc_address("http://x:1").is_err());
        assert!(grpc_address("x").is_err());
        assert!(grpc_address("x:port").is_err());
        assert!(grpc_address("bad host:1").is_err());
        assert!(http_url("http://prometheus-operated.monitoring.svc:9090").is_ok());
        assert!(http_url("https://prom.example.com/prefix").is_ok());
        assert!(http_url("prom:9090").is_err());
        assert!(http_url("http://prom:99999").is_err());
        assert!(http_url("http://").is_err());
        assert!(http_url("http://bad host:1").is_err());
        assert!(dns_label("my-hpa").is_ok() && dns_label("My_hpa").is_err());
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("queue_depth"));
        assert!(is_identifier("_x1"));
        assert!(!is_identifier("1x") && !is_identifier("a-b") && !is_identifier(""));
    }

    #[test]
    fn booleans() {
        assert_eq!(boolean("True"), Ok(true));
        assert_eq!(boolean("false"), Ok(false));
        assert!(boolean("yes").is_err());
    }
}
