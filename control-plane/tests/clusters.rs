//! Kafka cluster registrations: an environment admin registers a cluster
//! (`POST /cmk/v2/clusters`); its topics become the tables of a database
//! named after it, which statements read; a cluster that does not answer,
//! a bad name or a duplicate is refused with why; removing one is refused
//! while statements run, then forgets its tables; another organization
//! cannot see or touch it. A cluster that asks for SASL/PLAIN is reached
//! with the credentials it was registered with, which are sealed at rest
//! and never shown or logged.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use weir_api::Phase;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_cluster_brings_its_topics_as_a_database() {
    let weir = Weir::start().await;
    let api = Api::new(&weir);
    let admin = (weir.dev.key.as_str(), weir.dev.secret.as_str());
    let (org, env) = (weir.dev.org.clone(), weir.dev.env.clone());
    let register = |name: &str, bootstrap: &str, extra: Value| {
        let mut spec = json!({"display_name": name, "kafka_bootstrap_endpoint": bootstrap,
                              "environment": {"id": env}});
        if let Value::Object(m) = extra {
            spec.as_object_mut().unwrap().extend(m);
        }
        api.call(
            admin,
            "POST",
            "/cmk/v2/clusters",
            Some(json!({"spec": spec})),
        )
    };
    let message = |v: &Value| v.to_string();
    // Refusals that say why.
    let (st, v) = register("far", "127.0.0.1:9", json!({})).await;
    assert_eq!(st, 400, "{v}");
    assert!(message(&v).contains("did not answer"), "{v}");
    let (st, v) = register("no spaces please", &broker(), json!({})).await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = register("x", "not-a-bootstrap", json!({})).await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = register(
        "sasl",
        &broker(),
        json!({"credentials": {"mechanism": "GSSAPI", "username": "u", "password": "p"}}),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    assert!(message(&v).contains("'GSSAPI' is not supported"), "{v}");

    // The test broker once more, as a second cluster named `mirror`.
    let topic = unique("mirrored");
    produce(&topic, &[(0, None, "one".into()), (0, None, "two".into())]).await;
    let (st, c) = register("mirror", &broker(), json!({})).await;
    assert_eq!(st, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_string();
    assert_eq!(c["spec"]["display_name"], json!("mirror"));
    let (st, v) = register("mirror", &broker(), json!({})).await;
    assert_eq!(st, 409, "a second cluster of the same name: {v}");
    let (st, list) = api
        .call(
            admin,
            "GET",
            &format!("/cmk/v2/clusters?environment={env}"),
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(list["data"].as_array().unwrap().len(), 2, "{list}");
    // Its topics become the tables of database `mirror`.
    let store = &weir.server.as_ref().unwrap().state.store;
    wait_for_table(store, &org, &env, &id, &topic).await;
    let bounded = format!(
        "SELECT CAST(val AS STRING) AS v FROM `mirror`.`{topic}` /*+ OPTIONS('scan.bounded.mode'='latest-offset') */"
    );
    weir.submit("read-mirror", &bounded).await.unwrap();
    let done = weir
        .wait_phase("read-mirror", Phase::Completed, Duration::from_secs(30))
        .await;
    assert_eq!(done.status.phase, Phase::Completed, "{:?}", done.status);

    // Not while a statement runs.
    weir.submit("tail-mirror", &format!("SELECT * FROM `mirror`.`{topic}`"))
        .await
        .unwrap();
    weir.wait_phase("tail-mirror", Phase::Running, Duration::from_secs(30))
        .await;
    let path = format!("/cmk/v2/clusters/{id}?environment={env}");
    let (st, v) = api.call(admin, "DELETE", &path, None).await;
    assert_eq!(st, 409, "{v}");
    assert!(message(&v).contains("tail-mirror"), "{v}");

    // Another organization sees and touches none of it.
    let other = weir.second_tenant().await;
    let other = (other.0.as_str(), other.1.as_str());
    let (st, _) = api.call(other, "DELETE", &path, None).await;
    assert_eq!(st, 404);
    let (st, _) = api
        .call(
            other,
            "GET",
            &format!("/cmk/v2/clusters?environment={env}"),
            None,
        )
        .await;
    assert_eq!(st, 404);

    // Stopped, it goes, with its tables; the topics stay in Kafka.
    let (st, v) = api
        .call(
            admin,
            "DELETE",
            &format!("/sql/v1/organizations/{org}/environments/{env}/statements/tail-mirror"),
            None,
        )
        .await;
    assert!(st < 300, "{v}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (st, v) = api.call(admin, "DELETE", &path, None).await;
        if st == 204 {
            break;
        }
        assert_eq!(st, 409, "{v}");
        assert!(std::time::Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(store
        .get_table(&org, &env, &id, &topic)
        .await
        .unwrap()
        .is_none());
    let default_cluster = &store.list_clusters(&org, &env).await.unwrap()[0];
    assert!(store
        .get_table(&org, &env, &default_cluster.id, &topic)
        .await
        .unwrap()
        .is_some());
    weir.stop().await;
}

/// Waits up to 30 s for the sync to make `topic` a table of cluster `id`.
async fn wait_for_table(store: &weir_catalog::Store, org: &str, env: &str, id: &str, topic: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while store
        .get_table(org, env, id, topic)
        .await
        .unwrap()
        .is_none()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{topic} becomes a table of cluster {id}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A record produced to an authenticating broker.
async fn produce_sasl(bootstrap: &str, topic: &str, values: &[&str]) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let p: FutureProducer = secured_connection(bootstrap)
        .client_config()
        .create()
        .unwrap();
    for v in values {
        p.send(
            FutureRecord::<(), str>::to(topic).payload(*v),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    }
}

const SASL_PASSWORD: &str = "pw-7c1e9a0b5d";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_asks_for_sasl_is_read_and_written_with_its_sealed_credentials() {
    let lines = LogLines::install();
    let secured = weir_broker::Broker::start(weir_broker::BrokerConfig {
        listen: "127.0.0.1:0".into(),
        sasl_plain_users: [("weir-app".to_string(), SASL_PASSWORD.to_string())].into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let bootstrap = secured.addr().to_string();
    produce_sasl(&bootstrap, "payments", &["10", "20", "30"]).await;

    let weir = Weir::start().await;
    let api = Api::new(&weir);
    let admin = (weir.dev.key.as_str(), weir.dev.secret.as_str());
    let (org, env) = (weir.dev.org.clone(), weir.dev.env.clone());
    let register = |password: Option<&str>| {
        let mut spec = json!({"display_name": "secured", "kafka_bootstrap_endpoint": bootstrap,
                              "environment": {"id": env}});
        if let Some(p) = password {
            spec["credentials"] = json!({"username": "weir-app", "password": p});
        }
        api.call(
            admin,
            "POST",
            "/cmk/v2/clusters",
            Some(json!({"spec": spec})),
        )
    };
    // Without credentials, or with a wrong password, it does not answer.
    for password in [None, Some("wrong-password")] {
        let (st, v) = register(password).await;
        assert_eq!(st, 400, "{v}");
        assert!(v.to_string().contains("did not answer"), "{v}");
    }
    let (st, c) = register(Some(SASL_PASSWORD)).await;
    assert_eq!(st, 201, "{c}");
    assert_eq!(
        c["spec"]["credentials"],
        json!({"mechanism": "PLAIN", "username": "weir-app"})
    );
    let id = c["id"].as_str().unwrap().to_string();

    // Sealed at rest: the row holds no password.
    let store = &weir.server.as_ref().unwrap().state.store;
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&weir.database_url).await.unwrap();
    let raw: String = sqlx::query_scalar("SELECT sasl_password FROM kafka_clusters WHERE id = $1")
        .bind(&id)
        .fetch_one(&db)
        .await
        .unwrap();
    assert!(raw.starts_with("sealed:v1:"), "{raw}");
    assert!(!raw.contains(SASL_PASSWORD));

    // The sync reads its topics with the credentials.
    wait_for_table(store, &org, &env, &id, "payments").await;
    // A statement creates a table there, reads one and writes the other.
    weir.ddl("CREATE TABLE `secured`.`doubled` (v INT) WITH ('value.format' = 'json')")
        .await;
    weir.submit(
        "double",
        "INSERT INTO `secured`.`doubled` SELECT CAST(CAST(val AS STRING) AS INT) * 2 FROM `secured`.`payments` \
         /*+ OPTIONS('scan.bounded.mode'='latest-offset') */",
    )
    .await
    .unwrap();
    let done = weir
        .wait_phase("double", Phase::Completed, Duration::from_secs(60))
        .await;
    assert_eq!(done.status.phase, Phase::Completed, "{:?}", done.status);
    let c: rdkafka::consumer::BaseConsumer = secured_connection(&bootstrap)
        .client_config()
        .set("group.id", "check")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    let got = tokio::task::spawn_blocking(move || {
        use rdkafka::consumer::Consumer;
        use rdkafka::Message;
        c.subscribe(&["doubled"]).unwrap();
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while got.len() < 3 && std::time::Instant::now() < deadline {
            if let Some(m) = c.poll(Duration::from_millis(100)) {
                let m = m.unwrap();
                got.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
            }
        }
        got.sort();
        got
    })
    .await
    .unwrap();
    assert_eq!(got, vec![r#"{"v":20}"#, r#"{"v":40}"#, r#"{"v":60}"#]);

    // One statement, one cluster: tables of two are refused, saying so.
    let default_db = store.list_clusters(&org, &env).await.unwrap()[0]
        .name
        .clone();
    let copy = unique("copy");
    weir.ddl(&format!(
        "CREATE TABLE `{default_db}`.`{copy}` (v INT) WITH ('value.format' = 'json')"
    ))
    .await;
    for sql in [
        format!("INSERT INTO `{default_db}`.`{copy}` SELECT v FROM `secured`.`doubled`"),
        format!("INSERT INTO `secured`.`doubled` SELECT v FROM `{default_db}`.`{copy}`"),
    ] {
        let e = format!("{:?}", weir.submit("across", &sql).await);
        assert!(e.contains("different clusters"), "{sql}: {e}");
    }

    // Never shown or logged.
    let (_, list) = api
        .call(
            admin,
            "GET",
            &format!("/cmk/v2/clusters?environment={env}"),
            None,
        )
        .await;
    assert!(!list.to_string().contains(SASL_PASSWORD), "{list}");
    assert!(
        !lines.text().contains(SASL_PASSWORD),
        "the password is in a log line"
    );
    weir.stop().await;
    secured.stop().await;
}

fn secured_connection(bootstrap: &str) -> weir_catalog::KafkaConnection {
    weir_catalog::KafkaConnection {
        bootstrap: bootstrap.into(),
        sasl: Some(weir_catalog::SaslCredentials {
            mechanism: "PLAIN".into(),
            username: "weir-app".into(),
            password: SASL_PASSWORD.into(),
        }),
    }
}
