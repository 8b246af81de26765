//! The Terraform provider driven by the real `terraform` binary against a
//! `weir dev` process: apply, a plan with no changes, stop and resume in
//! place, drift made through the CLI, a replacement for new SQL, import of
//! every resource into an empty state, destroy, and the errors a user meets
//! (a failing statement, a wrong key or endpoint, an invalid `max_cfu`, an
//! unknown attribute).
//!
//! `terraform` must be on PATH (1.11 on the project's machines); the
//! provider is installed into a filesystem mirror by
//! `infra/terraform/install-provider.sh`, so nothing is downloaded.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{broker, produce_records, temp_dir, unique, Dev, WEIR};

/// `terraform` in one working directory, with the provider from the
/// mirror and `weir dev`'s settings as the provider's environment.
struct Terraform {
    dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Terraform {
    fn new(dir: &Path, cli_config: &Path, dev: &Dev) -> Terraform {
        std::fs::create_dir_all(dir).unwrap();
        let mut env: Vec<(String, String)> = dev
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        env.push((
            "TF_CLI_CONFIG_FILE".into(),
            cli_config.display().to_string(),
        ));
        env.push(("CHECKPOINT_DISABLE".into(), "1".into()));
        env.push(("TF_IN_AUTOMATION".into(), "1".into()));
        env.push(("TF_INPUT".into(), "0".into()));
        Terraform {
            dir: dir.to_path_buf(),
            env,
        }
    }

    fn write(&self, main_tf: &str) {
        std::fs::write(self.dir.join("main.tf"), main_tf).unwrap();
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("terraform")
            .args(args)
            .current_dir(&self.dir)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("terraform runs (it must be on PATH)")
    }

    /// Runs `terraform ARGS`, failing the test on a non-zero exit.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "terraform {args:?} failed:\n{text}");
        text
    }

    /// Runs `terraform ARGS` that must fail; returns what it printed.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !out.status.success(),
            "terraform {args:?} succeeded:\n{text}"
        );
        text
    }

    fn apply(&self) -> String {
        self.ok(&["apply", "-auto-approve", "-no-color"])
    }

    /// `terraform plan -detailed-exitcode`: `(false, text)` when it plans no
    /// change, `(true, text)` when it plans some.
    fn plan(&self) -> (bool, String) {
        let out = self.run(&["plan", "-detailed-exitcode", "-no-color"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        match out.status.code() {
            Some(0) => (false, text),
            Some(2) => (true, text),
            _ => panic!("terraform plan failed:\n{text}"),
        }
    }

    fn output(&self, name: &str) -> Value {
        let text = self.ok(&["output", "-json", name]);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }
}

/// Installs the provider built next to `weir` into a mirror; the CLI
/// configuration's path.
fn install_provider(dir: &Path) -> PathBuf {
    let provider = Path::new(WEIR).with_file_name("terraform-provider-weir");
    assert!(
        provider.exists(),
        "{} is not built: cargo build --bin terraform-provider-weir (infra/test.sh does)",
        provider.display()
    );
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/terraform/install-provider.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg(dir.join("mirror"))
        .arg(&provider)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "install-provider.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

struct Names {
    orders: String,
    big: String,
    database: String,
    broker: String,
}

fn config(n: &Names, threshold: i64, stopped: bool, max_cfu: i64) -> String {
    format!(
        r#"
terraform {{
  required_providers {{
    weir = {{ source = "weir.dev/weir/weir" }}
  }}
}}

provider "weir" {{}}

data "weir_environment" "current" {{}}

resource "weir_environment" "staging" {{
  display_name = "staging"
}}

resource "weir_kafka_cluster" "events" {{
  environment        = weir_environment.staging.id
  display_name       = "events"
  bootstrap_endpoint = "{broker}"
}}

resource "weir_compute_pool" "etl" {{
  display_name = "etl"
  max_cfu      = {max_cfu}
}}

resource "weir_service_account" "etl" {{
  display_name = "etl-runner"
  description  = "runs the ETL"
}}

resource "weir_role_binding" "etl" {{
  principal   = "User:${{weir_service_account.etl.id}}"
  role_name   = "EnvironmentAdmin"
  crn_pattern = data.weir_environment.current.resource_name
}}

resource "weir_api_key" "etl" {{
  owner       = weir_service_account.etl.id
  resource    = data.weir_environment.current.id
  description = "the ETL's key"
}}

resource "weir_flink_statement" "orders" {{
  statement    = "CREATE TABLE {orders} (id BIGINT, amount DOUBLE)"
  compute_pool = weir_compute_pool.etl.id
}}

resource "weir_flink_statement" "big" {{
  statement    = "CREATE TABLE {big} (id BIGINT, amount DOUBLE)"
  compute_pool = weir_compute_pool.etl.id
}}

resource "weir_flink_statement" "copy" {{
  statement_name = "copy-big-orders"
  statement      = "INSERT INTO {big} SELECT id, amount FROM {orders} WHERE amount > {threshold}"
  compute_pool   = weir_compute_pool.etl.id
  principal      = weir_service_account.etl.id
  stopped        = {stopped}
  properties     = {{ "sql.local-time-zone" = "UTC" }}
  depends_on     = [weir_flink_statement.orders, weir_flink_statement.big, weir_role_binding.etl]
}}

data "weir_compute_pool" "etl" {{
  id = weir_compute_pool.etl.id
}}

data "weir_table" "orders" {{
  database   = "{database}"
  name       = "{orders}"
  depends_on = [weir_flink_statement.orders]
}}

output "copy_name" {{
  value = weir_flink_statement.copy.statement_name
}}

output "copy_phase" {{
  value = weir_flink_statement.copy.phase
}}

output "copy_offsets" {{
  value = weir_flink_statement.copy.latest_offsets
}}

output "orders_columns" {{
  value = data.weir_table.orders.columns
}}

output "pool_max_cfu" {{
  value = data.weir_compute_pool.etl.max_cfu
}}

output "etl_key" {{
  value = weir_api_key.etl.id
}}

output "etl_secret" {{
  value     = weir_api_key.etl.secret
  sensitive = true
}}
"#,
        orders = n.orders,
        big = n.big,
        database = n.database,
        broker = n.broker,
    )
}

/// The import ids of the configuration's resources, from the state.
fn import_ids(tf: &Terraform) -> Vec<(String, String)> {
    let state: Value = serde_json::from_str(&tf.ok(&["show", "-json"])).unwrap();
    let mut ids = vec![];
    for r in state["values"]["root_module"]["resources"]
        .as_array()
        .unwrap()
    {
        if r["mode"] != "managed" {
            continue;
        }
        let v = &r["values"];
        let id = match r["type"].as_str().unwrap() {
            "weir_compute_pool" | "weir_kafka_cluster" => format!(
                "{}/{}",
                v["environment"].as_str().unwrap(),
                v["id"].as_str().unwrap()
            ),
            _ => v["id"].as_str().unwrap().to_string(),
        };
        ids.push((r["address"].as_str().unwrap().to_string(), id));
    }
    ids
}

/// The items of a CLI list: an array, or an API list's `data`.
fn items(v: &Value) -> Vec<Value> {
    v.as_array()
        .or_else(|| v["data"].as_array())
        .cloned()
        .unwrap_or_else(|| panic!("not a list: {v}"))
}

fn wait_phase(dev: &Dev, name: &str, phase: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while dev.phase(name) != phase {
        assert!(Instant::now() < deadline, "{name} never became {phase}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn terraform_manages_pools_statements_and_access_and_sees_drift() {
    let dir = temp_dir();
    let dev = Dev::start(&dir.join("dev"));
    let cli_config = install_provider(&dir);
    let clusters = dev.json(&["kafka-cluster", "list"]);
    let names = Names {
        orders: unique("tf_orders"),
        big: unique("tf_big"),
        database: items(&clusters)[0]["spec"]["display_name"]
            .as_str()
            .unwrap()
            .to_string(),
        broker: broker(),
    };
    let tf = Terraform::new(&dir.join("tf"), &cli_config, &dev);
    tf.write(&config(&names, 50, false, 4));
    tf.ok(&["init", "-no-color"]);

    // Apply: everything is made, the INSERT runs as the service account.
    let applied = tf.apply();
    assert!(
        applied.contains("Apply complete! Resources: 9 added"),
        "{applied}"
    );
    let copy = tf.output("copy_name");
    let copy = copy.as_str().unwrap();
    assert_eq!(copy, "copy-big-orders");
    assert_eq!(tf.output("copy_phase"), "RUNNING");
    let described = dev.json(&["statement", "describe", copy]);
    assert!(
        described["spec"]["principal"]
            .as_str()
            .unwrap()
            .starts_with("sa-"),
        "{described}"
    );
    let columns = tf.output("orders_columns");
    assert_eq!(columns[0]["name"], "id", "{columns}");
    assert_eq!(columns[0]["data_type"], "BIGINT", "{columns}");
    assert_eq!(columns[1]["name"], "amount", "{columns}");
    assert_eq!(tf.output("pool_max_cfu"), 4);
    let pools = dev.json(&["compute-pool", "list"]);
    assert!(
        items(&pools)
            .iter()
            .any(|p| p["spec"]["display_name"] == "etl" && p["spec"]["max_cfu"] == 4),
        "{pools}"
    );

    // The key Terraform made works, scoped to the environment: another
    // configuration reads the pool with it.
    let mut reader = Terraform::new(&dir.join("reader"), &cli_config, &dev);
    reader.env.push((
        "WEIR_API_KEY".into(),
        tf.output("etl_key").as_str().unwrap().into(),
    ));
    reader.env.push((
        "WEIR_API_SECRET".into(),
        tf.output("etl_secret").as_str().unwrap().into(),
    ));
    reader.write(
        r#"
terraform {
  required_providers {
    weir = { source = "weir.dev/weir/weir" }
  }
}
provider "weir" {}
data "weir_compute_pool" "etl" { display_name = "etl" }
output "max_cfu" { value = data.weir_compute_pool.etl.max_cfu }
"#,
    );
    reader.ok(&["init", "-no-color"]);
    reader.apply();
    assert_eq!(reader.output("max_cfu"), 4);

    // A plan right after the apply changes nothing.
    let (changes, text) = tf.plan();
    assert!(!changes, "a plan after apply wants changes:\n{text}");

    // Records flow, then `stopped = true` stops it in place and exposes
    // the offsets it reached.
    // amount is id % 100: 49 of these are over 50.
    produce_records(&names.broker, &names.orders, 0..100, None);
    let seen = support::consume_ids(&names.big, 49);
    assert_eq!(seen.len(), 49, "ids with amount > 50: {seen:?}");
    tf.write(&config(&names, 50, true, 4));
    let (changes, text) = tf.plan();
    assert!(changes && text.contains("update in-place"), "{text}");
    assert!(
        text.contains("~ stopped") && !text.contains("must be replaced"),
        "{text}"
    );
    tf.apply();
    assert_eq!(dev.phase(copy), "STOPPED");
    assert_eq!(tf.output("copy_phase"), "STOPPED");
    let offsets = tf.output("copy_offsets");
    assert!(
        offsets[&names.orders]
            .as_str()
            .is_some_and(|o| o.contains(':')),
        "latest_offsets of a stopped statement: {offsets}"
    );
    let (changes, text) = tf.plan();
    assert!(!changes, "{text}");

    // Drift: resumed and resized through the CLI, the next plan says so.
    dev.ok(&["statement", "resume", copy]);
    wait_phase(&dev, copy, "RUNNING");
    let pool_id = items(&pools)
        .iter()
        .find(|p| p["spec"]["display_name"] == "etl")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    dev.ok(&["compute-pool", "update", &pool_id, "--max-cfu", "6"]);
    let (changes, text) = tf.plan();
    assert!(changes, "drift not seen:\n{text}");
    assert!(
        text.contains("~ stopped") && text.contains("false -> true"),
        "{text}"
    );
    assert!(
        text.contains("~ max_cfu") && text.contains("6 -> 4"),
        "{text}"
    );
    tf.apply();
    assert_eq!(dev.phase(copy), "STOPPED");

    // max_cfu grows in place; new SQL replaces the statement.
    tf.write(&config(&names, 90, false, 8));
    let (changes, text) = tf.plan();
    assert!(changes, "{text}");
    assert!(text.contains("must be replaced"), "{text}");
    assert!(
        text.contains("# weir_compute_pool.etl will be updated in-place"),
        "{text}"
    );
    assert!(
        text.contains("1 to add, 1 to change, 1 to destroy"),
        "{text}"
    );
    tf.apply();
    let replaced = dev.json(&["statement", "describe", "copy-big-orders"]);
    assert!(
        replaced["spec"]["statement"]
            .as_str()
            .unwrap()
            .contains("amount > 90"),
        "{replaced}"
    );
    assert_eq!(replaced["status"]["phase"], "RUNNING");
    assert_eq!(tf.output("pool_max_cfu"), 8);
    let (changes, text) = tf.plan();
    assert!(!changes, "{text}");

    // Every resource imports into an empty state with no change planned.
    let imported = Terraform::new(&dir.join("imported"), &cli_config, &dev);
    imported.write(&config(&names, 90, false, 8));
    imported.ok(&["init", "-no-color"]);
    for (address, id) in import_ids(&tf) {
        imported.ok(&["import", "-no-color", &address, &id]);
    }
    let (changes, text) = imported.plan();
    assert!(!changes, "a plan after importing wants changes:\n{text}");

    // Destroy leaves none of it behind.
    let destroyed = tf.ok(&["destroy", "-auto-approve", "-no-color"]);
    assert!(destroyed.contains("Resources: 9 destroyed"), "{destroyed}");
    let statements = dev.json(&["statement", "list"]);
    assert!(
        !statements.to_string().contains("copy-big-orders"),
        "{statements}"
    );
    let pools = dev.json(&["compute-pool", "list"]);
    assert!(!pools.to_string().contains(&pool_id), "{pools}");
    let accounts = dev.json(&["iam", "service-account", "list"]);
    assert!(!accounts.to_string().contains("etl-runner"), "{accounts}");
    let envs = dev.json(&["environment", "list"]);
    assert!(!envs.to_string().contains("staging"), "{envs}");
}

#[test]
fn terraform_shows_weirs_errors_and_catches_bad_configuration_at_plan() {
    let dir = temp_dir();
    let dev = Dev::start(&dir.join("dev"));
    let cli_config = install_provider(&dir);
    let tf = Terraform::new(&dir.join("tf"), &cli_config, &dev);
    let header = r#"
terraform {
  required_providers {
    weir = { source = "weir.dev/weir/weir" }
  }
}
provider "weir" {}
"#;
    tf.write(&format!(
        "{header}\nresource \"weir_flink_statement\" \"bad\" {{\n  statement = \"SELECT nope\\nFROM no_such_table\"\n}}\n"
    ));
    tf.ok(&["init", "-no-color"]);
    // A statement Weir refuses: its message, with line and column.
    let text = tf.fails(&["apply", "-auto-approve", "-no-color"]);
    assert!(text.contains("Error: Creating the statement"), "{text}");
    assert!(text.contains("no_such_table"), "{text}");
    assert!(text.contains("line 2"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    let statements = dev.json(&["statement", "list"]);
    assert_eq!(items(&statements).len(), 0, "{statements}");

    // A statement that fails while it starts: Weir's error, and nothing left.
    let topic = unique("tf_missing");
    tf.write(&format!(
        "{header}\nresource \"weir_flink_statement\" \"bad\" {{\n  statement = \"CREATE TABLE {topic} (id BIGINT) WITH ('connector' = 'kafka', 'value.format' = 'no-such-format')\"\n}}\n"
    ));
    let text = tf.fails(&["apply", "-auto-approve", "-no-color"]);
    assert!(text.contains("no-such-format"), "{text}");

    // Bad configuration is caught at plan time.
    tf.write(&format!(
        "{header}\nresource \"weir_compute_pool\" \"p\" {{\n  display_name = \"p\"\n  max_cfu = 5000\n}}\n"
    ));
    let text = tf.fails(&["plan", "-no-color"]);
    assert!(
        text.contains("Invalid max_cfu") && text.contains("5000"),
        "{text}"
    );
    tf.write(&format!(
        "{header}\nresource \"weir_compute_pool\" \"p\" {{\n  display_name = \"p\"\n  max_cfu = 2\n  colour = \"blue\"\n}}\n"
    ));
    let text = tf.fails(&["plan", "-no-color"]);
    assert!(
        text.contains("Unsupported argument") && text.contains("colour"),
        "{text}"
    );

    // A wrong secret and a wrong endpoint are diagnostics, not crashes.
    tf.write(&format!(
        "{header}\nresource \"weir_compute_pool\" \"p\" {{\n  display_name = \"p\"\n  max_cfu = 2\n}}\n"
    ));
    let mut wrong = Terraform::new(&tf.dir, &cli_config, &dev);
    wrong
        .env
        .push(("WEIR_API_SECRET".into(), "not-the-secret".into()));
    let text = wrong.fails(&["plan", "-no-color"]);
    assert!(text.contains("Weir refused the API key"), "{text}");
    assert!(
        !text.contains("panicked") && !text.contains("not-the-secret"),
        "{text}"
    );
    let mut nowhere = Terraform::new(&tf.dir, &cli_config, &dev);
    nowhere
        .env
        .push(("WEIR_URL".into(), "http://127.0.0.1:9".into()));
    let text = nowhere.fails(&["plan", "-no-color"]);
    assert!(
        text.contains("Cannot reach Weir at http://127.0.0.1:9"),
        "{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
}
