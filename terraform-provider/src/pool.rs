//! `weir_compute_pool`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{AttributeType, Schema};
use tf_provider::value::Value;
use tf_provider::{AttributePath, Diagnostics};
use weir_api::{ComputePool, ComputePoolRequest, ComputePoolSpec, EnvironmentRef, MAX_POOL_CFU};

use crate::common::{
    api_error, computed, default_environment, env_and_id, imported, is_not_found, known,
    optional_computed, required, schema, string, unknown_if_null, Conn, Str,
};
use crate::lifecycle::Lifecycle;

pub struct ComputePoolLifecycle;

#[derive(Serialize, Deserialize, Clone, PartialEq, Default)]
pub struct PoolState {
    #[serde(default)]
    id: Str,
    #[serde(default)]
    environment: Str,
    #[serde(default)]
    display_name: Str,
    #[serde(default)]
    max_cfu: Value<i64>,
    #[serde(default)]
    resource_name: Str,
}

fn pool_state(p: &ComputePool) -> PoolState {
    PoolState {
        id: Value::Value(p.id.clone()),
        environment: Value::Value(
            p.spec
                .environment
                .as_ref()
                .map(|e| e.id.clone())
                .unwrap_or_default(),
        ),
        display_name: Value::Value(p.spec.display_name.clone().unwrap_or_default()),
        max_cfu: Value::Value(p.spec.max_cfu.unwrap_or_default()),
        resource_name: Value::Value(p.metadata.resource_name.clone()),
    }
}

/// Checks `max_cfu` where it is known: at plan time when the configuration
/// writes it.
pub fn check_max_cfu(diags: &mut Diagnostics, v: &Value<i64>) {
    if let Value::Value(n) = v {
        if !(1..=MAX_POOL_CFU).contains(n) {
            diags.error(
                "Invalid max_cfu",
                format!("max_cfu is {n}; a pool has between 1 and {MAX_POOL_CFU} CFUs"),
                AttributePath::new("max_cfu"),
            );
        }
    }
}

#[async_trait]
impl Lifecycle for ComputePoolLifecycle {
    type State = PoolState;

    fn schema(&self) -> Schema {
        schema(
            "A compute pool: the CFUs (task slots) an environment's statements run on. Its workers come and go with the statements' load, up to max_cfu.",
            vec![
                ("id", computed(string(), "The pool's id (lfcp-...).")),
                ("environment", optional_computed(string(), "The environment (the provider's when unset). Changing it replaces the pool.")),
                ("display_name", required(string(), "Its name. Changes in place.")),
                ("max_cfu", required(AttributeType::Number, "The most CFUs its statements may hold at once, 1 to 1024. Changes in place, also while statements run.")),
                ("resource_name", computed(string(), "Its CRN, as role bindings name it.")),
            ],
        )
    }

    fn validate(&self, diags: &mut Diagnostics, config: &Self::State) {
        check_max_cfu(diags, &config.max_cfu);
        if let Value::Value(n) = &config.display_name {
            if n.trim().is_empty() {
                diags.error_short("display_name is empty", AttributePath::new("display_name"));
            }
        }
    }

    fn plan_create(&self, conn: Option<&Conn>, planned: &mut Self::State) {
        unknown_if_null(&mut planned.id);
        unknown_if_null(&mut planned.resource_name);
        default_environment(conn, &mut planned.environment);
    }

    fn replaced_by(&self, prior: &Self::State, planned: &Self::State) -> Vec<&'static str> {
        if prior.environment != planned.environment {
            vec!["environment"]
        } else {
            vec![]
        }
    }

    async fn read(
        &self,
        conn: &Conn,
        diags: &mut Diagnostics,
        state: Self::State,
    ) -> Result<Option<Self::State>, ()> {
        let id = known(&state.id).unwrap_or_default();
        let client = conn.client(known(&state.environment));
        match client.get_pool(id).await {
            Ok(p) => Ok(Some(pool_state(&p))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => {
                api_error(diags, format!("Reading compute pool {id}"), &e);
                Err(())
            }
        }
    }

    async fn create(
        &self,
        conn: &Conn,
        diags: &mut Diagnostics,
        planned: Self::State,
    ) -> Option<Self::State> {
        let env = known(&planned.environment).unwrap_or(&conn.environment);
        let req = ComputePoolRequest {
            spec: ComputePoolSpec {
                display_name: known(&planned.display_name).map(str::to_string),
                max_cfu: planned.max_cfu.as_ref_option().copied(),
                environment: Some(EnvironmentRef {
                    id: env.to_string(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        };
        match conn.client(Some(env)).create_pool(&req).await {
            Ok(p) => Some(pool_state(&p)),
            Err(e) => {
                api_error(diags, "Creating the compute pool", &e);
                None
            }
        }
    }

    async fn update(
        &self,
        conn: &Conn,
        diags: &mut Diagnostics,
        prior: Self::State,
        planned: Self::State,
    ) -> Option<Self::State> {
        let id = known(&prior.id).unwrap_or_default();
        let req = ComputePoolRequest {
            spec: ComputePoolSpec {
                display_name: known(&planned.display_name).map(str::to_string),
                max_cfu: planned.max_cfu.as_ref_option().copied(),
                ..Default::default()
            },
        };
        match conn
            .client(known(&prior.environment))
            .update_pool(id, &req)
            .await
        {
            Ok(p) => Some(pool_state(&p)),
            Err(e) => {
                api_error(diags, format!("Updating compute pool {id}"), &e);
                None
            }
        }
    }

    async fn delete(&self, conn: &Conn, diags: &mut Diagnostics, prior: Self::State) -> Option<()> {
        let id = known(&prior.id).unwrap_or_default();
        match conn.client(known(&prior.environment)).delete_pool(id).await {
            Ok(()) => Some(()),
            Err(e) if is_not_found(&e) => Some(()),
            Err(e) => {
                api_error(diags, format!("Deleting compute pool {id}"), &e);
                None
            }
        }
    }

    async fn import(&self, conn: &Conn, diags: &mut Diagnostics, id: &str) -> Option<Self::State> {
        let (env, id) = env_and_id(conn, id);
        let state = PoolState {
            id: Value::Value(id.to_string()),
            environment: Value::Value(env.to_string()),
            ..Default::default()
        };
        let read = self.read(conn, diags, state).await;
        imported(diags, &format!("compute pool {id} in {env}"), read)
    }
}
