//! The OpenAPI document served at `/api/v1/openapi.json` is kept true:
//! it lists exactly the routes of `caxton::api::ROUTES`, each of those
//! routes answers on a live server, and the document is well formed
//! (operations with a 2xx answer, declared path parameters, errors in the
//! one error shape, no dangling `$ref`).

use std::collections::BTreeSet;

use crate::support::{AgentsDir, Server};
use caxton::api::ROUTES;
use serde_json::Value;

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

/// Every operation of the document as (METHOD, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let paths = doc["paths"].as_object().expect("`paths` is an object");
    let mut out = Vec::new();
    for (path, item) in paths {
        let item = item.as_object().expect("a path item is an object");
        for (key, operation) in item {
            if METHODS.contains(&key.as_str()) {
                out.push((key.to_uppercase(), path.clone(), operation));
            }
        }
    }
    out
}

/// `value` with a local `$ref` followed (once; the document nests no
/// reference to a reference).
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(reference) => doc
            .pointer(reference.strip_prefix('#').expect("a local $ref"))
            .unwrap_or_else(|| panic!("dangling $ref {reference}")),
        None => value,
    }
}

/// Every `$ref` anywhere in `value`.
fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child) {
                    ("$ref", Value::String(reference)) => out.push(reference),
                    _ => refs(child, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| refs(item, out)),
        _ => {}
    }
}

/// The `{placeholders}` of a path template.
fn placeholders(template: &str) -> BTreeSet<String> {
    template
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(str::to_owned)
        .collect()
}

/// The document as it is in the source tree.
fn source_document() -> Value {
    serde_json::from_str(include_str!("../host/src/api/openapi.json"))
        .expect("openapi.json is JSON")
}

async fn fetch_document(server: &Server) -> Value {
    let response = server
        .client()
        .get(server.url("/api/v1/openapi.json"))
        .send()
        .await
        .expect("request failed");
    assert_eq!(response.status(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "content-type {content_type:?}"
    );
    response.json().await.expect("the document is JSON")
}

#[tokio::test]
async fn the_document_lists_exactly_the_routes_and_every_route_answers() {
    let server = Server::start(&AgentsDir::with_examples());
    let doc = fetch_document(&server).await;
    assert_eq!(
        doc,
        source_document(),
        "the server serves openapi.json as is"
    );

    let version = doc["openapi"].as_str().expect("`openapi` is a string");
    assert!(version.starts_with("3."), "not OpenAPI 3: {version}");
    assert_eq!(doc["info"]["title"], "Caxton API");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));

    let declared: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|route| (route.method.to_owned(), route.path.to_owned()))
        .collect();
    assert_eq!(declared.len(), ROUTES.len(), "ROUTES lists a route twice");
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    let undocumented: Vec<_> = declared.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&declared).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "in ROUTES but not in openapi.json: {undocumented:?}; in openapi.json but not in ROUTES: {unknown:?}"
    );

    // Each route exists: the router answers it with something other than
    // its miss (404 `route_not_found`) or a wrong-method 405. Sample values
    // and empty bodies touch nothing: `echo` is defined by a file (so the
    // API refuses to replace or remove it) and no memory entity exists.
    let client = server.client();
    for route in ROUTES {
        let (method, template) = (route.method, route.path);
        let path = template
            .replace("{name}", "echo")
            .replace("{id}", "nope")
            .replace("{model}", "all-MiniLM-L6-v2");
        let mut request = client.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            server.url(&path),
        );
        if let Some(media_types) = route.body {
            request = request.header("content-type", media_types[0]).body("{}");
        }
        let response = request.send().await.expect("request failed");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let code = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|body| body["error"]["code"].as_str().map(str::to_owned))
            .unwrap_or_default();
        assert!(
            !(status == 404 && code == "route_not_found") && status != 405,
            "{method} {path} (from {template}) is not routed: {status} {text}"
        );
    }

    // Like every route but health, the document needs the token.
    let anonymous = crate::support::http().build().unwrap();
    let response = anonymous
        .get(server.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[test]
fn every_operation_is_complete_and_every_error_has_the_error_shape() {
    let doc = source_document();

    // No dangling references anywhere.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for reference in all {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("non-local $ref {reference}"));
        assert!(doc.pointer(pointer).is_some(), "dangling $ref {reference}");
    }

    // Bearer auth for everything; health opts out.
    let scheme = &doc["components"]["securitySchemes"]["bearerAuth"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    assert_eq!(doc["security"], serde_json::json!([{ "bearerAuth": [] }]));

    let mut operation_ids = BTreeSet::new();
    for (method, path, operation) in operations(&doc) {
        let at = format!("{method} {path}");
        let id = operation["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{at}: no operationId"));
        assert!(
            operation_ids.insert(id.to_owned()),
            "{at}: operationId {id} is used twice"
        );
        assert!(
            operation["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{at}: no summary"
        );

        // The probes are the only routes open without a token.
        if ["/api/v1/health", "/api/v1/ready"].contains(&path.as_str()) {
            assert_eq!(operation["security"], serde_json::json!([]), "{at}");
        } else {
            assert!(
                operation.get("security").is_none(),
                "{at}: every route but the probes needs the token"
            );
        }

        // Path parameters: each placeholder declared, nothing else.
        let parameters = operation["parameters"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut declared = BTreeSet::new();
        for parameter in parameters {
            let parameter = resolve(&doc, parameter);
            if parameter["in"] == "path" {
                assert_eq!(
                    parameter["required"], true,
                    "{at}: path parameters are required"
                );
                declared.insert(parameter["name"].as_str().unwrap().to_owned());
            }
        }
        assert_eq!(declared, placeholders(&path), "{at}: path parameters");

        // At least one success; every error in the one error shape.
        let responses = operation["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{at}: no responses"));
        assert!(
            responses.keys().any(|status| status.starts_with('2')),
            "{at}: no 2xx response"
        );
        for (status, response) in responses {
            let response = resolve(&doc, response);
            assert!(
                response["description"].is_string(),
                "{at} {status}: no description"
            );
            if !status.starts_with('2') {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/Error",
                    "{at} {status}: errors use the Error schema"
                );
            }
        }

        if matches!(method.as_str(), "POST" | "PUT") {
            assert!(
                operation["requestBody"]["content"].is_object(),
                "{at}: no request body"
            );
        }
    }
}
