//! `weir_environment` and `weir_kafka_cluster`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tf_provider::schema::Schema;
use tf_provider::value::Value;
use tf_provider::Diagnostics;

use crate::common::{
    api_error, computed, default_environment, delete_json, env_and_id, get_json, imported, known,
    optional, optional_computed, required, schema, send_json, sensitive, string, unknown_if_null,
    Conn, Str,
};
use crate::lifecycle::Lifecycle;

pub struct Environment;

#[derive(Serialize, Deserialize, Clone, PartialEq, Default)]
pub struct EnvironmentState {
    #[serde(default)]
    id: Str,
    #[serde(default)]
    display_name: Str,
    #[serde(default)]
    resource_name: Str,
}

fn environment_state(v: &serde_json::Value) -> EnvironmentState {
    EnvironmentState {
        id: Value::Value(v["id"].as_str().unwrap_or_default().to_string()),
        display_name: Value::Value(v["display_name"].as_str().unwrap_or_default().to_string()),
        resource_name: Value::Value(
            v["metadata"]["resource_name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ),
    }
}

#[async_trait]
impl Lifecycle for Environment {
    type State = EnvironmentState;

    fn schema(&self) -> Schema {
        schema(
            "An environment: a SQL catalog of Kafka clusters, compute pools and statements.",
            vec![
                ("id", computed(string(), "The environment's id (env-...).")),
                (
                    "display_name",
                    required(
                        string(),
                        "Its name; the catalog's name in SQL. Changes in place.",
                    ),
                ),
                (
                    "resource_name",
                    computed(string(), "Its CRN, as role bindings name it."),
                ),
            ],
        )
    }

    fn plan_create(&self, _conn: Option<&Conn>, planned: &mut Self::State) {
        unknown_if_null(&mut planned.id);
        unknown_if_null(&mut planned.resource_name);
    }

    fn replaced_by(&self, _prior: &Self::State, _planned: &Self::State) -> Vec<&'static str> {
        vec![]
    }

    async fn read(
        &self,
        conn: &Conn,
        diags: &mut Diagnostics,
        state: Self::State,
    ) -> Result<Option<Self::State>, ()> {
        let id = known(&state.id).unwrap_or_default();
        let path = format!("/org/v2/environments/{id}");
        Ok(get_json(conn, diags, &format!("environment {id}"), &path)
            .await?
            .map(|v| environment_state(&v)))
    }

    async fn create(
        &self,
        conn: &Conn,
        diags: &mut Diagnostics,
        planned: Self::State,
    ) -> Option<Self::State> {
        let name = known(&planned.display_name).unwrap_or_default();
        send_json(
            conn,
            diags,
            format!("Creating environment {name}"),
            "POST",
            "/org/v2/environments",
            Some(&json!({ "display_name": name })),
        )
        .await
        .map(|v| environment_state(&v))
    }

    async fn update(
        &self,
        conn: &Conn,
        diags: &mut Diagnostics,
        prior: Self::State,
        planned: Self::State,
    ) -> Option<Self::State> {
        let id = known(&prior.id).unwrap_or_default();
        let name = known(&planned.display_name).unwrap_or_default();
        send_json(
            conn,
            diags,
            format!("Renaming environment {id}"),
            "PATCH",
            &format!("/org/v2/environments/{id}"),
            Some(&json!({ "display_name": name })),
        )
        .await
        .map(|v| environment_state(&v))
    }

    async fn delete(&self, conn: &Conn, diags: &mut Diagnostics, prior: Self::State) -> Option<()> {
        let id = known(&prior.id).unwrap_or_default();
        let path = format!("/org/v2/environments/{id}");
        delete_json(conn, diags, &format!("environment {id}"), &path).await
    }

    async fn import(&self, conn: &Conn, diags: &mut Diagnostics, id: &str) -> Option<Self::State> {
        let state = EnvironmentState {
            id: Value::Value(id.to_string()),
            ..Default::default()
        };
        let read = self.read(conn, diags, state).await;
        imported(diags, &format!("environment {id}"), read)
    }
}

pub struct KafkaCluster;

#[derive(Serialize, Deserialize, Clone, PartialEq, Default)]
pub struct KafkaClusterState {
    #[serde(default)]
    id: Str,
    #[serde(default)]
    environment: Str,
    #[serde(default)]
    display_name: Str,
    #[serde(default)]
    bootstrap_endpoint: Str,
    #[serde(default)]
    sasl_mechanism: Str,
    #[serde(default)]
    sasl_username: Str,
    #[serde(default)]
    sasl_password: Str,
}

fn cluster_state(v: &serde_json::Value, sasl_password: Str) -> KafkaClusterState {
    let s = |p: &serde_json::Value| Value::Value(p.as_str().unwrap_or_default().to_string());
    let creds = &v["spec"]["credentials"];
    KafkaClusterState {
        id: s(&v["id"]),
        environment: s(&v["spec"]["environment"]["id"]),
        display_name: s(&v["spec"]["display_name"]),
        bootstrap_endpoint: s(&v["spec"]["kafka_bootstrap_endpoint"]),
        sasl_mechanism: creds["mechanism"]
            .as_str()
            .map(|m| Value::Value(m.to_string()))
            .unwrap_or(Value::Null),
        sasl_username: creds["username"]
            .as_str()
            .map(|m| Value::Value(m.to_string()))
            .unwrap_or(Value::Null),
        // Weir never shows it: what the configuration said is kept.
        sasl_password,
    }
}

#[async_trait]
impl Lifecycle for KafkaCluster {
    type State = KafkaClusterState;

    fn schema(&self) -> Schema {
        schema(
            "A Kafka cluster registered in an environment: its topics become the tables of a database named after it.",
            vec![
                ("id", computed(string(), "The cluster's id (lkc-...).")),
                ("environment", optional_computed(string(), "The environment (the provider's when unset).")),
                ("display_name", required(string(), "The database name of its topics' tables.")),
                ("bootstrap_endpoint", required(string(), "host:port[,host:port...]")),
                ("sasl_mechanism", optional(string(), "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 when the cluster needs SASL.")),
                ("sasl_username", optional(string(), "The SASL user.")),
                ("sasl_password", sensitive(optional(string(), "The SASL password; Weir keeps it sealed and never shows it back."))),
            ],
        )
    }

    fn plan_create(&self, conn: Option<&Conn>, planned: &mut Self::State) {
        unknown_if_null(&mut planned.id);
        default_environment(conn, &mut planned.environment);
    }

    fn replaced_by(&self, prior: &Self::State, planned: &Self::State) -> Vec<&'static str> {
        // Weir has no update of a registration: any change is a new one.
        let mut r = vec![];
        for (name, a, b) in [
            ("environment", &prior.environment, &planned.environment),
            ("display_name", &prior.display_name, &planned.display_name),
            (
                "bootstrap_endpoint",
                &prior.bootstrap_endpoint,
                &planned.bootstrap_endpoint,
            ),
            (
                "sasl_mechanism",
                &prior.sasl_mechanism,
                &planned.sasl_mechanism,
            ),
            (
                "sasl_username",
                &prior.sasl_username,
                &planned.sasl_username,
            ),
            (
                "sasl_password",
                &prior.sasl_password,
                &planned.sasl_password,
            ),
        ] {
            if a != b {
                r.push(name);
            }
        }
        r
    }

    async fn read(
        &self,
        conn: &Conn,
        diags: &mut Diagnostics,
        state: Self::State,
    ) -> Result<Option<Self::State>, ()> {
        let id = known(&state.id).unwrap_or_default();
        let env = known(&state.environment).unwrap_or(&conn.environment);
        let path = format!("/cmk/v2/clusters/{id}?environment={env}");
        Ok(get_json(conn, diags, &format!("Kafka cluster {id}"), &path)
            .await?
            .map(|v| cluster_state(&v, state.sasl_password.clone())))
    }

    async fn create(
        &self,
        conn: &Conn,
        diags: &mut Diagnostics,
        planned: Self::State,
    ) -> Option<Self::State> {
        let name = known(&planned.display_name).unwrap_or_default();
        let env = known(&planned.environment).unwrap_or(&conn.environment);
        let mut spec = json!({
            "display_name": name,
            "kafka_bootstrap_endpoint": known(&planned.bootstrap_endpoint).unwrap_or_default(),
            "environment": {"id": env},
        });
        if let Some(user) = known(&planned.sasl_username) {
            spec["credentials"] = json!({
                "mechanism": known(&planned.sasl_mechanism).unwrap_or("PLAIN"),
                "username": user,
                "password": known(&planned.sasl_password).unwrap_or_default(),
            });
        }
        match conn
            .client(None)
            .json("POST", "/cmk/v2/clusters", Some(&json!({ "spec": spec })))
            .await
        {
            Ok(v) => {
                let mut s = cluster_state(&v, planned.sasl_password.clone());
                // Keep the mechanism as written when Weir filled in its default.
                if planned.sasl_mechanism.is_null() {
                    s.sasl_mechanism = Value::Null;
                }
                Some(s)
            }
            Err(e) => {
                api_error(diags, format!("Registering Kafka cluster {name}"), &e);
                None
            }
        }
    }

    async fn update(
        &self,
        _conn: &Conn,
        _diags: &mut Diagnostics,
        _prior: Self::State,
        planned: Self::State,
    ) -> Option<Self::State> {
        // Every attribute replaces; nothing is updated in place.
        Some(planned)
    }

    async fn delete(&self, conn: &Conn, diags: &mut Diagnostics, prior: Self::State) -> Option<()> {
        let id = known(&prior.id).unwrap_or_default();
        let env = known(&prior.environment).unwrap_or(&conn.environment);
        let path = format!("/cmk/v2/clusters/{id}?environment={env}");
        delete_json(conn, diags, &format!("Kafka cluster {id}"), &path).await
    }

    async fn import(&self, conn: &Conn, diags: &mut Diagnostics, id: &str) -> Option<Self::State> {
        let (env, id) = env_and_id(conn, id);
        let state = KafkaClusterState {
            id: Value::Value(id.to_string()),
            environment: Value::Value(env.to_string()),
            ..Default::default()
        };
        let read = self.read(conn, diags, state).await;
        imported(diags, &format!("Kafka cluster {id} in {env}"), read)
    }
}
