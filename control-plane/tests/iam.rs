//! Identity and access beyond the permission matrix: a statement runs as
//! its principal and fails when that principal loses a role it needs; a
//! key limited to an environment reaches nothing else; the audit log keeps
//! who did what and what was denied; no secret ever reaches a log line, the
//! audit log or an error; and another organization sees none of it.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use weir_api::Phase;

/// A call with a key kept as (id, secret).
async fn call(
    api: &Api,
    key: &(String, String),
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    api.call((&key.0, &key.1), method, path, body).await
}

/// A service account with these bindings, and a key of its own.
async fn principal(
    api: &Api,
    admin: &(String, String),
    name: &str,
    bindings: &[(&str, String)],
) -> (String, (String, String)) {
    let (st, sa) = call(
        api,
        admin,
        "POST",
        "/iam/v2/service-accounts",
        Some(json!({"display_name": name})),
    )
    .await;
    assert_eq!(st, 201, "{sa}");
    let sa = sa["id"].as_str().unwrap().to_string();
    for (role, pattern) in bindings {
        let (st, v) = call(
            api,
            admin,
            "POST",
            "/iam/v2/role-bindings",
            Some(json!({"principal": format!("User:{sa}"), "role_name": role, "crn_pattern": pattern})),
        )
        .await;
        assert_eq!(st, 201, "{v}");
    }
    let (st, k) = call(
        api,
        admin,
        "POST",
        "/iam/v2/api-keys",
        Some(json!({"spec": {"owner": {"id": sa}}})),
    )
    .await;
    assert_eq!(st, 202, "{k}");
    let key = (
        k["id"].as_str().unwrap().to_string(),
        k["spec"]["secret"].as_str().unwrap().to_string(),
    );
    (sa, key)
}

fn admin(weir: &Weir) -> (String, String) {
    (weir.dev.key.clone(), weir.dev.secret.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_runs_as_its_principal_and_fails_when_a_role_it_needs_is_removed() {
    let weir = Weir::start_with(|c| c.access_check_interval = Duration::from_millis(200)).await;
    let api = Api::new(&weir);
    let admin = admin(&weir);
    let org = weir.dev.org.clone();
    let env = weir.dev.env.clone();
    let store = &weir.server.as_ref().unwrap().state.store;
    let cluster = store.list_clusters(&org, &env).await.unwrap()[0].id.clone();
    let src = unique("iam_src");
    let dst = unique("iam_dst");
    weir.ddl(&format!("CREATE TABLE `{src}` (id INT)")).await;
    weir.ddl(&format!("CREATE TABLE `{dst}` (id INT)")).await;
    let env_crn = format!("crn://weir/organization={org}/environment={env}");
    let topic = |t: &str| format!("{env_crn}/kafka={cluster}/topic={t}");
    let (_, dev) = principal(
        &api,
        &admin,
        "writer",
        &[
            ("FlinkDeveloper", env_crn.clone()),
            ("DeveloperRead", topic(&src)),
            ("DeveloperWrite", topic(&dst)),
        ],
    )
    .await;
    let statements = format!("/sql/v1/organizations/{org}/environments/{env}/statements");
    // Writing a table it has no role for is refused at once, naming both.
    let (st, v) = call(
        &api,
        &dev,
        "POST",
        &statements,
        Some(json!({"name": "sneaky", "spec": {
            "statement": format!("INSERT INTO `{src}` SELECT * FROM `{dst}`")}})),
    )
    .await;
    assert_eq!(st, 403, "{v}");
    let detail = v["errors"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("DeveloperRead") && detail.contains(&dst),
        "{detail}"
    );
    // What it may do runs, as it.
    let (st, v) = call(
        &api,
        &dev,
        "POST",
        &statements,
        Some(json!({"name": "copy", "spec": {
            "statement": format!("INSERT INTO `{dst}` SELECT * FROM `{src}`")}})),
    )
    .await;
    assert!(st < 300, "{v}");
    let s = weir
        .wait_phase("copy", Phase::Running, Duration::from_secs(30))
        .await;
    assert!(
        s.spec.principal.as_deref().unwrap().starts_with("sa-"),
        "{:?}",
        s.spec.principal
    );
    // The read binding goes: the statement fails, saying why.
    let (_, list) = call(
        &api,
        &admin,
        "GET",
        "/iam/v2/role-bindings?role_name=DeveloperRead",
        None,
    )
    .await;
    let read = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["crn_pattern"].as_str() == Some(topic(&src).as_str()))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, _) = call(
        &api,
        &admin,
        "DELETE",
        &format!("/iam/v2/role-bindings/{read}"),
        None,
    )
    .await;
    assert_eq!(st, 204);
    let s = weir
        .wait_phase("copy", Phase::Failed, Duration::from_secs(20))
        .await;
    assert!(
        s.status.detail.contains("lost access") && s.status.detail.contains("DeveloperRead"),
        "{}",
        s.status.detail
    );
    weir.stop().await;
}

/// Quotas and the request rate: each refusal is a 429 naming its limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_and_rate_limits_refuse_with_a_429_that_names_the_limit() {
    let weir = Weir::start_with(|c| {
        c.limits = weir_control_plane::limits::Limits {
            requests_per_second: 2.0,
            request_burst: 40.0,
            pools_per_environment: 2,
            service_accounts_per_organization: 1,
            ..Default::default()
        }
    })
    .await;
    let api = Api::new(&weir);
    let admin = admin(&weir);
    // `weir dev`'s pool is one of the two.
    let pool = |n: &str| json!({"spec": {"display_name": n, "max_cfu": 1, "environment": {"id": weir.dev.env}}});
    let (st, v) = call(
        &api,
        &admin,
        "POST",
        "/fcpm/v2/compute-pools",
        Some(pool("second")),
    )
    .await;
    assert!(st < 300, "{v}");
    let (st, v) = call(
        &api,
        &admin,
        "POST",
        "/fcpm/v2/compute-pools",
        Some(pool("third")),
    )
    .await;
    assert_eq!(st, 429, "{v}");
    assert!(v.to_string().contains("quota of 2 compute pools"), "{v}");
    let sa = json!({"display_name": "one"});
    let (st, _) = call(&api, &admin, "POST", "/iam/v2/service-accounts", Some(sa)).await;
    assert_eq!(st, 201);
    let (st, v) = call(
        &api,
        &admin,
        "POST",
        "/iam/v2/service-accounts",
        Some(json!({"display_name": "two"})),
    )
    .await;
    assert_eq!(st, 429, "{v}");
    assert!(v.to_string().contains("service accounts"), "{v}");
    // Past the burst, requests are refused until the bucket refills.
    let mut limited = None;
    for _ in 0..60 {
        let (st, v) = call(&api, &admin, "GET", "/org/v2/environments", None).await;
        if st == 429 {
            limited = Some(v);
            break;
        }
    }
    let v = limited.expect("the burst of 40 runs out within 60 quick requests");
    assert!(
        v.to_string()
            .contains("rate limit of 2 requests per second"),
        "{v}"
    );
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organization_admin_lowers_its_own_quotas_and_nobody_else_raises_them() {
    let weir = Weir::start_with(|c| {
        c.limits = weir_control_plane::limits::Limits {
            pools_per_environment: 5,
            api_keys_per_organization: 50,
            ..Default::default()
        }
    })
    .await;
    let api = Api::new(&weir);
    let admin = admin(&weir);
    let (org, env) = (weir.dev.org.clone(), weir.dev.env.clone());
    let path = format!("/weir/v1/environments/{env}/limits");
    let (st, v) = call(&api, &admin, "GET", &path, None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["limits"]["compute_pools"],
        json!({"limit": 5, "used": 1, "server_limit": 5, "set_by_organization": false})
    );
    let pool = |env: &str, n: &str| json!({"spec": {"display_name": n, "max_cfu": 1, "environment": {"id": env}}});

    // Lowered to what exists: the next pool is refused, saying who set it.
    let (st, v) = call(
        &api,
        &admin,
        "PATCH",
        &path,
        Some(json!({"compute_pools": 1})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["limits"]["compute_pools"]["limit"], json!(1));
    assert_eq!(
        v["limits"]["compute_pools"]["set_by_organization"],
        json!(true)
    );
    assert_eq!(
        v["limits"]["statements"]["set_by_organization"],
        json!(false),
        "{v}"
    );
    let (st, v) = call(
        &api,
        &admin,
        "POST",
        "/fcpm/v2/compute-pools",
        Some(pool(&env, "two")),
    )
    .await;
    assert_eq!(st, 429, "{v}");
    let text = v.to_string();
    assert!(
        text.contains("quota of 1 compute pools")
            && text.contains("an organization admin set it")
            && text.contains(&path),
        "{v}"
    );
    // Another environment keeps the server's quota.
    let (st, staging) = call(
        &api,
        &admin,
        "POST",
        "/org/v2/environments",
        Some(json!({"display_name": "staging"})),
    )
    .await;
    assert_eq!(st, 201, "{staging}");
    let staging = staging["id"].as_str().unwrap().to_string();
    let (st, v) = call(
        &api,
        &admin,
        "POST",
        "/fcpm/v2/compute-pools",
        Some(pool(&staging, "there")),
    )
    .await;
    assert!(st < 300, "{v}");

    // Never above the server's, and only known names.
    for (body, status, says) in [
        (json!({"compute_pools": 6}), 400, "at most 5"),
        (json!({"pools": 1}), 422, "unknown field `pools`"),
        (json!({"statements": -1}), 422, "statements"),
    ] {
        let (st, v) = call(&api, &admin, "PATCH", &path, Some(body.clone())).await;
        assert_eq!(st, status, "{body}: {v}");
        assert!(v.to_string().contains(says), "{body}: {v}");
    }

    // An environment admin reads its quotas but cannot raise them.
    let (_, env_admin) = principal(
        &api,
        &admin,
        "env-admin",
        &[(
            "EnvironmentAdmin",
            format!("crn://weir/organization={org}/environment={env}"),
        )],
    )
    .await;
    let (st, _) = call(&api, &env_admin, "GET", &path, None).await;
    assert_eq!(st, 200);
    let (st, v) = call(
        &api,
        &env_admin,
        "PATCH",
        &path,
        Some(json!({"compute_pools": 5})),
    )
    .await;
    assert_eq!(st, 403, "{v}");
    let (st, v) = call(
        &api,
        &env_admin,
        "PATCH",
        "/weir/v1/organization/limits",
        Some(json!({"api_keys": 50})),
    )
    .await;
    assert_eq!(st, 403, "{v}");

    // `null` returns to the server's quota.
    let (st, v) = call(
        &api,
        &admin,
        "PATCH",
        &path,
        Some(json!({"compute_pools": null})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["limits"]["compute_pools"]["limit"], json!(5));
    let (st, v) = call(
        &api,
        &admin,
        "POST",
        "/fcpm/v2/compute-pools",
        Some(pool(&env, "two")),
    )
    .await;
    assert!(st < 300, "{v}");

    // The organization's quotas: API keys at what exists.
    let (st, v) = call(&api, &admin, "GET", "/weir/v1/organization/limits", None).await;
    assert_eq!(st, 200, "{v}");
    let used = v["limits"]["api_keys"]["used"].as_u64().unwrap();
    let (st, v) = call(
        &api,
        &admin,
        "PATCH",
        "/weir/v1/organization/limits",
        Some(json!({"api_keys": used})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = call(
        &api,
        &admin,
        "POST",
        "/iam/v2/api-keys",
        Some(json!({"spec": {}})),
    )
    .await;
    assert_eq!(st, 429, "{v}");
    assert!(
        v.to_string().contains("/weir/v1/organization/limits"),
        "{v}"
    );

    // Another organization neither sees nor sets them.
    let other = weir.second_tenant().await;
    for (method, body) in [("GET", None), ("PATCH", Some(json!({"compute_pools": 5})))] {
        let (st, v) = call(&api, &other, method, &path, body).await;
        assert_eq!(st, 404, "{method}: {v}");
    }
    let (st, v) = call(&api, &other, "GET", "/weir/v1/organization/limits", None).await;
    assert_eq!(st, 200);
    assert_eq!(
        v["limits"]["api_keys"]["set_by_organization"],
        json!(false),
        "{v}"
    );
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_limited_to_an_environment_reaches_nothing_outside_it() {
    let weir = Weir::start().await;
    let api = Api::new(&weir);
    let admin = admin(&weir);
    let store = &weir.server.as_ref().unwrap().state.store;
    store
        .ensure_environment(&weir.dev.org, "env-other", "other")
        .await
        .unwrap();
    let (st, k) = call(
        &api,
        &admin,
        "POST",
        "/iam/v2/api-keys",
        Some(json!({"spec": {"resource": {"id": weir.dev.env}}})),
    )
    .await;
    assert_eq!(st, 202, "{k}");
    assert_eq!(k["spec"]["resource"]["kind"], "Environment");
    let scoped = (
        k["id"].as_str().unwrap().to_string(),
        k["spec"]["secret"].as_str().unwrap().to_string(),
    );
    let (st, _) = call(
        &api,
        &scoped,
        "GET",
        &format!("/org/v2/environments/{}", weir.dev.env),
        None,
    )
    .await;
    assert_eq!(st, 200);
    let (st, v) = call(&api, &scoped, "GET", "/org/v2/environments/env-other", None).await;
    assert_eq!(st, 403, "{v}");
    assert!(v.to_string().contains("limited to"), "{v}");
    let (st, _) = call(
        &api,
        &scoped,
        "POST",
        "/iam/v2/service-accounts",
        Some(json!({"display_name": "x"})),
    )
    .await;
    assert_eq!(st, 403);
    // The listing shows only what the key reaches.
    let (_, envs) = call(&api, &scoped, "GET", "/org/v2/environments", None).await;
    let ids: Vec<&str> = envs["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [weir.dev.env.as_str()]);
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_keeps_mutating_and_denied_calls_and_no_secret_reaches_a_log() {
    let lines = LogLines::install();
    let weir = Weir::start().await;
    let api = Api::new(&weir);
    let admin = admin(&weir);
    // A key made, used, refused and deleted.
    let (sa, key) = principal(&api, &admin, "auditee", &[]).await;
    let (st, _) = call(
        &api,
        &key,
        "POST",
        "/iam/v2/service-accounts",
        Some(json!({"display_name": "nope"})),
    )
    .await;
    assert_eq!(st, 403);
    let wrong = (key.0.clone(), format!("{}x", key.1));
    let (st, _) = call(&api, &wrong, "GET", "/org/v2/environments", None).await;
    assert_eq!(st, 401);
    // A registry password given to the API.
    let password = format!("pw-{}", unique("secret"));
    let (st, _) = call(
        &api,
        &admin,
        "PUT",
        &format!("/weir/v1/environments/{}/schema-registry", weir.dev.env),
        Some(json!({"url": "http://127.0.0.1:9/sr", "username": "u", "password": password})),
    )
    .await;
    assert_eq!(st, 400);
    let (st, _) = call(
        &api,
        &admin,
        "DELETE",
        &format!("/iam/v2/api-keys/{}", key.0),
        None,
    )
    .await;
    assert_eq!(st, 204);
    // The secret is stored only as an Argon2 hash.
    let stored = weir
        .server
        .as_ref()
        .unwrap()
        .state
        .store
        .find_api_key(&weir.dev.key)
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored.secret_hash.starts_with("$argon2id$"),
        "{}",
        stored.secret_hash
    );
    // The audit log has the creation (allowed) and the refusal (denied).
    let (st, log) = call(&api, &admin, "GET", "/weir/v1/audit-log", None).await;
    assert_eq!(st, 200, "{log}");
    let records = log["data"].as_array().unwrap();
    let denied = records
        .iter()
        .find(|r| r["result"] == "denied" && r["principal"] == format!("User:{sa}"))
        .unwrap_or_else(|| panic!("a denied record for {sa}: {log}"));
    assert_eq!(denied["path"], "/iam/v2/service-accounts");
    assert_eq!(denied["status"], 403);
    assert!(!denied["request_id"].as_str().unwrap().is_empty());
    assert!(records
        .iter()
        .any(|r| r["result"] == "allowed" && r["method"] == "DELETE"));
    // A non-admin may not read it.
    let (_, other) = principal(&api, &admin, "reader", &[]).await;
    let (st, _) = call(&api, &other, "GET", "/weir/v1/audit-log", None).await;
    assert_eq!(st, 403);
    let admin_secret = weir.dev.secret.clone();
    weir.stop().await;
    let text = lines.text();
    assert!(text.contains("weir::audit"), "audit lines are logged");
    for secret in [&key.1, &admin_secret, &password, &other.1] {
        assert!(!text.contains(secret.as_str()), "a secret is in the log");
        assert!(
            !log.to_string().contains(secret.as_str()),
            "a secret is in the audit log"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organization_sees_no_service_account_key_or_binding() {
    let weir = Weir::start().await;
    let api = Api::new(&weir);
    let admin = admin(&weir);
    let (sa, key) = principal(
        &api,
        &admin,
        "mine",
        &[(
            "ReadOnly",
            format!("crn://weir/organization={}", weir.dev.org),
        )],
    )
    .await;
    let (_, bindings) = call(
        &api,
        &admin,
        "GET",
        &format!("/iam/v2/role-bindings?principal=User:{sa}"),
        None,
    )
    .await;
    let binding = bindings["data"][0]["id"].as_str().unwrap().to_string();
    let b = weir.second_tenant().await;
    for (method, path) in [
        ("GET", format!("/iam/v2/service-accounts/{sa}")),
        ("DELETE", format!("/iam/v2/service-accounts/{sa}")),
        ("GET", format!("/iam/v2/api-keys/{}", key.0)),
        ("DELETE", format!("/iam/v2/api-keys/{}", key.0)),
        ("GET", format!("/iam/v2/role-bindings/{binding}")),
        ("DELETE", format!("/iam/v2/role-bindings/{binding}")),
    ] {
        let (st, v) = call(&api, &b, method, &path, None).await;
        assert_eq!(st, 404, "{method} {path}: {v}");
    }
    for path in [
        "/iam/v2/service-accounts",
        "/iam/v2/api-keys",
        "/iam/v2/role-bindings",
    ] {
        let (_, v) = call(&api, &b, "GET", path, None).await;
        let text = v.to_string();
        assert!(
            !text.contains(&sa) && !text.contains(&key.0),
            "{path}: {text}"
        );
    }
    // A binding naming another organization's resources is refused.
    let (st, v) = call(&api, &b, "POST", "/iam/v2/role-bindings", Some(json!({"principal": format!("User:{sa}"),
              "role_name": "OrganizationAdmin", "crn_pattern": format!("crn://weir/organization={}", weir.dev.org)})))
        .await;
    assert_eq!(st, 400, "{v}");
    // Huge and malformed bindings are refused with a 400, not stored.
    for body in [
        json!({"principal": "User:u-x", "role_name": "ReadOnly", "crn_pattern": format!("crn://weir/organization={}/environment={}", weir.dev.org, "e".repeat(1 << 19))}),
        json!({"principal": "User:u-x", "role_name": "NoSuchRole", "crn_pattern": format!("crn://weir/organization={}", weir.dev.org)}),
        json!({"principal": "u-x", "role_name": "ReadOnly", "crn_pattern": format!("crn://weir/organization={}", weir.dev.org)}),
        json!({"principal": "User:u-x", "role_name": "ReadOnly", "crn_pattern": "crn://weir/organization=/x=="}),
        json!({"principal": 7}),
    ] {
        let (st, v) = call(&api, &admin, "POST", "/iam/v2/role-bindings", Some(body)).await;
        assert!(st == 400 || st == 422, "{st}: {v}");
    }
    // And org A's key keeps working.
    let (st, _) = call(&api, &key, "GET", "/org/v2/environments", None).await;
    assert_eq!(st, 200);
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_user_reads_and_saves_only_its_own_workspace_cells() {
    let weir = Weir::start().await;
    let api = Api::new(&weir);
    let admin = admin(&weir);
    let org = weir.dev.org.clone();
    let env = weir.dev.env.clone();
    let path = format!("/weir/v1/environments/{env}/workspace");
    let (_, dev) = principal(
        &api,
        &admin,
        "developer",
        &[(
            "FlinkDeveloper",
            format!("crn://weir/organization={org}/environment={env}"),
        )],
    )
    .await;

    // Nothing saved yet: no cells.
    let (st, v) = call(&api, &dev, "GET", &path, None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["cells"], json!([]));
    assert_eq!(v["updated_at"], "");

    let mine = json!({"cells": [
        {"id": "a", "sql": "SELECT 1", "catalog": "default", "database": "cluster_0"},
        {"id": "b", "sql": "SHOW TABLES"}
    ]});
    let (st, v) = call(&api, &dev, "PUT", &path, Some(mine.clone())).await;
    assert_eq!(st, 200, "{v}");
    assert!(!v["updated_at"].as_str().unwrap().is_empty());
    let (_, back) = call(&api, &dev, "GET", &path, None).await;
    assert_eq!(back["cells"][0], mine["cells"][0]);
    assert_eq!(back["cells"][1]["sql"], "SHOW TABLES");
    assert_eq!(back["cells"][1]["database"], "");

    // The admin is another user: its cells are its own, and saving them
    // leaves the developer's alone.
    let (_, v) = call(&api, &admin, "GET", &path, None).await;
    assert_eq!(v["cells"], json!([]), "{v}");
    let theirs = json!({"cells": [{"id": "z", "sql": "SELECT 2"}]});
    let (st, _) = call(&api, &admin, "PUT", &path, Some(theirs)).await;
    assert_eq!(st, 200);
    let (_, again) = call(&api, &dev, "GET", &path, None).await;
    assert_eq!(again["cells"], back["cells"]);

    // Bad documents are refused whole and change nothing.
    let too_many: Vec<_> = (0..201)
        .map(|i| json!({"id": i.to_string(), "sql": ""}))
        .collect();
    for bad in [
        json!({"cells": too_many}),
        json!({"cells": [{"id": "x".repeat(65), "sql": ""}]}),
        json!({"cells": [{"id": "a", "sql": 5}]}),
        json!({"cells": [{"id": "a", "sql": "", "extra": 1}]}),
        json!({"nothing": []}),
    ] {
        let (st, v) = call(&api, &dev, "PUT", &path, Some(bad)).await;
        // 400 for a document over the limits, 422 for one of the wrong shape.
        assert!(st == 400 || st == 422, "{st} {v}");
        assert!(v["errors"][0]["detail"].as_str().is_some(), "{v}");
    }
    let (_, still) = call(&api, &dev, "GET", &path, None).await;
    assert_eq!(still["cells"], back["cells"]);

    // An environment the key has no role in is refused.
    let (st, v) = call(
        &api,
        &admin,
        "POST",
        "/org/v2/environments",
        Some(json!({"display_name": "other"})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let other = v["id"].as_str().unwrap();
    let (st, _) = call(
        &api,
        &dev,
        "GET",
        &format!("/weir/v1/environments/{other}/workspace"),
        None,
    )
    .await;
    assert_eq!(st, 403);
    weir.stop().await;
}
