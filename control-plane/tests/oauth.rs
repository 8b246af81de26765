//! OAuth bearer tokens, with real signed JWTs: a test identity provider
//! serves a JWKS on a local port; an organization admin registers it and an
//! identity pool; tokens are accepted or refused as they should be (valid,
//! expired, early, wrong issuer, wrong audience, wrong key, `alg: none`,
//! HMAC, tampered, rotated key, a filter that does not match, two pools),
//! API keys keep working beside them, another organization sees none of
//! it, and no token reaches a log line or the audit log. On SQLite and
//! PostgreSQL.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use common::*;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const ISSUER: &str = "https://idp.test.weir";
const AUDIENCE: &str = "weir-api";

/// A test identity provider: its JWKS document can be swapped (rotation)
/// and counts how often it is fetched.
struct Idp {
    jwks_uri: String,
    jwks: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
}

async fn idp(keys: Value) -> Idp {
    let jwks = Arc::new(Mutex::new(keys));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (j, f) = (jwks.clone(), fetches.clone());
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            let (j, f) = (j.clone(), f.clone());
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                axum::Json(j.lock().unwrap().clone())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Idp {
        jwks_uri: format!("http://{addr}/.well-known/jwks.json"),
        jwks,
        fetches,
    }
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/oauth/{name}.pem",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn signing_key(name: &str, alg: Algorithm) -> EncodingKey {
    match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem(name)).unwrap(),
        _ => EncodingKey::from_rsa_pem(&pem(name)).unwrap(),
    }
}

/// The public half of a fixture key, as a JWKS entry with `kid`.
fn jwk(name: &str, kid: &str, alg: Algorithm) -> Value {
    let mut k = Jwk::from_encoding_key(&signing_key(name, alg), alg).unwrap();
    k.common.key_id = Some(kid.to_string());
    serde_json::to_value(k).unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The claims of a good token for `sub`.
fn claims(sub: &str) -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "groups": ["flink"],
           "iat": now(), "nbf": now() - 5, "exp": now() + 600})
}

fn with(mut c: Value, key: &str, v: Value) -> Value {
    c[key] = v;
    c
}

fn sign(key: &str, kid: &str, alg: Algorithm, claims: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = Some(kid.to_string());
    jsonwebtoken::encode(&h, claims, &signing_key(key, alg)).unwrap()
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

async fn bearer(
    api: &Api,
    token: &str,
    pool: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut r = api
        .http
        .request(method, format!("{}{path}", api.base))
        .bearer_auth(token);
    if let Some(p) = pool {
        r = r.header("Weir-Identity-Pool-Id", p);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn message(v: &Value) -> String {
    v.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_sqlite() {
    tokens("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_postgres() {
    tokens("postgres").await;
}

async fn tokens(backend: &str) {
    let lines = LogLines::install();

    let weir = Weir::start_backend(backend).await;
    let api = Api::new(&weir);
    let admin = (weir.dev.key.as_str(), weir.dev.secret.as_str());
    let (org, env) = (weir.dev.org.clone(), weir.dev.env.clone());
    let idp = idp(json!({"keys": [
        jwk("rsa1", "k1", Algorithm::RS256),
        jwk("ec1", "e1", Algorithm::ES256),
    ]}))
    .await;

    // ---- registering the provider and a pool --------------------------------
    let (st, v) = api
        .call(
            admin,
            "POST",
            "/iam/v2/identity-providers",
            Some(
                json!({"display_name": "corp", "issuer": ISSUER, "audience": AUDIENCE,
                        "jwks_uri": "http://127.0.0.1:9/jwks"}),
            ),
        )
        .await;
    assert_eq!(st, 400, "an unreachable JWKS is refused: {v}");
    assert!(message(&v).contains("jwks_uri"), "{v}");
    let (st, v) = api
        .call(
            admin,
            "POST",
            "/iam/v2/identity-providers",
            Some(json!({"display_name": "corp", "issuer": ISSUER, "jwks_uri": idp.jwks_uri})),
        )
        .await;
    assert_eq!(st, 400, "the audience is required: {v}");
    let (st, provider) = api
        .call(
            admin,
            "POST",
            "/iam/v2/identity-providers",
            Some(
                json!({"display_name": "corp", "issuer": ISSUER, "audience": AUDIENCE,
                        "jwks_uri": idp.jwks_uri}),
            ),
        )
        .await;
    assert_eq!(st, 201, "{provider}");
    let op = provider["id"].as_str().unwrap().to_string();
    let pools = format!("/iam/v2/identity-providers/{op}/identity-pools");
    let (st, v) = api
        .call(
            admin,
            "POST",
            &pools,
            Some(json!({"display_name": "bad", "filter": "claims.sub = 'x'"})),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    assert!(message(&v).contains("column 12"), "{v}");
    let (st, pool) = api
        .call(
            admin,
            "POST",
            &pools,
            Some(
                json!({"display_name": "flink users", "identity_claim": "claims.sub",
                        "filter": "\"flink\" in claims.groups"}),
            ),
        )
        .await;
    assert_eq!(st, 201, "{pool}");
    let pool_id = pool["id"].as_str().unwrap().to_string();
    assert_eq!(pool["principal"], json!(format!("User:{pool_id}")));
    let env_crn = format!("crn://weir/organization={org}/environment={env}");
    let (st, v) = api
        .call(
            admin,
            "POST",
            "/iam/v2/role-bindings",
            Some(
                json!({"principal": format!("User:{pool_id}"), "role_name": "FlinkDeveloper",
                        "crn_pattern": env_crn}),
            ),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let statements = format!("/sql/v1/organizations/{org}/environments/{env}/statements");

    // ---- accepted -----------------------------------------------------------
    let good = sign("rsa1", "k1", Algorithm::RS256, &claims("alice"));
    let (st, v) = bearer(&api, &good, None, "GET", &statements, None).await;
    assert_eq!(st, 200, "a valid RS256 token: {v}");
    let es = sign("ec1", "e1", Algorithm::ES256, &claims("alice"));
    let (st, v) = bearer(&api, &es, None, "GET", &statements, None).await;
    assert_eq!(st, 200, "a valid ES256 token: {v}");
    // The token is the pool, with the pool's roles and no more.
    let (st, v) = bearer(
        &api,
        &good,
        None,
        "POST",
        "/iam/v2/service-accounts",
        Some(json!({"display_name": "by-token"})),
    )
    .await;
    assert_eq!(st, 403, "{v}");

    // ---- refused ------------------------------------------------------------
    // A GET of the statements with `token`, which must be refused (401,
    // invalid_token); the answer's text, to check the reason.
    let refused = |why: &'static str, token: String| {
        let (api, statements) = (&api, &statements);
        async move {
            let (st, v) = bearer(api, &token, None, "GET", statements, None).await;
            assert_eq!(st, 401, "{why}: {v}");
            assert_eq!(v["errors"][0]["code"], json!("invalid_token"), "{why}: {v}");
            message(&v)
        }
    };
    let rs1 = |claims: &Value| sign("rsa1", "k1", Algorithm::RS256, claims);
    let c = claims("alice");
    let text = refused("expired", rs1(&with(c.clone(), "exp", json!(now() - 3600)))).await;
    assert!(text.contains("expired"), "{text}");
    let text = refused(
        "not yet valid",
        rs1(&with(c.clone(), "nbf", json!(now() + 3600))),
    )
    .await;
    assert!(text.contains("not valid yet"), "{text}");
    let text = refused(
        "wrong issuer",
        rs1(&with(c.clone(), "iss", json!("https://evil.test"))),
    )
    .await;
    assert!(
        text.contains("no identity provider has the issuer"),
        "{text}"
    );
    let text = refused(
        "wrong audience",
        rs1(&with(c.clone(), "aud", json!("another-api"))),
    )
    .await;
    assert!(text.contains("audience"), "{text}");
    let mut no_exp = c.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    let text = refused("no exp", rs1(&no_exp)).await;
    assert!(text.contains("'exp'"), "{text}");
    // Signed by a key the provider does not publish, under a kid it does.
    let text = refused("wrong key", sign("rsa2", "k1", Algorithm::RS256, &c)).await;
    assert!(text.contains("signature"), "{text}");
    // alg none: no signature at all.
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": "k1"})),
        b64(&c)
    );
    refused("alg none", none.clone()).await;
    // HMAC with the provider's public key as the "secret".
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("k1".into());
    let public = serde_json::to_vec(&jwk("rsa1", "k1", Algorithm::RS256)).unwrap();
    let hs = jsonwebtoken::encode(&h, &c, &EncodingKey::from_secret(&public).unwrap()).unwrap();
    let text = refused("HS256", hs.clone()).await;
    assert!(text.contains("not accepted"), "{text}");
    // Tampered: the claims changed under the same signature, or the
    // signature changed.
    let parts: Vec<&str> = good.split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], b64(&claims("mallory")), parts[2]);
    let text = refused("tampered claims", forged.clone()).await;
    assert!(text.contains("signature"), "{text}");
    let mut sig = parts[2].to_string();
    let flipped = if sig.ends_with('A') { 'B' } else { 'A' };
    sig.pop();
    sig.push(flipped);
    let tampered = format!("{}.{}.{sig}", parts[0], parts[1]);
    refused("tampered signature", tampered.clone()).await;
    refused("not a JWT", "not-a-token".to_string()).await;
    // A token the pool's filter does not admit.
    let outsider = sign(
        "rsa1",
        "k1",
        Algorithm::RS256,
        &with(c.clone(), "groups", json!(["sales"])),
    );
    let text = refused("filter", outsider.clone()).await;
    assert!(text.contains("no identity pool"), "{text}");

    // ---- two pools admit a token: the header picks one ----------------------
    let (st, second) = api
        .call(
            admin,
            "POST",
            &pools,
            Some(json!({"display_name": "alice only", "filter": "claims.sub == 'alice'"})),
        )
        .await;
    assert_eq!(st, 201, "{second}");
    let text = refused("two pools", good.clone()).await;
    assert!(text.contains("several identity pools"), "{text}");
    let (st, v) = bearer(&api, &good, Some(&pool_id), "GET", &statements, None).await;
    assert_eq!(st, 200, "the header picks the pool: {v}");
    // The second pool has no bindings: through it the same call is refused.
    let (st, _) = bearer(&api, &good, second["id"].as_str(), "GET", &statements, None).await;
    assert_eq!(st, 403);
    let (st, _) = api
        .call(
            admin,
            "DELETE",
            &format!("{pools}/{}", second["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(st, 204);

    // ---- the provider rotates its keys -------------------------------------
    let fetched = idp.fetches.load(Ordering::SeqCst);
    *idp.jwks.lock().unwrap() = json!({"keys": [jwk("rsa2", "k2", Algorithm::RS256)]});
    // Unknown key ids refetch at most once a second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let rotated = sign("rsa2", "k2", Algorithm::RS256, &claims("alice"));
    let (st, v) = bearer(&api, &rotated, None, "GET", &statements, None).await;
    assert_eq!(st, 200, "a key published after the server started: {v}");
    assert!(idp.fetches.load(Ordering::SeqCst) > fetched);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let text = refused("a retired key", good.clone()).await;
    assert!(text.contains("no key 'k1'"), "{text}");

    // ---- API keys keep working; the audit log names the pool and subject ----
    let (st, _) = api.call(admin, "GET", "/org/v2/environments", None).await;
    assert_eq!(st, 200);
    let (st, log) = api.call(admin, "GET", "/weir/v1/audit-log", None).await;
    assert_eq!(st, 200, "{log}");
    assert!(
        log["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["result"] == "denied"
                && r["principal"] == json!(format!("User:{pool_id} (alice)"))
                && r["path"] == "/iam/v2/service-accounts"),
        "{log}"
    );

    // ---- another organization sees none of it ------------------------------
    let other = weir.second_tenant().await;
    let other = (other.0.as_str(), other.1.as_str());
    let (st, v) = api
        .call(other, "GET", "/iam/v2/identity-providers", None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["data"], json!([]), "{v}");
    for (method, path) in [
        ("GET", format!("/iam/v2/identity-providers/{op}")),
        ("DELETE", format!("/iam/v2/identity-providers/{op}")),
        ("GET", pools.clone()),
        ("GET", format!("{pools}/{pool_id}")),
    ] {
        let (st, v) = api.call(other, method, &path, None).await;
        assert_eq!(st, 404, "{method} {path}: {v}");
    }
    // And this organization's token reaches nothing of the other's.
    let (st, _) = bearer(
        &api,
        &rotated,
        None,
        "GET",
        "/sql/v1/organizations/org-b/environments/env-b/statements",
        None,
    )
    .await;
    assert_eq!(st, 404);

    // ---- deleting the pool ends its tokens ----------------------------------
    let (st, _) = api
        .call(admin, "DELETE", &format!("{pools}/{pool_id}"), None)
        .await;
    assert_eq!(st, 204);
    let text = refused("a deleted pool", rotated.clone()).await;
    assert!(text.contains("no identity pool"), "{text}");
    let (st, _) = api
        .call(
            admin,
            "DELETE",
            &format!("/iam/v2/identity-providers/{op}"),
            None,
        )
        .await;
    assert_eq!(st, 204);

    // ---- no token reaches a log line or the audit log -----------------------
    weir.stop().await;
    let text = lines.text();
    assert!(text.contains("weir::audit"), "audit lines are logged");
    for t in [&good, &es, &rotated, &forged] {
        let sig = t.rsplit('.').next().unwrap();
        assert!(!text.contains(sig), "a token is in the log");
        assert!(
            !log.to_string().contains(sig),
            "a token is in the audit log"
        );
    }
}
