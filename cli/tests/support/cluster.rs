//! A `weir server --workers` and its `weir worker` processes, for the tests
//! of statements placed on workers.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use super::*;

/// `weir server --workers` on `database_url`, with the dev tenant on the
/// test broker; heartbeats every 200 ms, leases of 2 s.
pub fn server(dir: &Path, database_url: &str) -> Dev {
    server_on(dir, database_url, "127.0.0.1:0")
}

/// [`server`] listening on `listen`.
pub fn server_on(dir: &Path, database_url: &str, listen: &str) -> Dev {
    server_with(dir, database_url, listen, &[])
}

/// [`server`] that starts its own `weir worker` processes of `slots` slots
/// as the pools' tasks need them, and stops them when idle.
pub fn provisioning_server(dir: &Path, database_url: &str, slots: u32) -> Dev {
    server_with(
        dir,
        database_url,
        "127.0.0.1:0",
        &["--provision-worker-slots", &slots.to_string()],
    )
}

/// The `weir` processes whose parent is `pid` (a provisioner's workers).
pub fn child_processes(pid: u32) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            // pid (comm) state ppid ...: comm may hold spaces, so split
            // after its closing parenthesis.
            let Some((head, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let ppid = rest.split_whitespace().nth(1);
            head.contains("(weir") && ppid == Some(pid.to_string().as_str())
        })
        .count()
}

fn server_with(dir: &Path, database_url: &str, listen: &str, extra: &[&str]) -> Dev {
    let mut child = Command::new(WEIR)
        .args(["server", "--listen", listen, "--workers"])
        .args(extra)
        .args(["--database-url", database_url])
        .arg("--worker-credential-file")
        .arg(dir.join("worker-credential"))
        .arg("--secret-key-file")
        .arg(dir.join("secret.key"))
        .arg("--checkpoint-dir")
        .arg(dir.join("checkpoints"))
        .args([
            "--lease-timeout-ms",
            "2000",
            "--heartbeat-interval-ms",
            "200",
        ])
        .args(["--dev-bootstrap", &broker()])
        .arg("--dev-env-dir")
        .arg(dir)
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("weir server starts");
    let env = read_exports(&mut child, "weir server");
    Dev {
        child,
        data_dir: dir.to_path_buf(),
        env,
    }
}

/// A `weir worker` of the dev pool with 2 slots, with the server's
/// credential.
pub fn worker(server: &Dev, credential: &Path) -> Child {
    worker_with_slots(server, credential, 2)
}

/// A `weir worker` of the dev pool with `slots` slots.
pub fn worker_with_slots(server: &Dev, credential: &Path, slots: u32) -> Child {
    Command::new(WEIR)
        .args([
            "worker",
            "--pool",
            "lfcp-dev",
            "--slots",
            &slots.to_string(),
        ])
        .args(["--control-plane", &server.env["WEIR_URL"]])
        .arg("--credential-file")
        .arg(credential)
        .env("RUST_BACKTRACE", "0")
        .stderr(Stdio::inherit())
        .spawn()
        .expect("weir worker starts")
}

/// Statement `copy`: `INSERT INTO dst SELECT id, k FROM src`, not waited for.
pub fn start_copy(dev: &Dev, src: &str, dst: &str) {
    dev.ok(&[
        "statement",
        "create",
        "--name",
        "copy",
        "--sql",
        &format!("INSERT INTO {dst} SELECT id, k FROM {src}"),
    ]);
}

pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn describe(dev: &Dev, name: &str) -> Value {
    dev.json(&["statement", "describe", name])
}

/// A fresh PostgreSQL database on the server `infra/test.sh` started.
pub fn fresh_postgres() -> String {
    let admin = std::env::var("WEIR_TEST_POSTGRES").expect(
        "WEIR_TEST_POSTGRES is not set: run the suite with infra/test.sh, which starts PostgreSQL",
    );
    let db = unique("weir");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let pool = sqlx::PgPool::connect(&admin).await.expect("PostgreSQL");
        sqlx::query(&format!("CREATE DATABASE {db}"))
            .execute(&pool)
            .await
            .expect("create database");
        pool.close().await;
    });
    format!("{}/{db}", admin.rsplit_once('/').unwrap().0)
}
