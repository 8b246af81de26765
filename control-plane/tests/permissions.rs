//! The permission matrix (`permissions.table`): every endpoint of the
//! table, for every principal of the table, against the principal's own
//! environment and another one, answers as the table says, on a real
//! server over SQLite and PostgreSQL. The principals are service accounts
//! made through `/iam/v2/service-accounts`, bound through
//! `/iam/v2/role-bindings` and calling with keys from `/iam/v2/api-keys`.
//! Then the walls: another organization sees none of these resources.

mod common;

use common::*;
use serde_json::{json, Value};
use weir_catalog::{ClusterRecord, PoolRecord};

const TABLE: &str = include_str!("permissions.table");

/// A principal of the table: its bindings as (role, pattern).
fn bindings_of(column: &str, org: &str, env: &str, cluster: &str) -> Vec<(&'static str, String)> {
    let org_crn = format!("crn://weir/organization={org}");
    let env_crn = format!("{org_crn}/environment={env}");
    let topics = format!("{env_crn}/kafka={cluster}/topic=*");
    match column {
        "OA" => vec![("OrganizationAdmin", org_crn)],
        "EA" => vec![("EnvironmentAdmin", env_crn)],
        "FA" => vec![("FlinkAdmin", env_crn)],
        "FD" => vec![("FlinkDeveloper", env_crn)],
        "FDR" => vec![("FlinkDeveloper", env_crn), ("DeveloperRead", topics)],
        "FDRW" => vec![
            ("FlinkDeveloper", env_crn),
            ("DeveloperRead", topics.clone()),
            ("DeveloperWrite", topics),
        ],
        "DR" => vec![("DeveloperRead", topics)],
        "DW" => vec![("DeveloperWrite", topics)],
        "DM" => vec![("DeveloperManage", topics)],
        "RO" => vec![("ResourceOwner", topics)],
        "RD" => vec![("ReadOnly", env_crn)],
        other => panic!("permissions.table names no principal {other}"),
    }
}

/// What differs between the two environments a row is called against.
struct Scope {
    env: String,
    pool: String,
    /// A statement the admin made there, that every row may read.
    statement: String,
    /// An identity provider the admin registered (the organization's).
    idp: String,
    /// A JWKS document a new identity provider may point at.
    jwks_uri: String,
}

/// Serves a JWKS document (the public half of a test key) on a local port.
async fn jwks_server() -> String {
    let pem = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/oauth/rsa1.pem"
    ))
    .unwrap();
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap();
    let jwk =
        jsonwebtoken::jwk::Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::RS256).unwrap();
    let doc = json!({"keys": [jwk]});
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let doc = doc.clone();
            async move { axum::Json(doc) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/jwks")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_gets_what_the_table_says_sqlite() {
    matrix("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_gets_what_the_table_says_postgres() {
    matrix("postgres").await;
}

async fn matrix(backend: &str) {
    let weir = Weir::start_backend(backend).await;
    let store = &weir.server.as_ref().unwrap().state.store;
    let org = weir.dev.org.clone();
    let admin = (weir.dev.key.as_str(), weir.dev.secret.as_str());
    let api = Api::new(&weir);
    // A second environment, on the same broker.
    let cluster_in = store.list_clusters(&org, &weir.dev.env).await.unwrap()[0]
        .id
        .clone();
    store
        .ensure_environment(&org, "env-out", "out")
        .await
        .unwrap();
    store
        .ensure_cluster(
            &org,
            "env-out",
            &ClusterRecord {
                id: "lkc-out".into(),
                name: "out".into(),
                bootstrap: broker(),
                sasl: None,
            },
        )
        .await
        .unwrap();
    store
        .ensure_pool(&org, "env-out", &PoolRecord::new("lfcp-out", "out", 8))
        .await
        .unwrap();
    // The tables every statement row uses, in both environments (one
    // broker: each environment's catalog sees the same topics).
    let src = unique("perm_src");
    let dst = unique("perm_dst");
    weir.ddl(&format!("CREATE TABLE `{src}` (id INT)")).await;
    weir.ddl(&format!("CREATE TABLE `{dst}` (id INT)")).await;
    let out_client = weir_api::Client::new(
        weir.url(),
        &org,
        "env-out",
        Some(weir_api::Credentials {
            key: weir.dev.key.clone(),
            secret: weir.dev.secret.clone(),
        }),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while store
        .get_table(&org, "env-out", "lkc-out", &dst)
        .await
        .unwrap()
        .is_none()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "env-out discovers the topics"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let jwks_uri = jwks_server().await;
    let (st, idp) = api
        .call(
            admin,
            "POST",
            "/iam/v2/identity-providers",
            Some(
                json!({"display_name": "matrix", "issuer": "https://matrix.test",
                        "audience": "weir", "jwks_uri": jwks_uri}),
            ),
        )
        .await;
    assert_eq!(st, 201, "{idp}");
    let idp = idp["id"].as_str().unwrap().to_string();
    let scopes = [
        Scope {
            env: weir.dev.env.clone(),
            pool: weir.dev.pool.clone(),
            statement: "admin-in".into(),
            idp: idp.clone(),
            jwks_uri: jwks_uri.clone(),
        },
        Scope {
            env: "env-out".into(),
            pool: "lfcp-out".into(),
            statement: "admin-out".into(),
            idp,
            jwks_uri,
        },
    ];
    for (s, client) in scopes.iter().zip([&weir.client, &out_client]) {
        let (st, v) = api
            .call(
                admin,
                "POST",
                &format!("/sql/v1/organizations/{org}/environments/{}/statements", s.env),
                Some(json!({"name": s.statement, "spec": {"statement": "SHOW TABLES", "compute_pool_id": s.pool}})),
            )
            .await;
        assert!(st < 300, "{v}");
        let _ = client;
    }
    // A service account the rows grant roles to.
    let (st, probe) = api
        .call(
            admin,
            "POST",
            "/iam/v2/service-accounts",
            Some(json!({"display_name": "probe"})),
        )
        .await;
    assert_eq!(st, 201, "{probe}");
    let probe = probe["id"].as_str().unwrap().to_string();

    let mut lines = TABLE
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'));
    // The header is the last comment line's columns.
    let header: Vec<&str> = TABLE
        .lines()
        .filter(|l| l.starts_with("# endpoint"))
        .flat_map(|l| l.trim_start_matches('#').split_whitespace())
        .skip(1)
        .collect();
    assert_eq!(header.len(), 11, "the table's header");
    // One service account and key per principal.
    let mut keys = vec![];
    for (i, column) in header.iter().enumerate() {
        let (st, sa) = api
            .call(
                admin,
                "POST",
                "/iam/v2/service-accounts",
                Some(json!({"display_name": format!("principal-{i}-{column}")})),
            )
            .await;
        assert_eq!(st, 201, "{sa}");
        let sa = sa["id"].as_str().unwrap().to_string();
        for (role, pattern) in bindings_of(column, &org, &weir.dev.env, &cluster_in) {
            let (st, v) = api
                .call(
                    admin,
                    "POST",
                    "/iam/v2/role-bindings",
                    Some(json!({"principal": format!("User:{sa}"), "role_name": role, "crn_pattern": pattern})),
                )
                .await;
            assert_eq!(st, 201, "{v}");
        }
        let (st, k) = api
            .call(
                admin,
                "POST",
                "/iam/v2/api-keys",
                Some(json!({"spec": {"owner": {"id": sa}, "description": column}})),
            )
            .await;
        assert_eq!(st, 202, "{k}");
        keys.push((
            k["id"].as_str().unwrap().to_string(),
            k["spec"]["secret"].as_str().unwrap().to_string(),
        ));
    }
    let mut wrong = vec![];
    let mut cells = 0;
    for line in lines.by_ref() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let endpoint = cols[0];
        assert_eq!(cols.len(), header.len() + 1, "row {endpoint}");
        for (i, cell) in cols[1..].iter().enumerate() {
            let (want_in, want_out) = cell.split_once('/').expect("in/out");
            for (scope, want) in scopes.iter().zip([want_in, want_out]) {
                let n = cells;
                cells += 1;
                let key = (keys[i].0.as_str(), keys[i].1.as_str());
                // The admin makes a statement for the delete rows to delete.
                let victim = format!("victim-{n}");
                if endpoint == "statement.delete" {
                    let (st, v) = api
                        .call(
                            admin,
                            "POST",
                            &format!(
                                "/sql/v1/organizations/{org}/environments/{}/statements",
                                scope.env
                            ),
                            Some(json!({"name": victim, "spec": {"statement": "SHOW TABLES", "compute_pool_id": scope.pool}})),
                        )
                        .await;
                    assert!(st < 300, "{v}");
                }
                let (method, path, body) =
                    request(endpoint, &org, scope, &src, &dst, &probe, &victim, n);
                let (status, answer) = api.call(key, method, &path, body).await;
                let got = match status {
                    200..=299 => "ok".to_string(),
                    s => s.to_string(),
                };
                if got != want {
                    wrong.push(format!(
                        "{endpoint} as {} in {}: want {want}, got {status}: {answer}",
                        header[i], scope.env
                    ));
                }
                // A refusal names what is missing.
                if status == 403 {
                    let text = answer.to_string();
                    assert!(
                        text.contains("needs one of the roles") || text.contains("error_code"),
                        "{endpoint}: {text}"
                    );
                }
            }
        }
    }
    assert!(cells >= 300, "{cells} cells");
    assert!(
        wrong.is_empty(),
        "{} of {cells} cells differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    weir.stop().await;
}

/// The call of an endpoint of the table, in `scope`.
#[allow(clippy::too_many_arguments)]
fn request(
    endpoint: &str,
    org: &str,
    scope: &Scope,
    src: &str,
    dst: &str,
    probe: &str,
    victim: &str,
    n: usize,
) -> (&'static str, String, Option<Value>) {
    let env = &scope.env;
    let statements = format!("/sql/v1/organizations/{org}/environments/{env}/statements");
    let dry = |sql: String| {
        Some(json!({"name": format!("dry-{n}"), "spec": {
            "statement": sql, "compute_pool_id": scope.pool,
            "properties": {"sql.dry-run": "true"}}}))
    };
    match endpoint {
        "env.get" => ("GET", format!("/org/v2/environments/{env}"), None),
        "clusters.list" => ("GET", format!("/cmk/v2/clusters?environment={env}"), None),
        "pool.get" => (
            "GET",
            format!("/fcpm/v2/compute-pools/{}?environment={env}", scope.pool),
            None,
        ),
        "pool.create" => (
            "POST",
            "/fcpm/v2/compute-pools".into(),
            Some(
                json!({"spec": {"display_name": format!("p-{n}"), "max_cfu": 1, "environment": {"id": env}}}),
            ),
        ),
        "statement.list" => ("GET", statements, None),
        "statement.get" => ("GET", format!("{statements}/{}", scope.statement), None),
        "statement.select" => ("POST", statements, dry(format!("SELECT * FROM `{src}`"))),
        "statement.insert" => (
            "POST",
            statements,
            dry(format!("INSERT INTO `{dst}` SELECT * FROM `{src}`")),
        ),
        "statement.ddl" => (
            "POST",
            statements,
            dry(format!("CREATE TABLE `new_{n}` (id INT)")),
        ),
        "statement.delete" => ("DELETE", format!("{statements}/{victim}"), None),
        "registry.subjects" => ("GET", format!("/schema-registry/{env}/subjects"), None),
        "registry.register" => (
            "POST",
            format!("/schema-registry/{env}/subjects/perm-{n}-value/versions"),
            Some(json!({"schema": "\"string\""})),
        ),
        "registry.settings" => (
            "GET",
            format!("/weir/v1/environments/{env}/schema-registry"),
            None,
        ),
        "sa.create" => (
            "POST",
            "/iam/v2/service-accounts".into(),
            Some(json!({"display_name": format!("made-{n}")})),
        ),
        "rb.create" => (
            "POST",
            "/iam/v2/role-bindings".into(),
            Some(
                json!({"principal": format!("User:{probe}"), "role_name": "DeveloperRead",
                        "crn_pattern": format!("crn://weir/organization={org}/environment={env}")}),
            ),
        ),
        "audit.get" => ("GET", "/weir/v1/audit-log".into(), None),
        "limits.get" => ("GET", format!("/weir/v1/environments/{env}/limits"), None),
        "workspace.get" => (
            "GET",
            format!("/weir/v1/environments/{env}/workspace"),
            None,
        ),
        "workspace.put" => (
            "PUT",
            format!("/weir/v1/environments/{env}/workspace"),
            Some(json!({"cells": [{"id": "c", "sql": "SELECT 1"}]})),
        ),
        "limits.set" => (
            "PATCH",
            format!("/weir/v1/environments/{env}/limits"),
            Some(json!({"statements": 1000})),
        ),
        "orglimits.get" => ("GET", "/weir/v1/organization/limits".into(), None),
        "orglimits.set" => (
            "PATCH",
            "/weir/v1/organization/limits".into(),
            Some(json!({"service_accounts": 1000})),
        ),
        "cluster.create" => (
            "POST",
            "/cmk/v2/clusters".into(),
            Some(
                json!({"spec": {"display_name": format!("c-{n}"), "kafka_bootstrap_endpoint": broker(),
                                 "environment": {"id": env}}}),
            ),
        ),
        "idp.create" => (
            "POST",
            "/iam/v2/identity-providers".into(),
            Some(
                json!({"display_name": format!("idp-{n}"), "issuer": format!("https://idp-{n}.test"),
                        "audience": "weir", "jwks_uri": scope.jwks_uri}),
            ),
        ),
        "idp.get" => (
            "GET",
            format!("/iam/v2/identity-providers/{}", scope.idp),
            None,
        ),
        "idpool.create" => (
            "POST",
            format!("/iam/v2/identity-providers/{}/identity-pools", scope.idp),
            Some(json!({"display_name": format!("pool-{n}"), "filter": "true"})),
        ),
        "metrics.get" => ("GET", "/metrics".into(), None),
        other => panic!("permissions.table names no endpoint {other}"),
    }
}
