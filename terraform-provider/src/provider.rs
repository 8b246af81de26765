//! The provider block: where Weir is and which key to use.

use std::collections::HashMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::Schema;
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{Diagnostics, DynamicDataSource, DynamicResource, Provider};
use weir_api::Credentials;

use crate::common::{api_error, optional, schema, sensitive, string, Conn, Shared, Str};

/// Weir as a Terraform provider.
#[derive(Default)]
pub struct WeirProvider {
    shared: Shared,
}

#[derive(Serialize, Deserialize, Default)]
pub struct ProviderConfig {
    #[serde(default)]
    endpoint: Str,
    #[serde(default)]
    api_key: Str,
    #[serde(default)]
    api_secret: Str,
    #[serde(default)]
    organization: Str,
    #[serde(default)]
    environment: Str,
    #[serde(default)]
    compute_pool: Str,
    #[serde(default)]
    principal: Str,
}

/// The attribute, else the environment variable, else `None`. `Err` when
/// the attribute is unknown (it comes from a resource not applied yet).
fn setting(v: &Str, var: &str) -> Result<Option<String>, ()> {
    match v {
        Value::Value(s) if !s.is_empty() => Ok(Some(s.clone())),
        Value::Unknown => Err(()),
        _ => Ok(std::env::var(var).ok().filter(|s| !s.is_empty())),
    }
}

#[async_trait]
impl Provider for WeirProvider {
    type Config<'a> = ProviderConfig;
    type MetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(schema(
            "Weir: serverless Flink SQL on Kafka. Every setting falls back to the environment variable `weir login` and `weir dev`'s dev.env use.",
            vec![
                ("endpoint", optional(string(), "Weir's API URL, e.g. http://127.0.0.1:8080 (WEIR_URL).")),
                ("api_key", optional(string(), "API key (WEIR_API_KEY).")),
                ("api_secret", sensitive(optional(string(), "API secret (WEIR_API_SECRET)."))),
                ("organization", optional(string(), "Organization id (WEIR_ORG); the key's organization when unset.")),
                ("environment", optional(string(), "The environment resources are in unless they say otherwise (WEIR_ENV).")),
                ("compute_pool", optional(string(), "The compute pool statements run on unless they say otherwise (WEIR_COMPUTE_POOL).")),
                ("principal", optional(string(), "The service account statements run as unless they say otherwise (WEIR_PRINCIPAL).")),
            ],
        ))
    }

    async fn configure<'a>(
        &self,
        diags: &mut Diagnostics,
        _terraform_version: String,
        config: Self::Config<'a>,
    ) -> Option<()> {
        let read = |v: &Str, var: &str| setting(v, var);
        let (Ok(endpoint), Ok(key), Ok(secret), Ok(org), Ok(env), Ok(pool), Ok(principal)) = (
            read(&config.endpoint, "WEIR_URL"),
            read(&config.api_key, "WEIR_API_KEY"),
            read(&config.api_secret, "WEIR_API_SECRET"),
            read(&config.organization, "WEIR_ORG"),
            read(&config.environment, "WEIR_ENV"),
            read(&config.compute_pool, "WEIR_COMPUTE_POOL"),
            read(&config.principal, "WEIR_PRINCIPAL"),
        ) else {
            // Known after an apply; the resources report it if they need it.
            return Some(());
        };
        let Some(endpoint) = endpoint else {
            diags.root_error(
                "The Weir provider has no endpoint",
                "Set `endpoint` in the provider block or WEIR_URL, e.g. http://127.0.0.1:8080.",
            );
            return None;
        };
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            diags.root_error(
                "The Weir provider's endpoint is not an http(s) URL",
                format!("endpoint is '{endpoint}'; write it as http://host:port."),
            );
            return None;
        }
        let credentials = match (key, secret) {
            (Some(key), Some(secret)) => Some(Credentials { key, secret }),
            (None, None) => None,
            _ => {
                diags.root_error(
                    "The Weir provider has half a credential",
                    "Set both api_key and api_secret (or WEIR_API_KEY and WEIR_API_SECRET).",
                );
                return None;
            }
        };
        let probe = weir_api::Client::new(&endpoint, "", "", credentials.clone());
        // One call proves the endpoint and the key, and names the
        // organization when the configuration does not.
        let orgs = match probe.json("GET", "/org/v2/organizations", None).await {
            Ok(v) => v,
            // Authenticated, but its principal may not view the
            // organization (a key of one environment): fine when the
            // configuration names it.
            Err(e) if e.status().is_some_and(|s| s.as_u16() == 403) && org.is_some() => {
                serde_json::Value::Null
            }
            Err(e) => {
                api_error(diags, "The Weir provider cannot connect", &e);
                return None;
            }
        };
        let organization = match org {
            Some(o) => o,
            None => match orgs["data"][0]["id"].as_str() {
                Some(id) => id.to_string(),
                None => {
                    diags.root_error(
                        "The Weir provider cannot tell the organization",
                        "Set `organization` in the provider block or WEIR_ORG.",
                    );
                    return None;
                }
            },
        };
        let environment = env.unwrap_or_default();
        self.shared.set(Conn {
            endpoint,
            organization,
            environment,
            compute_pool: pool,
            principal,
            credentials,
        });
        Some(())
    }

    fn get_resources(
        &self,
        _diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicResource>>> {
        use crate::lifecycle::Managed;
        let s = &self.shared;
        let mut m: HashMap<String, Box<dyn DynamicResource>> = HashMap::new();
        m.insert(
            "environment".into(),
            Managed::new(s, crate::org::Environment),
        );
        m.insert(
            "kafka_cluster".into(),
            Managed::new(s, crate::org::KafkaCluster),
        );
        m.insert(
            "compute_pool".into(),
            Managed::new(s, crate::pool::ComputePoolLifecycle),
        );
        m.insert(
            "flink_statement".into(),
            Managed::new(s, crate::statement::FlinkStatement),
        );
        m.insert(
            "service_account".into(),
            Managed::new(s, crate::identity::ServiceAccount),
        );
        m.insert("api_key".into(), Managed::new(s, crate::identity::ApiKey));
        m.insert(
            "role_binding".into(),
            Managed::new(s, crate::identity::RoleBinding),
        );
        Some(m)
    }

    fn get_data_sources(
        &self,
        _diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicDataSource>>> {
        let s = &self.shared;
        let mut m: HashMap<String, Box<dyn DynamicDataSource>> = HashMap::new();
        m.insert(
            "environment".into(),
            Box::new(crate::data_sources::EnvironmentData(s.clone())),
        );
        m.insert(
            "compute_pool".into(),
            Box::new(crate::data_sources::ComputePoolData(s.clone())),
        );
        m.insert(
            "table".into(),
            Box::new(crate::data_sources::TableData(s.clone())),
        );
        Some(m)
    }
}
