//! The API's walls and its answers to bad input, over real HTTP against a
//! real server, SQLite store and broker.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use weir_api::{Client, Credentials, ErrorBody, Phase};

fn statements_url(weir: &Weir, org: &str, env: &str) -> String {
    format!(
        "{}/sql/v1/organizations/{org}/environments/{env}/statements",
        weir.url()
    )
}

/// Sends a request and returns the status, the request id header and the
/// body parsed as the API's error shape (for errors).
async fn call(req: reqwest::RequestBuilder) -> (u16, Option<String>, String) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let id = resp
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_string());
    (status, id, resp.text().await.unwrap())
}

fn error_body(text: &str) -> ErrorBody {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not the error shape ({e}): {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_valid_key_get_401_in_the_error_shape() {
    let weir = Weir::start().await;
    let http = reqwest::Client::new();
    let url = statements_url(&weir, &weir.dev.org, &weir.dev.env);

    let (status, id, text) = call(http.get(&url)).await;
    assert_eq!(status, 401);
    assert!(
        id.is_some_and(|i| !i.is_empty()),
        "every response has a request id"
    );
    let body = error_body(&text);
    assert_eq!(body.errors[0].status, "401");

    let (status, _, text) = call(http.get(&url).basic_auth(&weir.dev.key, Some("wrong"))).await;
    assert_eq!(status, 401);
    error_body(&text);

    let (status, _, _) = call(http.get(&url).basic_auth("no-such-key", Some("x"))).await;
    assert_eq!(status, 401);

    let (status, _, _) = call(
        http.post(&url)
            .json(&json!({"name": "x", "spec": {"statement": "SHOW TABLES"}})),
    )
    .await;
    assert_eq!(status, 401, "writes need a key too");

    // The right key works, and its answer has a request id as well.
    let (status, id, _) = call(
        http.get(&url)
            .basic_auth(&weir.dev.key, Some(&weir.dev.secret)),
    )
    .await;
    assert_eq!(status, 200);
    assert!(id.is_some());
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organizations_key_cannot_see_or_touch_its_statements_sqlite() {
    tenant_walls("sqlite").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organizations_key_cannot_see_or_touch_its_statements_postgres() {
    tenant_walls("postgres").await
}

async fn tenant_walls(backend: &str) {
    let weir = Weir::start_backend(backend).await;
    let created = weir.submit("mine", "SHOW TABLES").await.unwrap();
    assert_eq!(created.status.phase, Phase::Completed);
    let http = reqwest::Client::new();
    let a_workspace = format!(
        "{}/weir/v1/environments/{}/workspace",
        weir.url(),
        weir.dev.env
    );
    let saved = http
        .put(&a_workspace)
        .basic_auth(&weir.dev.key, Some(&weir.dev.secret))
        .json(&json!({"cells": [{"id": "a", "sql": "SELECT 'a secret'"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), 200);

    // A second tenant with its own environment and key.
    let (key, secret) = weir.second_tenant().await;
    let a_url = statements_url(&weir, &weir.dev.org, &weir.dev.env);
    let b = |r: reqwest::RequestBuilder| r.basic_auth(&key, Some(&secret));

    for req in [
        http.get(&a_url),
        http.get(format!("{a_url}/mine")),
        http.get(format!("{a_url}/mine/results")),
        http.get(format!("{a_url}/mine/exceptions")),
        http.delete(format!("{a_url}/mine")),
        http.put(format!("{a_url}/mine")).json(&created),
        http.patch(format!("{a_url}/mine"))
            .json(&json!([{"op": "replace", "path": "/spec/stopped", "value": true}])),
        http.get(format!(
            "{}/org/v2/organizations/{}",
            weir.url(),
            weir.dev.org
        )),
        http.get(format!(
            "{}/cmk/v2/clusters?environment={}",
            weir.url(),
            weir.dev.env
        )),
        http.post(&a_url)
            .json(&json!({"name": "theirs", "spec": {"statement": "SHOW TABLES"}})),
        http.get(&a_workspace),
        http.put(&a_workspace)
            .json(&json!({"cells": [{"id": "b", "sql": "SELECT 'overwritten'"}]})),
    ] {
        let (status, _, text) = call(b(req)).await;
        assert_eq!(status, 404, "{text}");
        error_body(&text);
    }
    // Tenant B's own environment does not show A's statement either, and
    // A's environment id under B's organization does not exist.
    let b_client = Client::new(
        weir.url(),
        "org-b",
        "env-b",
        Some(Credentials {
            key: key.clone(),
            secret: secret.clone(),
        }),
    );
    assert!(b_client
        .list_statements(None)
        .await
        .unwrap()
        .data
        .is_empty());
    assert_eq!(
        b_client
            .get_statement("mine")
            .await
            .unwrap_err()
            .status()
            .unwrap()
            .as_u16(),
        404
    );
    let (status, _, _) = call(b(http.get(statements_url(&weir, "org-b", &weir.dev.env)))).await;
    assert_eq!(status, 404);

    // B's lookups show B's organization only.
    let (status, _, text) = call(b(http.get(format!("{}/org/v2/organizations", weir.url())))).await;
    assert_eq!(status, 200, "{text}");
    let orgs: Value = serde_json::from_str(&text).unwrap();
    let ids: Vec<&str> = orgs["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["org-b"]);

    // B's own workspace is its own; A's cells are untouched.
    let (status, _, text) = call(b(http.get(format!(
        "{}/weir/v1/environments/env-b/workspace",
        weir.url()
    ))))
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(!text.contains("secret"), "{text}");
    let (status, _, text) = call(
        http.get(&a_workspace)
            .basic_auth(&weir.dev.key, Some(&weir.dev.secret)),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        text.contains("a secret") && !text.contains("overwritten"),
        "{text}"
    );

    // A's statement is untouched.
    let still = weir.client.get_statement("mine").await.unwrap();
    assert_eq!(still.metadata.uid, created.metadata.uid);
    assert_eq!(
        weir.client.list_statements(None).await.unwrap().data.len(),
        1
    );
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_that_does_not_parse_gets_400_with_line_and_column_and_is_not_kept() {
    let weir = Weir::start().await;
    let err = weir
        .submit("broken", "SELECT id,\n  FROM WHERE x")
        .await
        .unwrap_err();
    assert_eq!(err.status().unwrap().as_u16(), 400);
    let weir_api::ClientError::Api { body, .. } = err else {
        panic!("not an API error")
    };
    let src = body.errors[0].source.as_ref().expect("a source position");
    assert_eq!(src.line, Some(2), "{}", body.errors[0].detail);
    assert!(src.column.is_some());
    assert_eq!(
        weir.client
            .get_statement("broken")
            .await
            .unwrap_err()
            .status()
            .unwrap()
            .as_u16(),
        404
    );
    assert!(weir
        .client
        .list_statements(None)
        .await
        .unwrap()
        .data
        .is_empty());
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tables_and_columns_get_400_with_their_position() {
    let weir = Weir::start().await;
    let t = unique("orders");
    weir.ddl(&orders_ddl(&t, "")).await;

    let err = weir
        .submit("q1", "SELECT id\nFROM   no_such_table")
        .await
        .unwrap_err();
    let weir_api::ClientError::Api { status, body } = err else {
        panic!()
    };
    assert_eq!(status.as_u16(), 400);
    let e = &body.errors[0];
    assert!(e.detail.contains("no_such_table"), "{}", e.detail);
    let src = e.source.as_ref().unwrap();
    assert_eq!((src.line, src.column), (Some(2), Some(8)), "{}", e.detail);

    let err = weir
        .submit("q2", &format!("SELECT id, nope FROM `{t}`"))
        .await
        .unwrap_err();
    let weir_api::ClientError::Api { status, body } = err else {
        panic!()
    };
    assert_eq!(status.as_u16(), 400);
    let e = &body.errors[0];
    assert!(e.detail.contains("nope"), "{}", e.detail);
    let src = e.source.as_ref().unwrap();
    assert_eq!((src.line, src.column), (Some(1), Some(12)), "{}", e.detail);

    // Nothing was kept or left running.
    let names: Vec<String> = weir
        .client
        .list_statements(None)
        .await
        .unwrap()
        .data
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert!(!names.iter().any(|n| n == "q1" || n == "q2"), "{names:?}");
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_bodies_get_4xx_in_the_error_shape() {
    let weir = Weir::start().await;
    let http = reqwest::Client::new();
    let url = statements_url(&weir, &weir.dev.org, &weir.dev.env);
    let auth = |r: reqwest::RequestBuilder| r.basic_auth(&weir.dev.key, Some(&weir.dev.secret));

    let (status, _, text) = call(
        auth(http.post(&url))
            .header("content-type", "application/json")
            .body("{\"name\": \"x\", \"spec\": "),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    error_body(&text);

    let (status, _, text) =
        call(auth(http.post(&url)).json(&json!({"name": "x", "spec": 7}))).await;
    assert!((400..500).contains(&status), "{status} {text}");
    error_body(&text);

    let huge = "x".repeat(2 << 20);
    let (status, _, text) =
        call(auth(http.post(&url)).json(&json!({"name": "x", "spec": {"statement": huge}}))).await;
    assert_eq!(status, 413, "{text}");
    error_body(&text);

    let (status, _, text) = call(
        auth(http.post(&url))
            .json(&json!({"name": "Not_A_Label", "spec": {"statement": "SHOW TABLES"}})),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    error_body(&text);

    weir.submit("twice", "SHOW TABLES").await.unwrap();
    let err = weir.submit("twice", "SHOW TABLES").await.unwrap_err();
    assert_eq!(err.status().unwrap().as_u16(), 409);

    // The server is still there.
    assert!(weir.client.list_statements(None).await.is_ok());
    weir.stop().await;
}

/// Good records around two that are not JSON objects of the table.
async fn mixed_topic(weir: &Weir, mode: &str) -> (String, Vec<i64>) {
    let t = unique("mixed");
    let with = match mode {
        "" => String::new(),
        m => format!(", 'error-handling.mode' = '{m}'"),
    };
    weir.ddl(&orders_ddl(&t, &with)).await;
    let mut records: Vec<(i32, Option<String>, String)> =
        (0..50).map(|id| (0, None, order_json(id))).collect();
    records.insert(10, (0, None, "this is not json".to_string()));
    records.insert(30, (0, None, r#"{"id": "not a number"}"#.to_string()));
    produce(&t, &records).await;
    (t, (0..50).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_record_fails_the_statement_by_default_naming_where_it_is() {
    let weir = Weir::start().await;
    let (t, _) = mixed_topic(&weir, "").await;
    let sink = unique("out");
    weir.ddl(&format!("CREATE TABLE `{sink}` (id BIGINT)"))
        .await;
    weir.submit(
        "strict",
        &format!("INSERT INTO `{sink}` SELECT id FROM `{t}`"),
    )
    .await
    .unwrap();
    let s = weir
        .wait_phase("strict", Phase::Failed, Duration::from_secs(30))
        .await;
    for part in [format!("'{t}'"), "partition 0".into(), "offset 10".into()] {
        assert!(
            s.status.detail.contains(&part),
            "{part} in {}",
            s.status.detail
        );
    }
    let ex = weir.client.exceptions("strict").await.unwrap();
    assert!(
        ex.data.iter().any(|e| e.message.contains("offset 10")),
        "{ex:?}"
    );
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignore_skips_bad_records_and_counts_them() {
    let weir = Weir::start().await;
    let (t, ids) = mixed_topic(&weir, "ignore").await;
    let sink = unique("out");
    weir.ddl(&format!("CREATE TABLE `{sink}` (id BIGINT)"))
        .await;
    weir.submit(
        "lenient",
        &format!("INSERT INTO `{sink}` SELECT id FROM `{t}`"),
    )
    .await
    .unwrap();
    let got = consume(
        &sink,
        ids.len(),
        Duration::from_secs(30),
        Duration::from_secs(1),
    )
    .await;
    let mut got: Vec<i64> = got
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(r.value.as_deref().unwrap()).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    got.sort();
    assert_eq!(got, ids);
    let s = weir.client.get_statement("lenient").await.unwrap();
    assert_eq!(s.status.phase, Phase::Running);
    let m = s.status.metrics.unwrap();
    assert_eq!(m.records_skipped, 2);
    assert_eq!(m.records_in, 52);
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_writes_bad_records_to_the_dead_letter_table_and_counts_them() {
    let weir = Weir::start().await;
    let dlq = unique("dlq");
    let t = unique("mixed");
    weir.ddl(&orders_ddl(
        &t,
        &format!(", 'error-handling.mode' = 'log', 'error-handling.log.target' = '{dlq}'"),
    ))
    .await;
    let mut records: Vec<(i32, Option<String>, String)> =
        (0..20).map(|id| (1, None, order_json(id))).collect();
    records.insert(5, (1, Some("k5".into()), "{broken".to_string()));
    produce(&t, &records).await;
    let sink = unique("out");
    weir.ddl(&format!("CREATE TABLE `{sink}` (id BIGINT)"))
        .await;
    weir.submit(
        "logged",
        &format!("INSERT INTO `{sink}` SELECT id FROM `{t}`"),
    )
    .await
    .unwrap();
    consume(&sink, 20, Duration::from_secs(30), Duration::ZERO).await;
    let dead = consume(&dlq, 1, Duration::from_secs(30), Duration::from_secs(1)).await;
    assert_eq!(dead.len(), 1);
    let v: Value = serde_json::from_str(dead[0].value.as_deref().unwrap()).unwrap();
    assert_eq!(v["topic"], json!(t));
    assert_eq!(v["partition"], json!(1));
    assert_eq!(v["offset"], json!(5));
    assert_eq!(v["raw_value"], json!("{broken"));
    assert_eq!(v["raw_key"], json!("k5"));
    assert!(v["error_message"].as_str().is_some_and(|m| !m.is_empty()));
    let s = weir.client.get_statement("logged").await.unwrap();
    assert_eq!(s.status.metrics.unwrap().records_skipped, 1);
    let ex = weir.client.exceptions("logged").await.unwrap();
    assert!(ex.data.iter().any(|e| e.message.contains(&dlq)), "{ex:?}");
    weir.stop().await;
}

/// The managed service's clients stop and resume a statement with a JSON
/// Patch, and look up their organization and Kafka clusters first; each
/// bad patch is a 400 in the error shape that names what is wrong, and a
/// route Weir does not serve is a 404 that names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_patch_and_the_lookup_routes_the_managed_services_clients_use() {
    let weir = Weir::start().await;
    let http = reqwest::Client::new();
    let auth = |r: reqwest::RequestBuilder| r.basic_auth(&weir.dev.key, Some(&weir.dev.secret));
    let src = unique("patched");
    weir.ddl(&orders_ddl(&src, "")).await;
    weir.submit("watch", &format!("SELECT id FROM `{src}`"))
        .await
        .unwrap();
    weir.wait_phase("watch", Phase::Running, Duration::from_secs(30))
        .await;
    let url = format!(
        "{}/watch",
        statements_url(&weir, &weir.dev.org, &weir.dev.env)
    );
    let patch = |body: Value| {
        auth(http.patch(&url))
            .header("content-type", "application/json-patch+json")
            .body(body.to_string())
    };

    let (status, _, text) = call(patch(
        json!([{"op": "replace", "path": "/spec/stopped", "value": true}]),
    ))
    .await;
    assert_eq!(status, 200, "{text}");
    let s: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(s["spec"]["stopped"], json!(true));
    assert_eq!(s["status"]["phase"], json!("STOPPED"));

    let (status, _, text) = call(patch(
        json!([{"op": "replace", "path": "/spec/stopped", "value": false}]),
    ))
    .await;
    assert_eq!(status, 200, "{text}");
    weir.wait_phase("watch", Phase::Running, Duration::from_secs(30))
        .await;

    for (body, says) in [
        (
            json!([{"op": "replace", "path": "/spec/nonsense", "value": 1}]),
            "/spec/nonsense",
        ),
        (
            json!([{"op": "replace", "path": "/spec/statement", "value": "SELECT 2"}]),
            "spec.statement cannot change",
        ),
        (
            json!([{"op": "remove", "path": "/spec/stopped"}]),
            "'remove'",
        ),
        (
            json!([{"op": "replace", "path": "/spec/stopped", "value": "yes"}]),
            "true or false",
        ),
        (json!({"spec": {"stopped": true}}), "JSON Patch"),
    ] {
        let (status, _, text) = call(patch(body.clone())).await;
        assert_eq!(status, 400, "{body}: {text}");
        let e = error_body(&text);
        assert!(
            e.errors[0].detail.contains(says),
            "{body}: {}",
            e.errors[0].detail
        );
    }
    // None of them changed it.
    assert_eq!(
        weir.client
            .get_statement("watch")
            .await
            .unwrap()
            .status
            .phase,
        Phase::Running
    );

    // A page token the API never gave out.
    let (status, _, text) = call(auth(http.get(format!("{url}/results?page_token=x%2Fy")))).await;
    assert_eq!(status, 400, "{text}");
    error_body(&text);

    let (status, _, text) = call(auth(
        http.get(format!("{}/org/v2/organizations", weir.url())),
    ))
    .await;
    assert_eq!(status, 200, "{text}");
    let orgs: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(orgs["data"][0]["id"], json!(weir.dev.org));

    let (status, _, text) = call(auth(http.get(format!(
        "{}/cmk/v2/clusters?environment={}",
        weir.url(),
        weir.dev.env
    ))))
    .await;
    assert_eq!(status, 200, "{text}");
    let clusters: Value = serde_json::from_str(&text).unwrap();
    let c = &clusters["data"][0];
    assert!(
        c["id"].as_str().is_some_and(|s| !s.is_empty()),
        "{clusters}"
    );
    assert!(c["spec"]["display_name"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    let (status, _, text) = call(auth(http.get(format!("{}/cmk/v2/clusters", weir.url())))).await;
    assert_eq!(status, 400, "{text}");
    assert!(error_body(&text).errors[0].detail.contains("environment"));

    let (status, _, text) = call(auth(
        http.get(format!("{}/tableflow/v1/tableflow-topics", weir.url())),
    ))
    .await;
    assert_eq!(status, 404, "{text}");
    assert!(
        error_body(&text).errors[0]
            .detail
            .contains("GET /tableflow/v1/tableflow-topics"),
        "{text}"
    );
    weir.stop().await;
}

/// `weir dev`'s organization id is a UUID, as the managed service's are
/// (its Table API plugin refuses anything else), and a data directory made
/// when it was `org-dev` keeps its organization, key and statements.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weir_dev_keeps_the_organization_its_data_directory_names() {
    use weir_control_plane::dev::{bootstrap, DEV_ORG};
    let dir = std::env::temp_dir().join(format!("weir-devorg-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("weir.db").display());
    let store = weir_catalog::Store::connect(&url).await.unwrap();
    let fresh = bootstrap(&store, &dir, "http://x", "127.0.0.1:1")
        .await
        .unwrap();
    assert_eq!(fresh.org, DEV_ORG);
    assert!(uuid::Uuid::parse_str(&fresh.org).is_ok(), "{}", fresh.org);
    let again = bootstrap(&store, &dir, "http://x", "127.0.0.1:1")
        .await
        .unwrap();
    assert_eq!((again.org, again.key), (fresh.org.clone(), fresh.key));

    let old = dir.join("old");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(old.join("dev.env"), "export WEIR_ORG=org-dev\n").unwrap();
    let legacy = bootstrap(&store, &old, "http://x", "127.0.0.1:1")
        .await
        .unwrap();
    assert_eq!(legacy.org, "org-dev");
    let key = store.find_api_key(&legacy.key).await.unwrap().unwrap();
    assert_eq!(key.org_id, "org-dev");
    std::fs::remove_dir_all(&dir).ok();
}

/// Statements carry the labels a client gives them, and listings filter by
/// label and by part of the name, page after page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_are_listed_by_label_and_name_page_after_page() {
    let weir = Weir::start().await;
    let http = reqwest::Client::new();
    let auth = |r: reqwest::RequestBuilder| r.basic_auth(&weir.dev.key, Some(&weir.dev.secret));
    let url = statements_url(&weir, &weir.dev.org, &weir.dev.env);
    for (name, team) in [
        ("a-one", "red"),
        ("b-two", "red"),
        ("c-three", "blue"),
        ("d-four", "red"),
    ] {
        let (status, _, text) = call(auth(http.post(&url)).json(&json!({
            "name": name,
            "metadata": {"labels": {"user.confluent.io/team": team, "user.confluent.io/dbt": "true"}},
            "spec": {"statement": "SHOW TABLES"},
        })))
        .await;
        assert_eq!(status, 201, "{text}");
    }
    let got = weir.client.get_statement("c-three").await.unwrap();
    assert_eq!(got.metadata.labels["user.confluent.io/team"], "blue");

    // Page by page (one per page), the filter kept in each `next`.
    let mut names = vec![];
    let mut next = format!("{url}?page_size=1&label_selector=user.confluent.io/team%3Dred");
    loop {
        let (status, _, text) = call(auth(http.get(&next))).await;
        assert_eq!(status, 200, "{text}");
        let page: Value = serde_json::from_str(&text).unwrap();
        for s in page["data"].as_array().unwrap() {
            names.push(s["name"].as_str().unwrap().to_string());
        }
        match page["metadata"]["next"].as_str() {
            Some(n) if !n.is_empty() => next = n.to_string(),
            _ => break,
        }
    }
    assert_eq!(names, ["a-one", "b-two", "d-four"]);

    let (_, _, text) = call(auth(http.get(format!(
        "{url}?label_selector=user.confluent.io/team%3Dred,user.confluent.io/dbt%3Dtrue&statement_name_search_query=tw"
    ))))
    .await;
    let page: Value = serde_json::from_str(&text).unwrap();
    let names: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["b-two"]);

    let many: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
    let (status, _, text) = call(auth(http.post(&url)).json(&json!({
        "name": "too-many-labels",
        "metadata": {"labels": many},
        "spec": {"statement": "SHOW TABLES"},
    })))
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(error_body(&text).errors[0]
        .detail
        .contains("at most 64 labels"));
    for bad in [
        "label_selector=team",
        "page_token=..%2F..",
        "label_selector=a%3Db%3Dc",
    ] {
        let (status, _, text) = call(auth(http.get(format!("{url}?{bad}")))).await;
        assert_eq!(status, 400, "{bad}: {text}");
        error_body(&text);
    }
    weir.stop().await;
}

/// `'sql.dry-run' = 'true'` validates and plans a statement and answers in
/// full at once; nothing is kept, run or created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_is_answered_at_once_and_changes_nothing() {
    let weir = Weir::start().await;
    let dry: std::collections::BTreeMap<String, String> =
        [("sql.dry-run".to_string(), "true".to_string())].into();
    let src = unique("dry");
    let submit = |name: &str, sql: &str| {
        let req = weir_api::CreateStatementRequest {
            metadata: None,
            name: Some(name.to_string()),
            spec: weir_api::StatementSpec {
                statement: sql.to_string(),
                properties: dry.clone(),
                ..Default::default()
            },
        };
        let client = weir.client.clone();
        async move { client.create_statement(&req).await }
    };
    let s = submit("dry-create", &orders_ddl(&src, "")).await.unwrap();
    assert_eq!(s.status.phase, Phase::Completed);
    let s = submit("dry-select", "SELECT 1 AS one, 'a' AS two")
        .await
        .unwrap();
    assert_eq!(s.status.phase, Phase::Completed);
    let cols: Vec<String> = s
        .status
        .traits
        .unwrap()
        .schema
        .unwrap()
        .columns
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(cols, ["one", "two"]);
    let err = submit("dry-bad", "SELECT x FROM nowhere_at_all")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("nowhere_at_all"), "{err}");
    // Nothing was kept, nor created.
    assert!(weir
        .client
        .list_statements(None)
        .await
        .unwrap()
        .data
        .is_empty());
    let tables = weir.submit("tables", "SHOW TABLES").await.unwrap();
    assert_eq!(tables.status.phase, Phase::Completed);
    let rows = weir
        .client
        .results("tables", None)
        .await
        .unwrap()
        .results
        .data;
    assert!(rows.iter().all(|r| r.row[0] != json!(src)), "{rows:?}");
    weir.stop().await;
}
