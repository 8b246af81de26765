//! `weir_service_account`, `weir_api_key` and `weir_role_binding`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tf_provider::schema::Schema;
use tf_provider::value::Value;
use tf_provider::Diagnostics;

use crate::common::{
    computed, delete_json, get_json, imported, known, non_empty, optional, optional_computed,
    required, schema, send_json, sensitive, string, unknown_if_null, Conn, Str,
};
use crate::lifecycle::Lifecycle;

fn s(v: &serde_json::Value) -> Str {
    Value::Value(v.as_str().unwrap_or_default().to_string())
}

pub struct ServiceAccount;

#[derive(Serialize, Deserialize, Clone, PartialEq, Default)]
pub struct ServiceAccountState {
    #[serde(default)]
    id: Str,
    #[serde(default)]
    display_name: Str,
    #[serde(default)]
    description: Str,
    #[serde(default)]
    resource_name: Str,
}

fn sa_state(v: &serde_json::Value) -> ServiceAccountState {
    ServiceAccountState {
        id: s(&v["id"]),
        display_name: s(&v["display_name"]),
        description: non_empty(v["description"].as_str().unwrap_or_default()),
        resource_name: s(&v["metadata"]["resource_name"]),
    }
}

#[async_trait]
impl Lifecycle for ServiceAccount {
    type State = ServiceAccountState;

    fn schema(&self) -> Schema {
        schema(
            "A service account: a principal for statements and automation.",
            vec![
                ("id", computed(string(), "Its id (sa-...).")),
                (
                    "display_name",
                    required(
                        string(),
                        "Its name, unique in the organization. Changing it replaces the account.",
                    ),
                ),
                (
                    "description",
                    optional(string(), "What it is for. Changes in place."),
                ),
                ("resource_name", computed(string(), "Its CRN.")),
            ],
        )
    }

    fn plan_create(&self, _conn: Option<&Conn>, planned: &mut Self::State) {
        unknown_if_null(&mut planned.id);
        unknown_if_null(&mut planned.resource_name);
    }

    fn replaced_by(&self, prior: &Self::State, planned: &Self::State) -> Vec<&'static str> {
        if prior.display_name != planned.display_name {
            vec!["display_name"]
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
        let path = format!("/iam/v2/service-accounts/{id}");
        Ok(
            get_json(conn, diags, &format!("service account {id}"), &path)
                .await?
                .map(|v| sa_state(&v)),
        )
    }

    async fn create(
        &self,
        conn: &Conn,
        diags: &mut Diagnostics,
        planned: Self::State,
    ) -> Option<Self::State> {
        let name = known(&planned.display_name).unwrap_or_default();
        let body = json!({"display_name": name, "description": known(&planned.description).unwrap_or_default()});
        send_json(
            conn,
            diags,
            format!("Creating service account {name}"),
            "POST",
            "/iam/v2/service-accounts",
            Some(&body),
        )
        .await
        .map(|v| sa_state(&v))
    }

    async fn update(
        &self,
        conn: &Conn,
        diags: &mut Diagnostics,
        prior: Self::State,
        planned: Self::State,
    ) -> Option<Self::State> {
        let id = known(&prior.id).unwrap_or_default();
        let body = json!({"description": known(&planned.description).unwrap_or_default()});
        send_json(
            conn,
            diags,
            format!("Updating service account {id}"),
            "PATCH",
            &format!("/iam/v2/service-accounts/{id}"),
            Some(&body),
        )
        .await
        .map(|v| sa_state(&v))
    }

    async fn delete(&self, conn: &Conn, diags: &mut Diagnostics, prior: Self::State) -> Option<()> {
        let id = known(&prior.id).unwrap_or_default();
        delete_json(
            conn,
            diags,
            &format!("service account {id}"),
            &format!("/iam/v2/service-accounts/{id}"),
        )
        .await
    }

    async fn import(&self, conn: &Conn, diags: &mut Diagnostics, id: &str) -> Option<Self::State> {
        let state = ServiceAccountState {
            id: Value::Value(id.to_string()),
            ..Default::default()
        };
        let r = self.read(conn, diags, state).await;
        imported(diags, &format!("service account {id}"), r)
    }
}

/// The id a CRN ends with (`.../environment=env-1` is `env-1`): a key's
/// resource is written as an id and answered as a CRN.
fn crn_id(s: &str) -> String {
    if s.starts_with("crn://") {
        s.rsplit('=').next().unwrap_or(s).to_string()
    } else {
        s.to_string()
    }
}

pub struct ApiKey;

#[derive(Serialize, Deserialize, Clone, PartialEq, Default)]
pub struct ApiKeyState {
    #[serde(default)]
    id: Str,
    #[serde(default)]
    description: Str,
    #[serde(default)]
    owner: Str,
    #[serde(default)]
    resource: Str,
    #[serde(default)]
    secret: Str,
}

fn key_state(v: &serde_json::Value, secret: Str) -> ApiKeyState {
    let spec = &v["spec"];
    ApiKeyState {
        id: s(&v["id"]),
        description: non_empty(spec["description"].as_str().unwrap_or_default()),
        owner: s(&spec["owner"]["id"]),
        resource: Value::Value(crn_id(spec["resource"]["id"].as_str().unwrap_or_default())),
        secret: spec["secret"]
            .as_str()
            .map(|x| Value::Value(x.to_string()))
            .unwrap_or(secret),
    }
}

#[async_trait]
impl Lifecycle for ApiKey {
    type State = ApiKeyState;

    fn schema(&self) -> Schema {
        schema(
            "An API key of a service account (or of the provider's own principal).",
            vec![
                ("id", computed(string(), "The key (its public half).")),
                ("description", optional(string(), "What it is for. Changes in place.")),
                ("owner", optional_computed(string(), "The service account that owns it (sa-...); the provider's principal when unset. Changing it makes a new key.")),
                ("resource", optional_computed(string(), "What it reaches: an environment id, or the organization's id (the default). Changing it makes a new key.")),
                ("secret", sensitive(computed(string(), "The secret, known only to the state of the apply that made the key (not after an import)."))),
            ],
        )
    }

    fn plan_create(&self, _conn: Option<&Conn>, planned: &mut Self::State) {
        unknown_if_null(&mut planned.id);
        unknown_if_null(&mut planned.owner);
        unknown_if_null(&mut planned.resource);
        unknown_if_null(&mut planned.secret);
    }

    fn replaced_by(&self, prior: &Self::State, planned: &Self::State) -> Vec<&'static str> {
        let mut r = vec![];
        if prior.owner != planned.owner {
            r.push("owner");
        }
        if prior.resource != planned.resource {
            r.push("resource");
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
        let path = format!("/iam/v2/api-keys/{id}");
        Ok(get_json(conn, diags, &format!("API key {id}"), &path)
            .await?
            .map(|v| key_state(&v, state.secret.clone())))
    }

    async fn create(
        &self,
        conn: &Conn,
        diags: &mut Diagnostics,
        planned: Self::State,
    ) -> Option<Self::State> {
        let mut spec = json!({"description": known(&planned.description).unwrap_or_default()});
        if let Some(o) = known(&planned.owner) {
            spec["owner"] = json!({ "id": o });
        }
        if let Some(r) = known(&planned.resource) {
            spec["resource"] = json!({ "id": r });
        }
        send_json(
            conn,
            diags,
            "Creating the API key",
            "POST",
            "/iam/v2/api-keys",
            Some(&json!({ "spec": spec })),
        )
        .await
        .map(|v| key_state(&v, Value::Null))
    }

    async fn update(
        &self,
        conn: &Conn,
        diags: &mut Diagnostics,
        prior: Self::State,
        planned: Self::State,
    ) -> Option<Self::State> {
        let id = known(&prior.id).unwrap_or_default();
        let body =
            json!({"spec": {"description": known(&planned.description).unwrap_or_default()}});
        send_json(
            conn,
            diags,
            format!("Updating API key {id}"),
            "PATCH",
            &format!("/iam/v2/api-keys/{id}"),
            Some(&body),
        )
        .await
        .map(|v| key_state(&v, prior.secret))
    }

    async fn delete(&self, conn: &Conn, diags: &mut Diagnostics, prior: Self::State) -> Option<()> {
        let id = known(&prior.id).unwrap_or_default();
        delete_json(
            conn,
            diags,
            &format!("API key {id}"),
            &format!("/iam/v2/api-keys/{id}"),
        )
        .await
    }

    async fn import(&self, conn: &Conn, diags: &mut Diagnostics, id: &str) -> Option<Self::State> {
        let state = ApiKeyState {
            id: Value::Value(id.to_string()),
            ..Default::default()
        };
        let r = self.read(conn, diags, state).await;
        imported(diags, &format!("API key {id}"), r)
    }
}

pub struct RoleBinding;

#[derive(Serialize, Deserialize, Clone, PartialEq, Default)]
pub struct RoleBindingState {
    #[serde(default)]
    id: Str,
    #[serde(default)]
    principal: Str,
    #[serde(default)]
    role_name: Str,
    #[serde(default)]
    crn_pattern: Str,
}

fn binding_state(v: &serde_json::Value) -> RoleBindingState {
    RoleBindingState {
        id: s(&v["id"]),
        principal: s(&v["principal"]),
        role_name: s(&v["role_name"]),
        crn_pattern: s(&v["crn_pattern"]),
    }
}

#[async_trait]
impl Lifecycle for RoleBinding {
    type State = RoleBindingState;

    fn schema(&self) -> Schema {
        schema(
            "A role binding: a principal holds a role on the resources a CRN pattern names. Any change makes a new binding.",
            vec![
                ("id", computed(string(), "Its id (rb-...).")),
                ("principal", required(string(), "User:<id> (a user or service account).")),
                ("role_name", required(string(), "OrganizationAdmin, EnvironmentAdmin, FlinkAdmin, FlinkDeveloper, ...")),
                ("crn_pattern", required(string(), "The CRN of the resources, e.g. a resource_name attribute.")),
            ],
        )
    }

    fn plan_create(&self, _conn: Option<&Conn>, planned: &mut Self::State) {
        unknown_if_null(&mut planned.id);
    }

    fn replaced_by(&self, prior: &Self::State, planned: &Self::State) -> Vec<&'static str> {
        let mut r = vec![];
        for (name, a, b) in [
            ("principal", &prior.principal, &planned.principal),
            ("role_name", &prior.role_name, &planned.role_name),
            ("crn_pattern", &prior.crn_pattern, &planned.crn_pattern),
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
        let path = format!("/iam/v2/role-bindings/{id}");
        Ok(get_json(conn, diags, &format!("role binding {id}"), &path)
            .await?
            .map(|v| binding_state(&v)))
    }

    async fn create(
        &self,
        conn: &Conn,
        diags: &mut Diagnostics,
        planned: Self::State,
    ) -> Option<Self::State> {
        let body = json!({
            "principal": known(&planned.principal).unwrap_or_default(),
            "role_name": known(&planned.role_name).unwrap_or_default(),
            "crn_pattern": known(&planned.crn_pattern).unwrap_or_default(),
        });
        send_json(
            conn,
            diags,
            "Creating the role binding",
            "POST",
            "/iam/v2/role-bindings",
            Some(&body),
        )
        .await
        .map(|v| binding_state(&v))
    }

    async fn update(
        &self,
        _conn: &Conn,
        _diags: &mut Diagnostics,
        _prior: Self::State,
        planned: Self::State,
    ) -> Option<Self::State> {
        Some(planned)
    }

    async fn delete(&self, conn: &Conn, diags: &mut Diagnostics, prior: Self::State) -> Option<()> {
        let id = known(&prior.id).unwrap_or_default();
        delete_json(
            conn,
            diags,
            &format!("role binding {id}"),
            &format!("/iam/v2/role-bindings/{id}"),
        )
        .await
    }

    async fn import(&self, conn: &Conn, diags: &mut Diagnostics, id: &str) -> Option<Self::State> {
        let state = RoleBindingState {
            id: Value::Value(id.to_string()),
            ..Default::default()
        };
        let r = self.read(conn, diags, state).await;
        imported(diags, &format!("role binding {id}"), r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keys_resource_is_the_id_its_crn_ends_with() {
        assert_eq!(
            crn_id("crn://weir/organization=o-1/environment=env-2"),
            "env-2"
        );
        assert_eq!(crn_id("crn://weir/organization=o-1"), "o-1");
        assert_eq!(crn_id("env-3"), "env-3");
    }
}
