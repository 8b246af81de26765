//! The built-in schema registry (`/schema-registry/{environment}`) against a
//! real server and store (SQLite and PostgreSQL): Confluent's REST shapes
//! and error codes, compatibility levels, references, deletes, the walls
//! between tenants, and the catalog sync typing a topic's table from its
//! value subject. Confluent's own client checks the same API from outside
//! (`infra/clients/schema_registry_check.py`).

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use weir_api::Phase;

struct Sr<'a> {
    weir: &'a Weir,
    http: reqwest::Client,
    key: String,
    secret: String,
    env: String,
}

impl Sr<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}/schema-registry/{}{path}", self.weir.url(), self.env)
    }

    async fn send(&self, r: reqwest::RequestBuilder) -> (u16, Value) {
        let resp = r
            .basic_auth(&self.key, Some(&self.secret))
            .send()
            .await
            .expect("server answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.http.get(self.url(path))).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(
            self.http
                .post(self.url(path))
                .header("content-type", "application/vnd.schemaregistry.v1+json")
                .body(body.to_string()),
        )
        .await
    }

    async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.http.put(self.url(path)).json(&body)).await
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(self.http.delete(self.url(path))).await
    }
}

fn sr(weir: &Weir) -> Sr<'_> {
    Sr {
        weir,
        http: reqwest::Client::new(),
        key: weir.dev.key.clone(),
        secret: weir.dev.secret.clone(),
        env: weir.dev.env.clone(),
    }
}

fn code(v: &Value) -> i64 {
    v["error_code"].as_i64().unwrap_or_default()
}

const USER_V1: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"int"},{"name":"name","type":"string"}]}"#;
const USER_V2: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"},{"name":"name","type":"string"},{"name":"email","type":["null","string"],"default":null}]}"#;
const USER_BAD: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"int"},{"name":"name","type":"string"},{"name":"age","type":"int"}]}"#;

#[tokio::test]
async fn subjects_versions_and_compatibility_sqlite() {
    registry_api("sqlite").await;
}

#[tokio::test]
async fn subjects_versions_and_compatibility_postgres() {
    registry_api("postgres").await;
}

async fn registry_api(backend: &str) {
    let weir = Weir::start_backend(backend).await;
    let sr = sr(&weir);
    let s = "users-value";
    let (st, v) = sr
        .post(
            &format!("/subjects/{s}/versions"),
            json!({"schema": USER_V1}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let id1 = v["id"].as_i64().unwrap();
    // The same schema, written differently, is the same id and version.
    let spaced =
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(USER_V1).unwrap()).unwrap();
    let (_, v) = sr
        .post(
            &format!("/subjects/{s}/versions"),
            json!({"schema": spaced}),
        )
        .await;
    assert_eq!(v["id"].as_i64(), Some(id1));
    // Under another subject the same schema keeps its id.
    let (_, v) = sr
        .post("/subjects/other-value/versions", json!({"schema": USER_V1}))
        .await;
    assert_eq!(v["id"].as_i64(), Some(id1));
    let (_, v) = sr.get(&format!("/schemas/ids/{id1}/versions")).await;
    assert_eq!(
        v,
        json!([{"subject": "other-value", "version": 1}, {"subject": s, "version": 1}])
    );

    // BACKWARD by default: a widened id and an optional field pass, a new
    // required field does not.
    let (st, v) = sr
        .post(
            &format!("/subjects/{s}/versions"),
            json!({"schema": USER_BAD}),
        )
        .await;
    assert_eq!((st, code(&v)), (409, 409), "{v}");
    assert!(v["message"].as_str().unwrap().contains("age"), "{v}");
    let (_, v) = sr
        .post(
            &format!("/compatibility/subjects/{s}/versions/latest?verbose=true"),
            json!({"schema": USER_BAD}),
        )
        .await;
    assert_eq!(v["is_compatible"], json!(false));
    assert!(!v["messages"].as_array().unwrap().is_empty(), "{v}");
    let (st, v) = sr
        .post(
            &format!("/subjects/{s}/versions"),
            json!({"schema": USER_V2}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let id2 = v["id"].as_i64().unwrap();
    assert_ne!(id1, id2);
    let (_, v) = sr.get(&format!("/subjects/{s}/versions")).await;
    assert_eq!(v, json!([1, 2]));
    let (_, v) = sr.get(&format!("/subjects/{s}/versions/latest")).await;
    assert_eq!(
        (
            v["version"].as_i64(),
            v["id"].as_i64(),
            v["subject"].as_str()
        ),
        (Some(2), Some(id2), Some(s))
    );
    assert!(
        v.get("schemaType").is_none(),
        "AVRO is left out, as Confluent does: {v}"
    );
    let (_, v) = sr.get(&format!("/subjects/{s}/versions/1/schema")).await;
    assert_eq!(v, serde_json::from_str::<Value>(USER_V1).unwrap());
    // FORWARD_TRANSITIVE on the subject: v1 readers cannot read a long id.
    let (_, v) = sr
        .put(
            &format!("/config/{s}"),
            json!({"compatibility": "FORWARD_TRANSITIVE"}),
        )
        .await;
    assert_eq!(v, json!({"compatibility": "FORWARD_TRANSITIVE"}));
    let (_, v) = sr
        .post(
            &format!("/compatibility/subjects/{s}/versions"),
            json!({"schema": USER_V2}),
        )
        .await;
    assert_eq!(v["is_compatible"], json!(false), "{v}");
    let (st, v) = sr
        .put(
            &format!("/config/{s}"),
            json!({"compatibility": "SOMETIMES"}),
        )
        .await;
    assert_eq!((st, code(&v)), (422, 42203), "{v}");
    let (_, v) = sr.get("/config").await;
    assert_eq!(v, json!({"compatibilityLevel": "BACKWARD"}));
    let (st, v) = sr.get("/config/nobody-value").await;
    assert_eq!((st, code(&v)), (404, 40408), "{v}");
    let (_, v) = sr.get("/config/nobody-value?defaultToGlobal=true").await;
    assert_eq!(v, json!({"compatibilityLevel": "BACKWARD"}));

    // Error codes.
    let (st, v) = sr.get("/subjects/missing-value/versions").await;
    assert_eq!((st, code(&v)), (404, 40401), "{v}");
    let (st, v) = sr.get(&format!("/subjects/{s}/versions/7")).await;
    assert_eq!((st, code(&v)), (404, 40402), "{v}");
    let (st, v) = sr.get(&format!("/subjects/{s}/versions/zero")).await;
    assert_eq!((st, code(&v)), (422, 42202), "{v}");
    let (st, v) = sr.get("/schemas/ids/999999").await;
    assert_eq!((st, code(&v)), (404, 40403), "{v}");
    let (st, v) = sr
        .post(
            "/subjects/x-value/versions",
            json!({"schema": "{\"type\": \"recrod\"}"}),
        )
        .await;
    assert_eq!((st, code(&v)), (422, 42201), "{v}");
    let (st, v) = sr
        .post(
            "/subjects/x-value/versions",
            json!({"schema": "{}", "schemaType": "XML"}),
        )
        .await;
    assert_eq!((st, code(&v)), (422, 42201), "{v}");

    // References: a record that uses another subject's named type.
    let (st, _) = sr
        .post(
            "/subjects/address/versions",
            json!({"schema": r#"{"type":"record","name":"Address","namespace":"x","fields":[{"name":"city","type":"string"}]}"#}),
        )
        .await;
    assert_eq!(st, 200);
    let with_ref = json!({
        "schema": r#"{"type":"record","name":"Customer","namespace":"x","fields":[{"name":"home","type":"x.Address"}]}"#,
        "references": [{"name": "x.Address", "subject": "address", "version": 1}],
    });
    let (st, v) = sr
        .post("/subjects/customers-value/versions", with_ref)
        .await;
    assert_eq!(st, 200, "{v}");
    let cid = v["id"].as_i64().unwrap();
    let (_, v) = sr.get(&format!("/schemas/ids/{cid}")).await;
    assert_eq!(v["references"][0]["subject"], json!("address"));
    let (_, v) = sr.get("/subjects/address/versions/1/referencedby").await;
    assert_eq!(v, json!([cid]));
    let (st, v) = sr
        .post(
            "/subjects/broken-value/versions",
            json!({
                "schema": r#"{"type":"record","name":"B","fields":[{"name":"a","type":"x.Address"}]}"#,
                "references": [{"name": "x.Address", "subject": "address", "version": 9}],
            }),
        )
        .await;
    assert_eq!((st, code(&v)), (422, 42201), "{v}");

    // JSON Schema and lookups.
    let js = r#"{"type":"object","properties":{"n":{"type":"integer"}}}"#;
    let (st, v) = sr
        .post(
            "/subjects/j-value/versions",
            json!({"schema": js, "schemaType": "JSON"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (_, v) = sr
        .post(
            "/subjects/j-value",
            json!({"schema": js, "schemaType": "JSON"}),
        )
        .await;
    assert_eq!(
        (v["version"].as_i64(), v["schemaType"].as_str()),
        (Some(1), Some("JSON"))
    );
    let (st, v) = sr
        .post("/subjects/j-value", json!({"schema": USER_V1}))
        .await;
    assert_eq!((st, code(&v)), (404, 40403), "{v}");

    // Soft, then hard deletes.
    let (st, v) = sr.delete(&format!("/subjects/{s}?permanent=true")).await;
    assert_eq!((st, code(&v)), (404, 40405), "{v}");
    let (_, v) = sr.delete(&format!("/subjects/{s}/versions/1")).await;
    assert_eq!(v, json!(1));
    let (st, v) = sr.delete(&format!("/subjects/{s}/versions/1")).await;
    assert_eq!((st, code(&v)), (404, 40406), "{v}");
    let (_, v) = sr.get(&format!("/subjects/{s}/versions")).await;
    assert_eq!(v, json!([2]));
    let (_, v) = sr
        .get(&format!("/subjects/{s}/versions?deleted=true"))
        .await;
    assert_eq!(v, json!([1, 2]));
    let (st, v) = sr
        .delete(&format!("/subjects/{s}/versions/2?permanent=true"))
        .await;
    assert_eq!((st, code(&v)), (404, 40407), "{v}");
    let (_, v) = sr.delete(&format!("/subjects/{s}")).await;
    assert_eq!(v, json!([2]));
    let (st, v) = sr.delete(&format!("/subjects/{s}")).await;
    assert_eq!((st, code(&v)), (404, 40404), "{v}");
    let (_, v) = sr.get("/subjects").await;
    assert!(!v.as_array().unwrap().contains(&json!(s)), "{v}");
    let (_, v) = sr.get("/subjects?deleted=true").await;
    assert!(v.as_array().unwrap().contains(&json!(s)), "{v}");
    let (_, v) = sr.delete(&format!("/subjects/{s}?permanent=true")).await;
    assert_eq!(v, json!([1, 2]));
    let (_, v) = sr.get("/subjects?deleted=true").await;
    assert!(!v.as_array().unwrap().contains(&json!(s)), "{v}");
    // v2's schema is used by no version any more; v1's still by other-value.
    let (st, _) = sr.get(&format!("/schemas/ids/{id2}")).await;
    assert_eq!(st, 404);
    let (st, _) = sr.get(&format!("/schemas/ids/{id1}")).await;
    assert_eq!(st, 200);
    weir.stop().await;
}

#[tokio::test]
async fn one_tenant_cannot_see_or_touch_anothers_registry() {
    let weir = Weir::start().await;
    let a = sr(&weir);
    let (_, v) = a
        .post(
            "/subjects/secret-value/versions",
            json!({"schema": USER_V1}),
        )
        .await;
    let id = v["id"].as_i64().unwrap();
    let (key, secret) = weir.second_tenant().await;
    // Tenant B with A's environment in the path: a 404, as if absent.
    let b_on_a = Sr {
        weir: &weir,
        http: reqwest::Client::new(),
        key: key.clone(),
        secret: secret.clone(),
        env: weir.dev.env.clone(),
    };
    for (status, body) in [
        b_on_a.get("/subjects").await,
        b_on_a.get("/subjects/secret-value/versions/latest").await,
        b_on_a.get(&format!("/schemas/ids/{id}")).await,
        b_on_a
            .post(
                "/subjects/secret-value/versions",
                json!({"schema": USER_V2}),
            )
            .await,
        b_on_a.delete("/subjects/secret-value").await,
        b_on_a
            .put("/config", json!({"compatibility": "NONE"}))
            .await,
    ] {
        assert_eq!(status, 404, "{body}");
    }
    // In its own environment B sees none of A's subjects or schemas.
    let b = Sr {
        env: "env-b".into(),
        ..b_on_a
    };
    let (st, v) = b.get("/subjects").await;
    assert_eq!((st, v), (200, json!([])));
    let (st, v) = b.get(&format!("/schemas/ids/{id}")).await;
    assert_eq!((st, code(&v)), (404, 40403), "{v}");
    // Without a key, nothing.
    let resp = reqwest::get(a.url("/subjects")).await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    // A's subject is untouched.
    let (_, v) = a.get("/subjects/secret-value/versions").await;
    assert_eq!(v, json!([1]));
    weir.stop().await;
}

#[tokio::test]
async fn a_value_subject_types_its_topics_table_within_seconds() {
    let weir = Weir::start().await;
    let topic = unique("typed");
    produce(&topic, &[(0, None, "not avro".into())]).await;
    let sr = sr(&weir);
    let (st, v) = sr
        .post(
            &format!("/subjects/{topic}-value/versions"),
            json!({"schema": USER_V1}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let id = v["id"].as_i64().unwrap();
    let t = wait_table(&weir, &topic, "typed from its value subject", |t| {
        t.option("value.format") == Some("avro-registry")
    })
    .await;
    let cols: Vec<(String, String)> = t
        .columns
        .iter()
        .map(|c| (c.name.clone(), c.data_type.to_string()))
        .collect();
    assert_eq!(
        cols,
        vec![
            ("key".to_string(), "BYTES".to_string()),
            ("id".to_string(), "INT".to_string()),
            ("name".to_string(), "STRING".to_string()),
        ]
    );
    assert_eq!(t.option("value.schema-id"), Some(id.to_string().as_str()));
    // A new version shows up too.
    let (st, v) = sr
        .post(
            &format!("/subjects/{topic}-value/versions"),
            json!({"schema": USER_V2}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let id2 = v["id"].as_i64().unwrap().to_string();
    let t = wait_table(&weir, &topic, "retyped by version 2", |t| {
        t.option("value.schema-id") == Some(id2.as_str())
    })
    .await;
    assert!(t.columns.iter().any(|c| c.name == "email" && c.nullable));
    // Deleting the subject turns the table back into raw bytes.
    sr.delete(&format!("/subjects/{topic}-value")).await;
    wait_table(&weir, &topic, "raw again", |t| {
        t.option("value.format") == Some("raw")
    })
    .await;
    weir.stop().await;
}

/// A topic whose schemas are under a record-name-strategy subject is typed
/// once `ALTER TABLE ... SET ('value.subject' = ...)` names it, and stays
/// the sync's: a new version of that subject retypes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_option_names_a_record_name_strategy_subject() {
    let weir = Weir::start().await;
    let sr = sr(&weir);
    let topic = unique("rns");
    produce(&topic, &[(0, None, "x".into())]).await;
    wait_table(&weir, &topic, "discovered", |_| true).await;
    let subject = format!("com.acme.{topic}");
    let (st, v) = sr
        .post(
            &format!("/subjects/{subject}/versions"),
            json!({"schema": USER_V1}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    weir.ddl(&format!(
        "ALTER TABLE `{topic}` SET ('value.subject' = '{subject}')"
    ))
    .await;
    let t = wait_table(&weir, &topic, "typed from the named subject", |t| {
        t.option("value.format") == Some("avro-registry")
    })
    .await;
    assert_eq!(t.option("value.subject"), Some(subject.as_str()));
    assert!(t.columns.iter().any(|c| c.name == "name"));
    let (st, v) = sr
        .post(
            &format!("/subjects/{subject}/versions"),
            json!({"schema": USER_V2}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    wait_table(&weir, &topic, "retyped by version 2", |t| {
        t.columns.iter().any(|c| c.name == "email")
    })
    .await;
    weir.stop().await;
}

/// Polls the store of `weir` until its table `topic` satisfies `ok`.
async fn wait_table(
    weir: &Weir,
    topic: &str,
    what: &str,
    ok: impl Fn(&weir_catalog::TableDef) -> bool,
) -> weir_catalog::TableDef {
    let store = &weir.server.as_ref().unwrap().state.store;
    let cluster = store
        .list_clusters(&weir.dev.org, &weir.dev.env)
        .await
        .unwrap()[0]
        .id
        .clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(t) = store
            .get_table(&weir.dev.org, &weir.dev.env, &cluster, topic)
            .await
            .unwrap()
        {
            if ok(&t) {
                return t;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "table {topic}: {what}, not within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An environment pointed at an external Confluent-compatible registry
/// (here another Weir's, a separate server and store, reached over HTTP
/// with basic auth) takes its tables' types from it, registers its sinks'
/// schemas in it and decodes records by the ids it hands out; its built-in
/// registry steps aside until the setting is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_environment_syncs_from_reads_and_writes_an_external_registry() {
    let external = Weir::start().await;
    let weir = Weir::start().await;
    let ext = sr(&external);
    let http = reqwest::Client::new();
    let settings = format!(
        "{}/weir/v1/environments/{}/schema-registry",
        weir.url(),
        weir.dev.env
    );
    let put = |body: Value| {
        http.put(&settings)
            .basic_auth(&weir.dev.key, Some(&weir.dev.secret))
            .json(&body)
            .send()
    };
    let ext_url = format!("{}/schema-registry/{}", external.url(), external.dev.env);
    // Wrong credentials and an unreachable URL are refused with why.
    let r = put(json!({"url": ext_url, "username": external.dev.key, "password": "wrong"}))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let text = r.text().await.unwrap();
    assert!(text.contains("refused the credentials"), "{text}");
    let r = put(json!({"url": "http://127.0.0.1:9/nothing"}))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // The right ones are kept; the password is never shown.
    let r =
        put(json!({"url": ext_url, "username": external.dev.key, "password": external.dev.secret}))
            .await
            .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["built_in"], json!(false));
    assert_eq!(v["password_set"], json!(true));
    assert!(!v.to_string().contains(&external.dev.secret));
    // At rest the password is sealed with the server's key; the sync below
    // opens it to authenticate.
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&weir.database_url).await.unwrap();
    let stored: String =
        sqlx::query_scalar("SELECT schema_registry FROM environments WHERE id = $1")
            .bind(&weir.dev.env)
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(
        stored.contains("sealed:v1:") && !stored.contains(&external.dev.secret),
        "{stored}"
    );
    db.close().await;
    // The environment's built-in registry now points elsewhere.
    let (st, v) = sr(&weir).get("/subjects").await;
    assert_eq!(st, 404, "{v}");
    assert!(v["message"].as_str().unwrap().contains(&ext_url), "{v}");

    // A subject of the external registry types the topic's table.
    let topic = unique("ext_typed");
    produce(&topic, &[(0, None, "not avro".into())]).await;
    let (st, v) = ext
        .post(
            &format!("/subjects/{topic}-value/versions"),
            json!({"schema": USER_V1}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let id = v["id"].as_i64().unwrap().to_string();
    let t = wait_table(&weir, &topic, "typed from the external subject", |t| {
        t.option("value.schema-id") == Some(id.as_str())
    })
    .await;
    assert_eq!(t.option("value.format"), Some("avro-registry"));
    assert!(t.columns.iter().any(|c| c.name == "name"));

    // A sink created here registers its schema there, and what it writes
    // is read back here by the ids the external registry gave.
    let sink = unique("ext_sink");
    weir.ddl(&format!(
        "CREATE TABLE `{sink}` (id INT, name STRING) WITH ('value.format' = 'avro-registry')"
    ))
    .await;
    let (st, v) = ext.get(&format!("/subjects/{sink}-value/versions")).await;
    assert_eq!((st, v.clone()), (200, json!([1])), "{v}");
    weir.submit(
        "write",
        &format!("INSERT INTO `{sink}` VALUES (1, 'ann'), (2, 'bob')"),
    )
    .await
    .unwrap();
    weir.wait_phase("write", Phase::Completed, Duration::from_secs(60))
        .await;
    weir.submit("read-back", &format!("SELECT id, name FROM `{sink}`"))
        .await
        .unwrap();
    let mut rows = vec![];
    let mut next: Option<String> = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while rows.len() < 2 {
        assert!(std::time::Instant::now() < deadline, "read back {rows:?}");
        let page = weir
            .client
            .results("read-back", next.as_deref())
            .await
            .unwrap();
        rows.extend(page.results.data.into_iter().map(|r| r.row));
        next = Some(page.metadata.next);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rows.sort_by(|a, b| a[0].as_str().cmp(&b[0].as_str()));
    assert_eq!(
        rows,
        vec![
            vec![json!("1"), json!("ann")],
            vec![json!("2"), json!("bob")]
        ]
    );
    // An incompatible sink schema is refused by the external registry.
    let r = weir
        .submit(
            "incompatible",
            &format!("CREATE TABLE `{topic}_x` (id STRING, name STRING) WITH ('value.format' = 'avro-registry', 'value.subject' = '{topic}-value')"),
        )
        .await;
    let detail = match r {
        Ok(s) => s.status.detail,
        Err(e) => e.to_string(),
    };
    assert!(detail.contains("incompatible"), "{detail}");

    // DROP TABLE leaves the subject there, unless the statement asks.
    weir.client.delete_statement("read-back").await.unwrap();
    let other = unique("ext_other");
    weir.ddl(&format!(
        "CREATE TABLE `{other}` (id INT) WITH ('value.format' = 'avro-registry')"
    ))
    .await;
    weir.ddl(&format!("DROP TABLE `{other}`")).await;
    let (st, _) = ext.get(&format!("/subjects/{other}-value/versions")).await;
    assert_eq!(st, 200, "DROP TABLE leaves the subject");
    let props = [(
        "sql.drop-table.delete-subjects".to_string(),
        "true".to_string(),
    )]
    .into_iter()
    .collect();
    let s = weir
        .submit_with("drop-sink", &format!("DROP TABLE `{sink}`"), props)
        .await
        .unwrap();
    assert_eq!(s.status.phase, Phase::Completed, "{}", s.status.detail);
    let (st, v) = ext.get(&format!("/subjects/{sink}-value/versions")).await;
    assert_eq!((st, code(&v)), (404, 40401), "the subject is deleted: {v}");

    // Removing the setting returns the environment to its built-in one.
    let r = http
        .delete(&settings)
        .basic_auth(&weir.dev.key, Some(&weir.dev.secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (st, v) = sr(&weir).get("/subjects").await;
    assert_eq!(st, 200, "{v}");
    // Another organization cannot read or change this environment's setting.
    let (key_b, secret_b) = weir.second_tenant().await;
    let r = http
        .get(&settings)
        .basic_auth(&key_b, Some(&secret_b))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = http
        .put(&settings)
        .basic_auth(&key_b, Some(&secret_b))
        .json(&json!({"url": ext_url}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    weir.stop().await;
    external.stop().await;
}

/// A TLS endpoint on a free local port that forwards to `backend`, with the
/// test certificate of `tests/fixtures/tls` (127.0.0.1, signed by `ca.pem`).
async fn tls_proxy(backend: std::net::SocketAddr) -> std::net::SocketAddr {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");
    let certs = CertificateDer::pem_file_iter(format!("{dir}/server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(format!("{dir}/server.key")).unwrap();
    let config = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut up) = tokio::net::TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_external_registry_over_https_is_trusted_through_its_ca_certificate() {
    let external = Weir::start().await;
    let weir = Weir::start().await;
    let backend: std::net::SocketAddr = external
        .url()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let proxy = tls_proxy(backend).await;
    let ext_url = format!("https://{proxy}/schema-registry/{}", external.dev.env);
    let ca = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tls/ca.pem"
    ))
    .unwrap();
    let http = reqwest::Client::new();
    let settings = format!(
        "{}/weir/v1/environments/{}/schema-registry",
        weir.url(),
        weir.dev.env
    );
    let put = |body: Value| {
        http.put(&settings)
            .basic_auth(&weir.dev.key, Some(&weir.dev.secret))
            .json(&body)
            .send()
    };
    let creds = |extra: Value| {
        let mut body = json!({
            "url": ext_url,
            "username": external.dev.key,
            "password": external.dev.secret,
        });
        if let Value::Object(m) = extra {
            body.as_object_mut().unwrap().extend(m);
        }
        body
    };
    // A certificate from an unknown CA is refused, and the answer says so.
    let r = put(creds(json!({}))).await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let text = r.text().await.unwrap();
    assert!(text.to_lowercase().contains("certificate"), "{text}");
    // Something that is not a certificate is refused before any request.
    let r = put(creds(json!({"ca_certificate": "not a certificate"})))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let text = r.text().await.unwrap();
    assert!(text.contains("ca_certificate"), "{text}");
    // A CA certificate for a plain http URL is a mistake worth naming.
    let plain = format!("{}/schema-registry/{}", external.url(), external.dev.env);
    let r = put(json!({"url": plain, "ca_certificate": ca}))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // With the registry's CA the environment syncs over https.
    let r = put(creds(json!({"ca_certificate": ca}))).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["url"], json!(ext_url));
    assert_eq!(v["ca_certificate"], json!(ca));
    let topic = unique("tls_typed");
    produce(&topic, &[(0, None, "not avro".into())]).await;
    let (st, v) = sr(&external)
        .post(
            &format!("/subjects/{topic}-value/versions"),
            json!({"schema": USER_V1}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let id = v["id"].as_i64().unwrap().to_string();
    let t = wait_table(&weir, &topic, "typed over https", |t| {
        t.option("value.schema-id") == Some(id.as_str())
    })
    .await;
    assert_eq!(t.option("value.format"), Some("avro-registry"));
}
