//! `weir_flink_statement`: a statement Terraform keeps running, as the
//! managed service's provider does. Creating waits until it runs (or
//! completes, for DDL); stopping and resuming are an in-place change of
//! `stopped`; new SQL or properties make a new statement.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{AttributeType, Schema};
use tf_provider::value::Value;
use tf_provider::{AttributePath, Diagnostics};
use weir_api::{Client, CreateStatementRequest, Phase, Statement, StatementSpec};

use crate::common::{
    api_error, computed, default_environment, env_and_id, imported, is_not_found, known, known_map,
    optional, optional_computed, required, schema, sensitive, string, to_map, unknown_if_null,
    Conn, Str, StrMap,
};
use crate::lifecycle::Lifecycle;

/// How long an apply waits for a statement to run, stop or go.
const WAIT: Duration = Duration::from_secs(600);
/// The property a running statement's parallelism can change by in place.
const PARALLELISM: &str = "sql.parallelism";

pub struct FlinkStatement;

#[derive(Serialize, Deserialize, Clone, PartialEq, Default)]
pub struct StatementState {
    #[serde(default)]
    id: Str,
    #[serde(default)]
    environment: Str,
    #[serde(default)]
    statement_name: Str,
    #[serde(default)]
    statement: Str,
    #[serde(default)]
    properties: StrMap,
    #[serde(default)]
    properties_sensitive: StrMap,
    #[serde(default)]
    compute_pool: Str,
    #[serde(default)]
    principal: Str,
    #[serde(default)]
    stopped: Value<bool>,
    #[serde(default)]
    phase: Str,
    #[serde(default)]
    latest_offsets: StrMap,
    #[serde(default)]
    latest_offsets_timestamp: Str,
}

/// The state of statement `st`, keeping what only the configuration knows:
/// which properties are sensitive, and which ones it wrote (Weir may add
/// its own, such as the catalog it filled in).
fn statement_state(st: &Statement, prior: &StatementState) -> StatementState {
    let sensitive_keys: Vec<String> = match &prior.properties_sensitive {
        Value::Value(m) => m.keys().cloned().collect(),
        _ => vec![],
    };
    // Unknown only when importing: then every property is the
    // configuration's.
    let written: Option<Vec<String>> = match &prior.properties {
        Value::Value(m) => Some(m.keys().cloned().collect()),
        Value::Null => Some(vec![]),
        Value::Unknown => None,
    };
    let mut props = BTreeMap::new();
    let mut secret = BTreeMap::new();
    for (k, v) in &st.spec.properties {
        if sensitive_keys.contains(k) {
            secret.insert(k.clone(), v.clone());
        } else if written.as_ref().is_none_or(|w| w.contains(k)) {
            props.insert(k.clone(), v.clone());
        }
    }
    // As the managed service's provider: the offsets of a stopped statement
    // only (a running one's move with every checkpoint, and every refresh
    // would report them as changed outside Terraform).
    let stopped = st.status.phase == Phase::Stopped;
    let offsets = if stopped {
        st.status.latest_offsets.clone()
    } else {
        BTreeMap::new()
    };
    StatementState {
        id: Value::Value(format!("{}/{}", st.environment_id, st.name)),
        environment: Value::Value(st.environment_id.clone()),
        statement_name: Value::Value(st.name.clone()),
        statement: Value::Value(st.spec.statement.clone()),
        // An empty map and no map are the same configuration.
        properties: if props.is_empty() && !matches!(prior.properties, Value::Value(_)) {
            Value::Null
        } else {
            to_map(props)
        },
        properties_sensitive: if secret.is_empty() {
            prior.properties_sensitive.clone()
        } else {
            to_map(secret)
        },
        compute_pool: st
            .spec
            .compute_pool_id
            .clone()
            .map(Value::Value)
            .unwrap_or(Value::Null),
        principal: st
            .spec
            .principal
            .clone()
            .map(Value::Value)
            .unwrap_or(Value::Null),
        stopped: Value::Value(st.spec.stopped),
        phase: Value::Value(st.status.phase.as_str().to_string()),
        latest_offsets: to_map(offsets),
        latest_offsets_timestamp: st
            .status
            .latest_offsets_timestamp
            .clone()
            .filter(|_| stopped)
            .map(Value::Value)
            .unwrap_or(Value::Null),
    }
}

/// The statement's newest exception, or its status detail.
async fn failure_of(client: &Client, st: &Statement) -> String {
    let newest = client
        .exceptions(&st.name)
        .await
        .ok()
        .and_then(|l| l.data.into_iter().next())
        .map(|e| e.message);
    match newest {
        Some(m) if !st.status.detail.contains(&m) => format!("{}\n{m}", st.status.detail),
        _ => st.status.detail.clone(),
    }
}

/// Polls statement `name` until `done` says its phase is where the apply
/// wants it. A `FAILED` statement (when failure is not what was asked for)
/// is an error carrying Weir's message.
async fn wait_for(
    client: &Client,
    diags: &mut Diagnostics,
    name: &str,
    done: impl Fn(Phase) -> bool,
    what: &str,
) -> Option<Statement> {
    let deadline = Instant::now() + WAIT;
    loop {
        let st = match client.get_statement(name).await {
            Ok(st) => st,
            Err(e) => {
                api_error(diags, format!("Reading statement {name}"), &e);
                return None;
            }
        };
        let phase = st.status.phase;
        if done(phase) {
            return Some(st);
        }
        if phase == Phase::Failed {
            let why = failure_of(client, &st).await;
            diags.root_error(format!("Statement {name} failed"), why);
            return None;
        }
        if Instant::now() > deadline {
            diags.root_error(
                format!("Statement {name} did not {what} in {} s", WAIT.as_secs()),
                format!("It is {phase}: {}", st.status.detail),
            );
            return None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A statement that just stopped reports the offsets it reached a moment
/// later; waits (a little) for them so that the next refresh finds no
/// change.
async fn settled_offsets(client: &Client, mut st: Statement) -> Statement {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = st.status.latest_offsets_timestamp.clone();
    let mut unchanged = 0;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok(now) = client.get_statement(&st.name).await else {
            break;
        };
        if now.status.latest_offsets_timestamp == last {
            unchanged += 1;
        } else {
            unchanged = 0;
        }
        last = now.status.latest_offsets_timestamp.clone();
        st = now;
        // Unchanged for a second and a half: the workers have reported.
        if unchanged >= 3 && !st.status.latest_offsets.is_empty() {
            break;
        }
    }
    st
}

fn running(stopped: bool) -> impl Fn(Phase) -> bool {
    move |p| {
        if stopped {
            p == Phase::Stopped || p == Phase::Completed
        } else {
            matches!(p, Phase::Running | Phase::Completed | Phase::Degraded)
        }
    }
}

#[async_trait]
impl Lifecycle for FlinkStatement {
    type State = StatementState;

    fn schema(&self) -> Schema {
        let map = || AttributeType::Map(Box::new(AttributeType::String));
        schema(
            "A Flink SQL statement Weir keeps running: DDL (which completes) or a continuous query. Creating it waits until it runs; a failure shows Weir's error.",
            vec![
                ("id", computed(string(), "<environment>/<statement_name>, the import id.")),
                ("environment", optional_computed(string(), "The environment (the provider's when unset). Changing it replaces the statement.")),
                ("statement_name", optional_computed(string(), "Its name, a lowercase DNS label; generated when unset. Changing it replaces the statement.")),
                ("statement", required(string(), "The SQL. A change replaces the statement: the new SQL starts from the topics' start, not from the old one's state.")),
                ("properties", optional(map(), "sql.current-catalog, sql.current-database, sql.local-time-zone and any SET option. A change replaces the statement, except sql.parallelism, which rescales it in place.")),
                ("properties_sensitive", sensitive(optional(map(), "Properties kept out of plans and logs (credentials). A change replaces the statement."))),
                ("compute_pool", optional_computed(string(), "The pool it runs on (the provider's, else the environment's default). Changes in place.")),
                ("principal", optional_computed(string(), "The service account it runs as (the provider's, else the caller). Changes in place.")),
                ("stopped", optional_computed(AttributeType::Bool, "true stops it (keeping its offsets and state); false resumes it from there. Changes in place.")),
                ("phase", computed(string(), "PENDING, RUNNING, COMPLETED, STOPPED, FAILED, ... as of the last refresh.")),
                ("latest_offsets", computed(map(), "Per source topic, partition:offset,... it had reached when it stopped.")),
                ("latest_offsets_timestamp", computed(string(), "When latest_offsets were taken (RFC 3339).")),
            ],
        )
    }

    fn validate(&self, diags: &mut Diagnostics, config: &Self::State) {
        if let Value::Value(sql) = &config.statement {
            if sql.trim().is_empty() {
                diags.error_short("statement is empty", AttributePath::new("statement"));
            }
        }
        if let (Value::Value(p), Value::Value(s)) =
            (&config.properties, &config.properties_sensitive)
        {
            for k in p.keys().filter(|k| s.contains_key(*k)) {
                diags.error(
                    "A property is set twice",
                    format!("'{k}' is in both properties and properties_sensitive"),
                    AttributePath::new("properties_sensitive").key(k.clone()),
                );
            }
        }
        if let Value::Value(name) = &config.statement_name {
            let ok = !name.is_empty()
                && name.len() <= 100
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !name.starts_with('-')
                && !name.ends_with('-');
            if !ok {
                diags.error(
                    "Invalid statement_name",
                    format!(
                        "'{name}' is not a lowercase DNS label (a-z, 0-9 and '-', at most 100)"
                    ),
                    AttributePath::new("statement_name"),
                );
            }
        }
    }

    fn plan_create(&self, conn: Option<&Conn>, planned: &mut Self::State) {
        default_environment(conn, &mut planned.environment);
        if planned.compute_pool.is_null() {
            if let Some(p) = conn.and_then(|c| c.compute_pool.clone()) {
                planned.compute_pool = Value::Value(p);
            }
        }
        if planned.principal.is_null() {
            if let Some(p) = conn.and_then(|c| c.principal.clone()) {
                planned.principal = Value::Value(p);
            }
        }
        if planned.stopped.is_null() {
            planned.stopped = Value::Value(false);
        }
        unknown_if_null(&mut planned.id);
        unknown_if_null(&mut planned.statement_name);
        unknown_if_null(&mut planned.compute_pool);
        unknown_if_null(&mut planned.principal);
        planned.phase = Value::Unknown;
        planned.latest_offsets = Value::Unknown;
        planned.latest_offsets_timestamp = Value::Unknown;
    }

    fn replaced_by(&self, prior: &Self::State, planned: &Self::State) -> Vec<&'static str> {
        let mut r = vec![];
        if prior.environment != planned.environment {
            r.push("environment");
        }
        if prior.statement_name != planned.statement_name {
            r.push("statement_name");
        }
        if prior.statement != planned.statement {
            r.push("statement");
        }
        let without_parallelism = |m: &StrMap| match m {
            Value::Value(m) => {
                let mut m = m.clone();
                m.remove(PARALLELISM);
                Value::Value(m).filter(|m| !m.is_empty())
            }
            other => other.clone(),
        };
        if without_parallelism(&prior.properties) != without_parallelism(&planned.properties) {
            r.push("properties");
        }
        if prior.properties_sensitive != planned.properties_sensitive {
            r.push("properties_sensitive");
        }
        r
    }

    fn plan_update(&self, _prior: &Self::State, planned: &mut Self::State) {
        planned.phase = Value::Unknown;
        planned.latest_offsets = Value::Unknown;
        planned.latest_offsets_timestamp = Value::Unknown;
    }

    async fn read(
        &self,
        conn: &Conn,
        diags: &mut Diagnostics,
        state: Self::State,
    ) -> Result<Option<Self::State>, ()> {
        let name = known(&state.statement_name).unwrap_or_default();
        let client = conn.client(known(&state.environment));
        match client.get_statement(name).await {
            Ok(st) if st.status.phase == Phase::Deleting => Ok(None),
            Ok(st) => Ok(Some(statement_state(&st, &state))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => {
                api_error(diags, format!("Reading statement {name}"), &e);
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
        let client = conn.client(known(&planned.environment));
        let mut properties = known_map(&planned.properties).unwrap_or_default();
        properties.extend(known_map(&planned.properties_sensitive).unwrap_or_default());
        let stopped = planned.stopped.as_ref_option().copied().unwrap_or(false);
        let req = CreateStatementRequest {
            name: known(&planned.statement_name).map(str::to_string),
            metadata: None,
            spec: StatementSpec {
                statement: known(&planned.statement).unwrap_or_default().to_string(),
                compute_pool_id: known(&planned.compute_pool).map(str::to_string),
                principal: known(&planned.principal).map(str::to_string),
                properties,
                stopped,
            },
        };
        let st = match client.create_statement(&req).await {
            Ok(st) => st,
            Err(e) => {
                api_error(diags, "Creating the statement", &e);
                return None;
            }
        };
        let Some(st) = wait_for(&client, diags, &st.name, running(stopped), "start").await else {
            // Nothing is left behind: the next apply makes it anew.
            let _ = client.delete_statement(&st.name).await;
            return None;
        };
        Some(statement_state(&st, &planned))
    }

    async fn update(
        &self,
        conn: &Conn,
        diags: &mut Diagnostics,
        prior: Self::State,
        planned: Self::State,
    ) -> Option<Self::State> {
        let name = known(&prior.statement_name).unwrap_or_default();
        let client = conn.client(known(&prior.environment));
        let mut st = match client.get_statement(name).await {
            Ok(st) => st,
            Err(e) => {
                api_error(diags, format!("Reading statement {name}"), &e);
                return None;
            }
        };
        let stopped = planned.stopped.as_ref_option().copied().unwrap_or(false);
        st.spec.stopped = stopped;
        if let Some(p) = known(&planned.compute_pool) {
            st.spec.compute_pool_id = Some(p.to_string());
        }
        if let Some(p) = known(&planned.principal) {
            st.spec.principal = Some(p.to_string());
        }
        let parallelism = known_map(&planned.properties).and_then(|mut m| m.remove(PARALLELISM));
        match parallelism {
            Some(p) => st.spec.properties.insert(PARALLELISM.to_string(), p),
            None => st.spec.properties.remove(PARALLELISM),
        };
        if let Err(e) = client.update_statement(&st).await {
            api_error(diags, format!("Updating statement {name}"), &e);
            return None;
        }
        let mut st = wait_for(
            &client,
            diags,
            name,
            running(stopped),
            if stopped { "stop" } else { "resume" },
        )
        .await?;
        if stopped {
            st = settled_offsets(&client, st).await;
        }
        Some(statement_state(&st, &planned))
    }

    async fn delete(&self, conn: &Conn, diags: &mut Diagnostics, prior: Self::State) -> Option<()> {
        let name = known(&prior.statement_name).unwrap_or_default();
        let client = conn.client(known(&prior.environment));
        match client.delete_statement(name).await {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => return Some(()),
            Err(e) => {
                api_error(diags, format!("Deleting statement {name}"), &e);
                return None;
            }
        }
        // Gone means gone: its pool may be deleted right after.
        let deadline = Instant::now() + WAIT;
        loop {
            match client.get_statement(name).await {
                Err(e) if is_not_found(&e) => return Some(()),
                _ if Instant::now() > deadline => {
                    diags.root_error_short(format!(
                        "Statement {name} was still being deleted after {} s",
                        WAIT.as_secs()
                    ));
                    return None;
                }
                _ => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }

    async fn import(&self, conn: &Conn, diags: &mut Diagnostics, id: &str) -> Option<Self::State> {
        let (env, name) = env_and_id(conn, id);
        let state = StatementState {
            environment: Value::Value(env.to_string()),
            statement_name: Value::Value(name.to_string()),
            properties: Value::Unknown,
            ..Default::default()
        };
        let read = self.read(conn, diags, state).await;
        imported(diags, &format!("statement {name} in {env}"), read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(kv: &[(&str, &str)]) -> StrMap {
        to_map(
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn state(sql: &str, p: StrMap) -> StatementState {
        StatementState {
            statement: Value::Value(sql.into()),
            statement_name: Value::Value("s".into()),
            environment: Value::Value("env-1".into()),
            properties: p,
            ..Default::default()
        }
    }

    #[test]
    fn new_sql_or_properties_replace_but_parallelism_and_stopped_do_not() {
        let prior = state("SELECT 1", props(&[("sql.local-time-zone", "UTC")]));
        let mut stopped = prior.clone();
        stopped.stopped = Value::Value(true);
        assert!(FlinkStatement.replaced_by(&prior, &stopped).is_empty());
        let rescaled = state(
            "SELECT 1",
            props(&[("sql.local-time-zone", "UTC"), (PARALLELISM, "4")]),
        );
        assert!(FlinkStatement.replaced_by(&prior, &rescaled).is_empty());
        let new_sql = state("SELECT 2", prior.properties.clone());
        assert_eq!(FlinkStatement.replaced_by(&prior, &new_sql), ["statement"]);
        let new_zone = state(
            "SELECT 1",
            props(&[("sql.local-time-zone", "Europe/Paris")]),
        );
        assert_eq!(
            FlinkStatement.replaced_by(&prior, &new_zone),
            ["properties"]
        );
        // Only a parallelism, then none: the same configuration.
        let only = state("SELECT 1", props(&[(PARALLELISM, "2")]));
        let none = state("SELECT 1", Value::Null);
        assert!(FlinkStatement.replaced_by(&only, &none).is_empty());
    }

    fn weir_statement(props: &[(&str, &str)], phase: Phase) -> Statement {
        serde_json::from_value(serde_json::json!({
            "api_version": "sql/v1", "kind": "Statement",
            "organization_id": "o", "environment_id": "env-1", "name": "s",
            "metadata": {},
            "spec": {
                "statement": "SELECT 1",
                "properties": props.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
            },
            "status": {
                "phase": phase.as_str(),
                "latest_offsets": {"t": "partition:0,offset:5"},
                "latest_offsets_timestamp": "2026-12-06T00:00:00Z",
            },
        }))
        .unwrap()
    }

    #[test]
    fn state_keeps_sensitive_properties_apart_and_offsets_only_when_stopped() {
        let mut prior = state("SELECT 1", props(&[("a", "1")]));
        prior.properties_sensitive = props(&[("secret", "x")]);
        let st = weir_statement(&[("a", "1"), ("secret", "x")], Phase::Running);
        let s = statement_state(&st, &prior);
        assert_eq!(s.properties, props(&[("a", "1")]));
        assert_eq!(s.properties_sensitive, props(&[("secret", "x")]));
        assert_eq!(s.latest_offsets, to_map(BTreeMap::new()));
        assert!(s.latest_offsets_timestamp.is_null());
        let stopped = statement_state(&weir_statement(&[("a", "1")], Phase::Stopped), &prior);
        assert_eq!(
            stopped.latest_offsets,
            props(&[("t", "partition:0,offset:5")])
        );
        // Importing (properties unknown) takes every property Weir has.
        let mut import = state("SELECT 1", Value::Unknown);
        import.properties_sensitive = Value::Null;
        let s = statement_state(
            &weir_statement(&[("a", "1"), ("b", "2")], Phase::Running),
            &import,
        );
        assert_eq!(s.properties, props(&[("a", "1"), ("b", "2")]));
    }

    #[test]
    fn validation_catches_bad_names_and_doubled_properties_at_plan() {
        let mut config = state("SELECT 1", props(&[("k", "v")]));
        config.statement_name = Value::Value("Not_A_Label".into());
        config.properties_sensitive = props(&[("k", "w")]);
        let mut diags = Diagnostics::default();
        FlinkStatement.validate(&mut diags, &config);
        let text = format!("{:?}", diags.errors);
        assert!(text.contains("Invalid statement_name"), "{text}");
        assert!(text.contains("set twice"), "{text}");
        let mut diags = Diagnostics::default();
        FlinkStatement.validate(&mut diags, &state("SELECT 1", Value::Unknown));
        assert!(diags.errors.is_empty());
    }
}
