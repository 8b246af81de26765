//! The `weir` binary as a user runs it: `weir dev --bootstrap` against the
//! test broker (`WEIR_TEST_BOOTSTRAP`, started by `infra/test.sh`), and the
//! client commands as separate processes reading `dev.env`'s settings.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use support::*;

#[test]
fn the_cli_drives_a_statement_through_its_whole_life() {
    let dir = temp_dir();
    let dev = Dev::start(&dir);
    let dev_env = std::fs::read_to_string(dir.join("dev.env")).unwrap();
    for k in [
        "WEIR_URL",
        "WEIR_ORG",
        "WEIR_ENV",
        "WEIR_COMPUTE_POOL",
        "WEIR_API_KEY",
        "WEIR_API_SECRET",
        "WEIR_BOOTSTRAP",
    ] {
        assert!(dev_env.contains(&format!("{k}=")), "dev.env lacks {k}");
    }

    let src = unique("src");
    let dst = unique("dst");
    let out = dev.ok(&[
        "statement",
        "create",
        "--wait",
        "--sql",
        &format!(
            "CREATE TABLE `{src}` (id BIGINT, amount INT) DISTRIBUTED BY HASH(id) INTO 2 BUCKETS"
        ),
    ]);
    assert!(out.contains("COMPLETED"), "{out}");
    dev.ok(&[
        "statement",
        "create",
        "--wait",
        "--sql",
        &format!("CREATE TABLE `{dst}` (id BIGINT, amount INT)"),
    ]);
    produce(&src, 0..1000);
    let created = dev.json(&[
        "statement",
        "create",
        "--name",
        "copy",
        "--wait",
        "--sql",
        &format!("INSERT INTO `{dst}` SELECT id, amount FROM `{src}` WHERE amount >= 50"),
    ]);
    assert_eq!(created["status"]["phase"], "RUNNING", "{created}");
    let mut ids = consume_ids(&dst, 500);
    ids.sort();
    assert_eq!(ids, (0..1000).filter(|i| i % 100 >= 50).collect::<Vec<_>>());

    let list = dev.json(&["statement", "list"]);
    assert!(
        list.as_array().unwrap().iter().any(|s| s["name"] == "copy"),
        "{list}"
    );
    let yaml = dev.ok(&["statement", "describe", "copy", "--output", "yaml"]);
    assert!(yaml.contains("phase: RUNNING"), "{yaml}");

    let out = dev.ok(&["statement", "stop", "copy"]);
    assert!(out.contains("STOPPED"), "{out}");
    dev.ok(&["statement", "resume", "copy"]);
    dev.wait_phase("copy", "RUNNING");
    dev.ok(&["statement", "exceptions", "copy"]);

    // `weir sql` prints a bounded query's rows and exits by itself.
    let out = dev.ok(&[
        "sql",
        "SELECT x * 2 AS doubled, UPPER(s) AS s FROM (VALUES (1, 'a'), (2, 'b')) AS t(x, s)",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["op | doubled | s", "+I | 2 | A", "+I | 4 | B"]);

    // Bad SQL: a non-zero exit with the position.
    let bad = dev.weir(&["sql", "SELECT id FROM\nnowhere_at_all"]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("nowhere_at_all") && err.contains("line 2"),
        "{err}"
    );

    // A wrong secret is refused.
    let denied = Command::new(WEIR)
        .args(["statement", "list"])
        .envs(&dev.env)
        .env("WEIR_API_SECRET", "wrong")
        .env("WEIR_CONFIG_DIR", dir.join("config"))
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("401"));

    // `weir login` saves the settings; later commands need no environment.
    let login = Command::new(WEIR)
        .args([
            "login",
            "--url",
            &dev.env["WEIR_URL"],
            "--org",
            &dev.env["WEIR_ORG"],
            "--env",
            &dev.env["WEIR_ENV"],
            "--api-key",
            &dev.env["WEIR_API_KEY"],
            "--api-secret",
            &dev.env["WEIR_API_SECRET"],
        ])
        .env("WEIR_CONFIG_DIR", dir.join("config"))
        .env_remove("WEIR_URL")
        .output()
        .unwrap();
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    let listed = Command::new(WEIR)
        .args(["statement", "list"])
        .env("WEIR_CONFIG_DIR", dir.join("config"))
        .env_remove("WEIR_URL")
        .env_remove("WEIR_API_KEY")
        .env_remove("WEIR_API_SECRET")
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(String::from_utf8_lossy(&listed.stdout).contains("copy"));

    let out = dev.ok(&["statement", "delete", "copy"]);
    assert!(out.contains("copy"));
    let gone = dev.weir(&["statement", "describe", "copy"]);
    assert!(!gone.status.success());
    dev.interrupt();
}

#[test]
fn the_cli_manages_compute_pools_and_reads_usage() {
    let dir = temp_dir();
    let dev = Dev::start(&dir);
    let created = dev.json(&["compute-pool", "create", "reports", "--max-cfu", "3"]);
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["spec"]["max_cfu"], 3, "{created}");
    let list = dev.ok(&["compute-pool", "list"]);
    assert!(list.contains(&id) && list.contains("reports"), "{list}");
    assert!(list.contains(&dev.env["WEIR_COMPUTE_POOL"]), "{list}");

    let changed = dev.json(&[
        "compute-pool",
        "update",
        &id,
        "--max-cfu",
        "6",
        "--stabilization-seconds",
        "30",
    ]);
    assert_eq!(changed["spec"]["max_cfu"], 6, "{changed}");
    assert_eq!(
        changed["spec"]["autoscaler"]["stabilization_seconds"], 30.0,
        "{changed}"
    );
    let described = dev.json(&["compute-pool", "describe", &id]);
    assert_eq!(described["spec"]["display_name"], "reports");
    assert_eq!(described["spec"]["max_cfu"], 6);

    // Bad input: a clear message and a non-zero exit.
    for (args, needle) in [
        (
            vec!["compute-pool", "update", id.as_str()],
            "nothing to change",
        ),
        (
            vec!["compute-pool", "create", "zero", "--max-cfu", "0"],
            "max_cfu",
        ),
        (
            vec![
                "compute-pool",
                "update",
                id.as_str(),
                "--target-utilization",
                "2",
            ],
            "target_utilization",
        ),
        (vec!["compute-pool", "describe", "lfcp-nope"], "lfcp-nope"),
        (
            vec!["usage", "--start", "2026-01-02", "--end", "2026-01-01"],
            "must be after",
        ),
    ] {
        let out = dev.weir(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }

    let today = chrono::Utc::now().date_naive();
    let tomorrow = today + chrono::Duration::days(1);
    let usage = dev.ok(&[
        "usage",
        "--start",
        &today.to_string(),
        "--end",
        &tomorrow.to_string(),
    ]);
    assert!(usage.contains("total:"), "{usage}");

    let out = dev.ok(&["compute-pool", "delete", &id]);
    assert!(out.contains(&id), "{out}");
    assert!(!dev
        .weir(&["compute-pool", "describe", &id])
        .status
        .success());
    dev.interrupt();
}

/// The identity commands: a service account with a read-only role and a
/// key of its own sees the environment's statements and may not make a
/// pool; the refusal names the missing role. An environment is made and
/// deleted; the audit log shows the refusal.
#[test]
fn the_cli_manages_service_accounts_keys_and_role_bindings() {
    let dir = temp_dir();
    let dev = Dev::start(&dir);
    let org = dev.env["WEIR_ORG"].clone();
    let env = dev.env["WEIR_ENV"].clone();
    let sa = dev.json(&["iam", "service-account", "create", "reporting"]);
    let sa = sa["id"].as_str().unwrap().to_string();
    assert!(dev.ok(&["iam", "service-account", "list"]).contains(&sa));
    let crn = format!("crn://weir/organization={org}/environment={env}");
    dev.ok(&[
        "iam",
        "role-binding",
        "create",
        "--principal",
        &format!("User:{sa}"),
        "--role",
        "ReadOnly",
        "--resource",
        &crn,
    ]);
    let bindings = dev.ok(&[
        "iam",
        "role-binding",
        "list",
        "--principal",
        &format!("User:{sa}"),
    ]);
    assert!(
        bindings.contains("ReadOnly") && bindings.contains(&crn),
        "{bindings}"
    );
    let key = dev.json(&["iam", "api-key", "create", "--service-account", &sa]);
    let (id, secret) = (
        key["id"].as_str().unwrap().to_string(),
        key["spec"]["secret"].as_str().unwrap().to_string(),
    );
    // Listing keys never shows a secret.
    assert!(!dev.ok(&["iam", "api-key", "list"]).contains(&secret));
    let as_sa = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(["--api-key", &id, "--api-secret", &secret]);
        dev.weir(&a)
    };
    assert!(as_sa(&["statement", "list"]).status.success());
    let denied = as_sa(&["compute-pool", "create", "mine", "--max-cfu", "1"]);
    assert!(!denied.status.success());
    let err = String::from_utf8_lossy(&denied.stderr);
    assert!(err.contains("403") && err.contains("FlinkAdmin"), "{err}");
    let audit = dev.ok(&["iam", "audit-log"]);
    assert!(
        audit.contains(&format!("User:{sa}")) && audit.contains("denied"),
        "{audit}"
    );
    // Kafka clusters: the test broker once more, as database `again`.
    let cluster = dev.json(&["kafka-cluster", "create", "again", "--bootstrap", &broker()]);
    let cluster_id = cluster["id"].as_str().unwrap().to_string();
    assert!(dev.ok(&["kafka-cluster", "list"]).contains("again"));
    dev.ok(&["kafka-cluster", "delete", &cluster_id]);
    assert!(!dev.ok(&["kafka-cluster", "list"]).contains("again"));
    // A broker that asks for SASL/PLAIN (`weir broker --sasl-users-file`):
    // registered with a user name and a password from the environment.
    let users = dev.data_dir.join("sasl-users");
    std::fs::write(&users, "# user:password\napp:cli-sasl-pw-31\n").unwrap();
    let port = free_port();
    let mut secured = Command::new(WEIR)
        .args([
            "broker",
            "--memory",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("--sasl-users-file")
        .arg(&users)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let bootstrap = format!("127.0.0.1:{port}");
    let register = |password: &str| {
        Command::new(WEIR)
            .args([
                "kafka-cluster",
                "create",
                "secured",
                "--bootstrap",
                &bootstrap,
            ])
            .args(["--sasl-username", "app", "--output", "json"])
            .envs(&dev.env)
            .env("WEIR_CONFIG_DIR", dev.data_dir.join("config"))
            .env("WEIR_KAFKA_SASL_PASSWORD", password)
            .output()
            .unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&bootstrap).is_err() {
        assert!(std::time::Instant::now() < deadline, "weir broker listens");
        std::thread::sleep(Duration::from_millis(50));
    }
    let wrong = register("not-it");
    assert!(!wrong.status.success());
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(err.contains("did not answer"), "{err}");
    let right = register("cli-sasl-pw-31");
    let out = String::from_utf8_lossy(&right.stdout);
    assert!(
        right.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&right.stderr)
    );
    assert!(
        out.contains("\"username\": \"app\"") && !out.contains("cli-sasl-pw-31"),
        "{out}"
    );
    let _ = secured.kill();
    let _ = secured.wait();
    // Quotas: lowered, shown, and back to the server's.
    let set = dev.json(&[
        "limits",
        "set",
        "--statements",
        "7",
        "--api-keys",
        "default",
    ]);
    assert_eq!(
        set["environment"]["limits"]["statements"]["limit"], 7,
        "{set}"
    );
    assert!(dev.ok(&["limits", "show"]).contains("organization"));
    let bad = dev.weir(&["limits", "set", "--compute-pools", "many"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("a number or `default`"));
    let back = dev.json(&["limits", "set", "--statements", "default"]);
    assert_eq!(
        back["environment"]["limits"]["statements"]["set_by_organization"],
        false
    );
    // Environments.
    let made = dev.json(&["environment", "create", "staging"]);
    let env_id = made["id"].as_str().unwrap().to_string();
    assert!(dev.ok(&["environment", "list"]).contains("staging"));
    dev.ok(&["environment", "delete", &env_id]);
    assert!(!dev.ok(&["environment", "list"]).contains("staging"));
    dev.ok(&["iam", "api-key", "delete", &id]);
    assert!(!as_sa(&["statement", "list"]).status.success());
    // OAuth: an identity provider (its JWKS served here) and a pool.
    let jwks = serve_jwks();
    let idp = dev.json(&[
        "iam",
        "identity-provider",
        "create",
        "corp",
        "--issuer",
        "https://idp.cli.test",
        "--jwks-uri",
        &jwks,
        "--audience",
        "weir",
    ]);
    let op = idp["id"].as_str().unwrap().to_string();
    assert!(dev.ok(&["iam", "identity-provider", "list"]).contains(&op));
    let bad = dev.weir(&[
        "iam",
        "identity-pool",
        "create",
        "etl",
        "--provider",
        &op,
        "--filter",
        "claims.sub = 'etl'",
    ]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("column 12"), "{err}");
    let pool = dev.json(&[
        "iam",
        "identity-pool",
        "create",
        "etl",
        "--provider",
        &op,
        "--filter",
        "claims.sub == 'etl'",
    ]);
    let pool_id = pool["id"].as_str().unwrap().to_string();
    assert_eq!(pool["principal"], format!("User:{pool_id}"));
    let pools = dev.ok(&["iam", "identity-pool", "list", "--provider", &op]);
    assert!(
        pools.contains(&pool_id) && pools.contains("claims.sub == 'etl'"),
        "{pools}"
    );
    // The CLI signs in with a token of that provider: the pool's roles.
    dev.ok(&[
        "iam",
        "role-binding",
        "create",
        "--principal",
        &format!("User:{pool_id}"),
        "--role",
        "FlinkDeveloper",
        "--resource",
        &crn,
    ]);
    let token = sign_token("etl");
    let as_pool = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(["--token", &token]);
        dev.weir(&a)
    };
    let listed = as_pool(&["statement", "list"]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let denied = as_pool(&["compute-pool", "create", "by-token", "--max-cfu", "1"]);
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("403"));
    let other = sign_token("someone-else");
    let refused = dev.weir(&["statement", "list", "--token", &other]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("401") && err.contains("no identity pool"),
        "{err}"
    );
    dev.ok(&["iam", "identity-provider", "delete", &op]);
    assert!(!dev.ok(&["iam", "identity-provider", "list"]).contains(&op));
    dev.interrupt();
}

/// A token for `sub` from the test identity provider of `fixtures/jwks.json`
/// (signed with its key, kept with the control plane's test fixtures).
fn sign_token(sub: &str) -> String {
    let pem = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../control-plane/tests/fixtures/oauth/rsa1.pem"
    ))
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("k1".into());
    let claims = serde_json::json!({"iss": "https://idp.cli.test", "aud": "weir", "sub": sub,
                                     "exp": now + 600});
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap(),
    )
    .unwrap()
}

/// Serves `fixtures/jwks.json` to every request on a local port, in a
/// thread: an identity provider's keys for the CLI to register.
fn serve_jwks() -> String {
    use std::io::{Read, Write};
    let doc = include_str!("fixtures/jwks.json");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{doc}",
                doc.len()
            );
        }
    });
    format!("http://{addr}/jwks")
}

/// `weir dev` is killed (SIGKILL) while an INSERT runs and records keep
/// arriving, then started again on the same data directory. Claim: nothing
/// acknowledged is lost. On a broker with transactions the sink is
/// exactly-once: nothing is written twice either (the transaction open at
/// the crash is aborted). Without, records written after the last stored
/// offsets may be written again (at-least-once), so duplicates are counted.
#[test]
fn a_crash_of_weir_dev_loses_no_record() {
    let dir = temp_dir();
    let dev = Dev::start(&dir);
    let src = unique("src");
    let dst = unique("dst");
    for sql in [
        format!(
            "CREATE TABLE `{src}` (id BIGINT, amount INT) DISTRIBUTED BY HASH(id) INTO 3 BUCKETS"
        ),
        format!("CREATE TABLE `{dst}` (id BIGINT, amount INT)"),
    ] {
        dev.ok(&["statement", "create", "--wait", "--sql", &sql]);
    }
    produce(&src, 0..2000);
    dev.ok(&[
        "statement",
        "create",
        "--name",
        "copy",
        "--wait",
        "--sql",
        &format!("INSERT INTO `{dst}` SELECT id, amount FROM `{src}`"),
    ]);
    consume_ids(&dst, 2000);
    // Records keep arriving while the process dies and after it is back.
    let feeder = Feeder::start(&src, 2000, Duration::from_millis(20), None);
    std::thread::sleep(Duration::from_millis(400));
    dev.kill();

    let dev = Dev::start(&dir);
    dev.wait_phase("copy", "RUNNING");
    let produced = feeder.finish_after_restart();
    let mut ids = consume_ids(&dst, produced as usize);
    ids.sort();
    let total = ids.len();
    ids.dedup();
    assert_eq!(ids, (0..produced).collect::<Vec<_>>(), "lost records");
    eprintln!("duplicates after the crash: {}", total - ids.len());
    if exactly_once(&dev, "copy") {
        assert_eq!(total, ids.len(), "an exactly-once sink wrote records twice");
    }
    // Ctrl-C after a restart still stops cleanly.
    dev.interrupt();
}

/// Every JSON value in `topic`, read until `done` says so (then a second
/// more, to catch extras).
fn consume_values_until(topic: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    consume_values_settled(topic, Duration::from_secs(1), done)
}

/// The values of `topic` from its start, read until `done` holds and then
/// for `settle` more.
fn consume_values_settled(
    topic: &str,
    settle_for: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let c = reader_from_start(&broker(), topic);
    let mut values = vec![];
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut settle: Option<Instant> = None;
    loop {
        if settle.is_none() && done(&values) {
            settle = Some(Instant::now() + settle_for);
        }
        if settle.is_some_and(|s| Instant::now() > s) {
            return values;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: still waiting after 90 s with {} records: {values:?}",
            values.len()
        );
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            values.push(serde_json::from_slice(m.payload().unwrap()).unwrap());
        }
    }
}

/// Waits for statement `name`'s first checkpoint, feeds `src` from id
/// 2,000 on, and SIGKILLs `weir dev` as soon as `dst` holds `written`
/// records: before the next checkpoint (2 s apart) can cover them. Starts
/// `weir dev` again and returns it with the number of ids produced once
/// the feeder has gone on for a while after the restart.
fn crash_between_checkpoints(
    dev: Dev,
    dir: &Path,
    name: &str,
    src: &str,
    dst: &str,
    written: usize,
) -> (Dev, i64) {
    dev.wait_checkpoints(name, 1);
    let feeder = Feeder::start(src, 2000, Duration::from_millis(100), Some(3));
    consume_values_settled(dst, Duration::ZERO, |v| v.len() >= written);
    dev.kill();
    let dev = Dev::start(dir);
    dev.wait_phase(name, "RUNNING");
    let produced = feeder.finish_after_restart();
    (dev, produced)
}

/// `weir dev` is killed (SIGKILL) between checkpoints of a tumbling window
/// aggregation while records keep arriving, and started again: the
/// statement resumes from its last checkpoint (operator state and the
/// offsets it covers). Every window then holds exactly the rows of an
/// uninterrupted run, computed here. With an exactly-once sink each
/// window is in the sink once; with an at-least-once one, windows emitted
/// after the last checkpoint and before the crash are emitted again, so
/// duplicates must be identical rows.
#[test]
fn a_window_aggregation_recovers_from_its_checkpoint_after_a_crash() {
    let dir = temp_dir();
    let dev = Dev::start(&dir);
    let src = unique("ticks");
    let dst = unique("per_second");
    for sql in [
        format!(
            "CREATE TABLE `{src}` (id BIGINT, amount INT, ts AS TO_TIMESTAMP_LTZ(id * 10, 3), \
             WATERMARK FOR ts AS ts) DISTRIBUTED INTO 3 BUCKETS"
        ),
        format!("CREATE TABLE `{dst}` (window_start TIMESTAMP(3), n BIGINT, total BIGINT)"),
    ] {
        dev.ok(&["statement", "create", "--wait", "--sql", &sql]);
    }
    produce_records(&broker(), &src, 0..2000, Some(3));
    dev.ok(&[
        "statement",
        "create",
        "--name",
        "per-second",
        "--wait",
        "--property",
        "execution.checkpointing.interval=2 s",
        "--sql",
        &format!(
            "INSERT INTO `{dst}` SELECT window_start, COUNT(*), SUM(amount) \
             FROM TABLE(TUMBLE(TABLE `{src}`, DESCRIPTOR(ts), INTERVAL '1' SECOND)) \
             GROUP BY window_start, window_end"
        ),
    ]);
    // Ids 0..2000 close windows 0..19 (each 100 ids of 10 ms).
    consume_values_until(&dst, |v| v.len() >= 19);
    // A checkpoint holds window 19 open; the feeder's first records close
    // windows 19 and 20.
    let (dev, produced) = crash_between_checkpoints(dev, &dir, "per-second", &src, &dst, 21);
    // A record far ahead on every partition moves the watermark (the
    // minimum over partitions) past every window of ids below `produced`.
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .create()
        .unwrap();
    let closer = format!(r#"{{"id":{},"amount":0}}"#, produced + 1000);
    let acks: Vec<_> = (0..3)
        .map(|part| {
            p.send_result(
                FutureRecord::<(), _>::to(&src)
                    .partition(part)
                    .payload(&closer),
            )
            .map_err(|(e, _)| e)
            .unwrap()
        })
        .collect();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            for a in acks {
                a.await.unwrap().map_err(|(e, _)| e).unwrap();
            }
        });
    // Window w holds ids 100w..100w+99 (10 ms each).
    let windows = produced / 100;
    let expected: std::collections::BTreeMap<i64, (i64, i64)> = (0..windows)
        .map(|w| (w, (100, (100 * w..100 * w + 100).map(|id| id % 100).sum())))
        .collect();
    let got = consume_values_until(&dst, |v| {
        let distinct: std::collections::BTreeSet<String> =
            v.iter().map(|x| x.to_string()).collect();
        distinct.len() >= expected.len()
    });
    let mut seen: std::collections::BTreeMap<i64, (i64, i64)> = Default::default();
    let mut duplicates = 0;
    for v in &got {
        let start = v["window_start"]
            .as_str()
            .expect("window_start")
            .to_string();
        // `1970-01-01 00:01:07`: the window index is the seconds.
        let t = &start[start.find(' ').expect("a timestamp") + 1..];
        let w = t[0..2].parse::<i64>().unwrap() * 3600
            + t[3..5].parse::<i64>().unwrap() * 60
            + t[6..8].parse::<i64>().unwrap();
        let row = (v["n"].as_i64().unwrap(), v["total"].as_i64().unwrap());
        if let Some(before) = seen.insert(w, row) {
            assert_eq!(
                before, row,
                "window {w} emitted twice with different results"
            );
            duplicates += 1;
        }
    }
    assert_eq!(
        seen, expected,
        "every window exactly as an uninterrupted run"
    );
    eprintln!("windows re-emitted after the crash: {duplicates}");
    if exactly_once(&dev, "per-second") {
        assert_eq!(duplicates, 0, "an exactly-once sink emitted windows twice");
    }
    // A worker reports its metrics with its heartbeats: wait for the
    // first checkpoint to show rather than expect it at once.
    dev.wait_checkpoints("per-second", 1);
    let out = dev.ok(&["statement", "describe", "per-second", "--output", "json"]);
    let s: Value = serde_json::from_str(&out).unwrap();
    let m = &s["status"]["metrics"];
    // Resumed from the checkpoint, not from the start of the topic: the
    // 2,000 records read before the crash (and checkpointed while waiting)
    // are not read again.
    let read_again = m["records_in"].as_i64().unwrap();
    assert!(
        read_again <= produced + 3 - 2000,
        "read {read_again} records after the restart of {} produced",
        produced + 3
    );
    dev.interrupt();
}

/// `weir dev` is killed (SIGKILL) between checkpoints of a join while
/// records keep arriving, and started again. The self-join pairs each
/// record with itself, reading the topic once per input; after recovery
/// every id has exactly its pair in the sink, as an uninterrupted run
/// writes it, once with an exactly-once sink. Pairs written after the last
/// checkpoint are written again by an at-least-once one, so duplicates
/// must be identical; and the recovered run resumes both inputs from the
/// checkpoint instead of the topic's start.
#[test]
fn a_join_recovers_from_its_checkpoint_after_a_crash() {
    let dir = temp_dir();
    let dev = Dev::start(&dir);
    let src = unique("events");
    let dst = unique("pairs");
    for sql in [
        format!("CREATE TABLE `{src}` (id BIGINT, amount INT) DISTRIBUTED INTO 3 BUCKETS"),
        format!("CREATE TABLE `{dst}` (id BIGINT, a INT, b INT)"),
    ] {
        dev.ok(&["statement", "create", "--wait", "--sql", &sql]);
    }
    produce_records(&broker(), &src, 0..2000, Some(3));
    dev.ok(&[
        "statement",
        "create",
        "--name",
        "pairs",
        "--wait",
        "--property",
        "execution.checkpointing.interval=2 s",
        "--sql",
        &format!(
            "INSERT INTO `{dst}` SELECT x.id, x.amount, y.amount + 1 \
             FROM `{src}` AS x JOIN `{src}` AS y ON x.id = y.id"
        ),
    ]);
    consume_values_until(&dst, |v| v.len() >= 2000);
    // A checkpoint holds the first 2,000 on both inputs; the feeder's
    // first 300 records are paired.
    let (dev, produced) = crash_between_checkpoints(dev, &dir, "pairs", &src, &dst, 2300);
    let got = consume_values_until(&dst, |v| {
        let distinct: std::collections::BTreeSet<i64> =
            v.iter().map(|x| x["id"].as_i64().unwrap()).collect();
        distinct.len() as i64 >= produced
    });
    let mut seen: std::collections::BTreeMap<i64, (i64, i64)> = Default::default();
    let mut duplicates = 0;
    for v in &got {
        let id = v["id"].as_i64().unwrap();
        let row = (v["a"].as_i64().unwrap(), v["b"].as_i64().unwrap());
        if let Some(before) = seen.insert(id, row) {
            assert_eq!(before, row, "id {id} written twice with different rows");
            duplicates += 1;
        }
    }
    let expected: std::collections::BTreeMap<i64, (i64, i64)> = (0..produced)
        .map(|id| (id, (id % 100, id % 100 + 1)))
        .collect();
    assert_eq!(seen, expected, "every pair exactly as an uninterrupted run");
    eprintln!("pairs re-written after the crash: {duplicates}");
    if exactly_once(&dev, "pairs") {
        assert_eq!(duplicates, 0, "an exactly-once sink wrote pairs twice");
    }
    // Metrics come with the worker's heartbeats: wait for the last input
    // to show (every id held on both inputs) before reading them.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (out, s) = loop {
        let out = dev.ok(&["statement", "describe", "pairs", "--output", "json"]);
        let s: Value = serde_json::from_str(&out).unwrap();
        if s["status"]["metrics"]["state_groups"].as_i64() == Some(2 * produced)
            || Instant::now() > deadline
        {
            break (out, s);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let m = &s["status"]["metrics"];
    // Both inputs resumed from the checkpoint: the 2,000 records read by
    // each before the crash are not read again.
    let read_again = m["records_in"].as_i64().unwrap();
    assert!(
        read_again <= 2 * (produced - 2000),
        "read {read_again} records after the restart, of {produced} produced"
    );
    // Every id is held on both inputs once all are read.
    assert_eq!(m["state_groups"].as_i64(), Some(2 * produced), "{out}");
    dev.interrupt();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Plain `weir dev` (its own broker, on disk in the data directory): Ctrl-C,
/// start again, and the topics, their records, the tables and the running
/// statement are all still there.
#[test]
fn weir_dev_keeps_topics_tables_and_statements_across_a_restart() {
    let dir = temp_dir();
    let port = free_port();
    let dev = Dev::start_own_broker(&dir, port);
    let bootstrap = dev.env["WEIR_BOOTSTRAP"].clone();
    assert_eq!(bootstrap, format!("127.0.0.1:{port}"));
    copy_src_to_dst(&dev, &bootstrap, 500);
    assert_eq!(consume_ids_from(&bootstrap, "dst", 500).len(), 500);
    dev.interrupt();

    let dev = Dev::start_own_broker(&dir, port);
    let tables = dev.ok(&["sql", "SHOW TABLES"]);
    assert!(tables.contains("src") && tables.contains("dst"), "{tables}");
    dev.wait_phase("copy", "RUNNING");
    produce_to(&bootstrap, "src", 500..800);
    let mut ids = consume_ids_from(&bootstrap, "dst", 800);
    ids.sort();
    assert_eq!(ids, (0..800).collect::<Vec<_>>(), "every record once");
    dev.interrupt();
}

/// Tables `src` and `dst`, records `0..n` in `src`, and statement `copy`
/// running `INSERT INTO dst SELECT ... FROM src`.
fn copy_src_to_dst(dev: &Dev, bootstrap: &str, n: i64) {
    for sql in [
        "CREATE TABLE src (id BIGINT, amount INT)",
        "CREATE TABLE dst (id BIGINT, amount INT)",
    ] {
        dev.ok(&["statement", "create", "--wait", "--sql", sql]);
    }
    produce_to(bootstrap, "src", 0..n);
    dev.ok(&[
        "statement",
        "create",
        "--name",
        "copy",
        "--wait",
        "--sql",
        "INSERT INTO dst SELECT id, amount FROM src",
    ]);
}

/// `weir broker` as a child process of the test, on `port`, keeping its
/// topics in `dir`.
fn start_broker(dir: &Path, port: u16) -> std::process::Child {
    let child = std::process::Command::new(WEIR)
        .args([
            "broker",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("weir broker starts");
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "weir broker did not open {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn signal(child: &std::process::Child, sig: i32) {
    // SAFETY: kill(2) on the test's own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

/// A broker that stops answering (frozen) and then dies and comes back
/// under a running INSERT: the sink waits, retries, and in the end holds
/// every input record exactly once, and the statement keeps running.
#[test]
fn the_sink_neither_loses_nor_duplicates_while_its_broker_is_frozen_and_restarted() {
    let dir = temp_dir();
    let port = free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    let mut broker = start_broker(&dir.join("broker"), port);
    let dev = Dev::start_with(&dir.join("dev"), &["--bootstrap", &bootstrap]);
    copy_src_to_dst(&dev, &bootstrap, 2000);
    let total = 8000;
    let feeder = {
        let bootstrap = bootstrap.clone();
        std::thread::spawn(move || {
            for start in (2000..total).step_by(300) {
                produce_to(&bootstrap, "src", start..(start + 300).min(total));
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    // Slow: the broker takes the records' connections but answers nothing.
    signal(&broker, libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(3));
    signal(&broker, libc::SIGCONT);
    std::thread::sleep(Duration::from_millis(500));
    // Gone: killed with whatever was in flight, and back on the same data.
    broker.kill().unwrap();
    broker.wait().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let mut broker = start_broker(&dir.join("broker"), port);
    feeder.join().expect("every input record was acknowledged");
    let mut ids = consume_ids_from(&bootstrap, "dst", total as usize);
    ids.sort();
    let dups = ids.windows(2).filter(|w| w[0] == w[1]).count();
    ids.dedup();
    assert_eq!(dups, 0, "records written twice");
    assert_eq!(ids, (0..total).collect::<Vec<_>>(), "every record once");
    assert_eq!(dev.phase("copy"), "RUNNING");
    dev.interrupt();
    broker.kill().unwrap();
    let _ = broker.wait();
}
