//! Kafka cluster registrations: an environment admin registers a cluster
//! (`POST /cmk/v2/clusters`); its topics become the tables of a database
//! named after it, which statements read; a cluster that does not answer,
//! a bad name or a duplicate is refused with why; removing one is refused
//! while statements run, then forgets its tables; another organization
//! cannot see or touch it.

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
        json!({"credentials": {"username": "u", "password": "p"}}),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    assert!(message(&v).contains("not supported yet"), "{v}");

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
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while store
        .get_table(&org, &env, &id, &topic)
        .await
        .unwrap()
        .is_none()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the topic becomes a table of mirror"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
