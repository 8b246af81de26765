//! The OpenAPI contract: the document the server generates from its
//! handlers is the one checked into the repo (`api/openapi.json`), the
//! server serves it at `/openapi.json`, and it is well formed where a
//! generator could slip (every path parameter declared, every operation
//! with its error shape). Regenerate the file after changing a route with
//! `WEIR_UPDATE_OPENAPI=1 cargo nextest run -p weir-control-plane --test openapi`.

mod common;

use common::*;
use serde_json::Value;

const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../api/openapi.json");

#[test]
fn the_generated_document_is_the_checked_in_one() {
    let doc = weir_control_plane::openapi_document();
    let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    if std::env::var("WEIR_UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(CHECKED_IN, &text).unwrap();
    }
    let stored: Value = serde_json::from_str(
        &std::fs::read_to_string(CHECKED_IN).expect("api/openapi.json exists"),
    )
    .unwrap();
    assert!(
        stored == doc,
        "api/openapi.json differs from the document the handlers generate; \
         run WEIR_UPDATE_OPENAPI=1 cargo nextest run -p weir-control-plane --test openapi \
         and review the diff"
    );
}

#[test]
fn every_operation_declares_its_parameters_and_errors() {
    let doc = weir_control_plane::openapi_document();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 40, "{} paths", paths.len());
    let mut operations = 0;
    for (path, item) in paths {
        let wanted: Vec<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let declared: Vec<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            for w in &wanted {
                assert!(
                    declared.contains(w),
                    "{method} {path}: path parameter {w} is not declared"
                );
            }
            assert!(
                op["responses"]["default"]["content"].is_object(),
                "{method} {path} has no error response"
            );
            assert!(
                op["responses"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .any(|k| k.starts_with('2')),
                "{method} {path} has no success response"
            );
        }
    }
    assert!(operations >= 70, "{operations} operations");
    // Every reference resolves.
    let text = doc.to_string();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for r in text.split("\"#/components/schemas/").skip(1) {
        let name = &r[..r.find('"').unwrap()];
        assert!(
            schemas.contains_key(name),
            "{name} is referenced but not defined"
        );
    }
    // The internal routes of workers are not part of the public contract.
    assert!(!paths.keys().any(|p| p.starts_with("/internal/")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_serves_its_document() {
    let weir = Weir::start().await;
    let resp = reqwest::get(format!("{}/openapi.json", weir.url()))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let served: Value = resp.json().await.unwrap();
    assert_eq!(served, weir_control_plane::openapi_document());
    weir.stop().await;
}
