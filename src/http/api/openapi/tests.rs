//! Unit tests of `openapi`, in their own file so the module reads as one idea.

use super::*;

/// Every `$ref` in the document names a component schema.
fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|v| refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// Every schema the route table or a schema names exists, and every component is used.
#[test]
fn references_resolve() {
    let doc = document();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(!found.is_empty());
    for r in &found {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        assert!(schemas.contains_key(name), "unknown schema {name}");
    }
    for name in schemas.keys() {
        let target = format!("#/components/schemas/{name}");
        assert!(found.contains(&target), "schema {name} is never used");
    }
}

/// Each method and path appears once; ids are unique; path parameters are declared.
#[test]
fn operations_are_unique_and_complete() {
    let endpoints = super::super::endpoints();
    let mut seen = std::collections::HashSet::new();
    for e in &endpoints {
        assert!(
            seen.insert((e.verb, e.path)),
            "{:?} {} twice",
            e.verb,
            e.path
        );
        assert!(!e.summary.is_empty(), "{} has no summary", e.path);
        assert!(
            e.answers.iter().any(|a| a.status < 300),
            "{:?} {} has no success answer",
            e.verb,
            e.path
        );
    }
    let doc = document();
    let mut ids = std::collections::HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (verb, op) in item.as_object().unwrap() {
            assert!(ids.insert(op["operationId"].as_str().unwrap().to_owned()));
            let declared = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .map(|p| p["name"].as_str().unwrap().to_owned())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            let wanted = path.matches('{').count();
            assert_eq!(declared.len(), wanted, "{verb} {path}");
        }
    }
    assert_eq!(ids.len(), endpoints.len());
}

/// A Server-Sent Events answer is documented with its media type.
#[test]
fn event_stream_answers() {
    let e = Endpoint::get("/jobs/{id}/events", |r| r).event_stream("Live events.");
    let op = operation(&e);
    assert!(op["responses"]["200"]["content"]["text/event-stream"].is_object());
}

/// The documented token lifetimes are the bounds the handlers enforce.
#[test]
fn ttl_bounds_match_the_handlers() {
    use super::super::{api_tokens, enrollment_tokens};
    let s = schemas();
    for (schema, min, max) in [
        (
            "EnrollmentTokenCreate",
            enrollment_tokens::MIN_TTL_SECONDS,
            enrollment_tokens::MAX_TTL_SECONDS,
        ),
        (
            "ApiTokenCreate",
            api_tokens::MIN_TTL_SECONDS,
            api_tokens::MAX_TTL_SECONDS,
        ),
    ] {
        let ttl = &s[schema]["properties"]["ttl_seconds"];
        assert_eq!(ttl["minimum"].as_u64(), Some(min), "{schema}");
        assert_eq!(ttl["maximum"].as_u64(), Some(max), "{schema}");
    }
    let ttl = &s["EnrollmentTokenCreate"]["properties"]["ttl_seconds"];
    assert_eq!(
        ttl["default"].as_u64(),
        Some(enrollment_tokens::DEFAULT_TTL_SECONDS)
    );
}

/// Operation ids are derived from the method and path.
#[test]
fn operation_ids() {
    let e = Endpoint::get("/hosts/{id}/repo-stats", |r| r);
    assert_eq!(operation_id(&e), "get_hosts_id_repo_stats");
}
