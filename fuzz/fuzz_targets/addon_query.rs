//! The query grammar and the value parsers never panic, and a parsed query's canonical form
//! parses back to the same query.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llm_autoscale_webhook::query::{check_promql, parse_addon_query};
use llm_autoscale_webhook::annotations::values;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(q) = parse_addon_query(s) {
        assert_eq!(parse_addon_query(&q.to_string()).ok(), Some(q));
    }
    let _ = check_promql(s);
    let _ = values::decimal(s);
    let _ = values::seconds(s);
    let _ = values::grpc_address(s);
    let _ = values::http_url(s);
});
