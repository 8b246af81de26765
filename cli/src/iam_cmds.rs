//! `weir environment ...` and `weir iam ...`: environments, service
//! accounts, API keys, role bindings, identity providers and pools, and the
//! audit log, through the same
//! REST API as every other client.

use serde_json::{json, Value};

use crate::client_cmds::Conn;

#[derive(clap::Subcommand)]
pub enum EnvironmentCmd {
    /// Create an environment.
    Create {
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// List the environments the caller may see.
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Delete an empty environment.
    Delete {
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(clap::Subcommand)]
pub enum LimitsCmd {
    /// The environment's and the organization's quotas: the value in
    /// force, how many exist, and the server's ceiling.
    Show {
        #[command(flatten)]
        conn: Conn,
    },
    /// Lower quotas (an organization admin's call): a number, at most the
    /// server's, or `default` for the server's own.
    Set {
        /// Statements in the environment.
        #[arg(long)]
        statements: Option<String>,
        /// Compute pools in the environment.
        #[arg(long)]
        compute_pools: Option<String>,
        /// API keys in the organization.
        #[arg(long)]
        api_keys: Option<String>,
        /// Service accounts in the organization.
        #[arg(long)]
        service_accounts: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
}

/// `N` → N, `default` → null (the server's).
fn limit_value(flag: &str, v: &str) -> anyhow::Result<Value> {
    if v.eq_ignore_ascii_case("default") {
        return Ok(Value::Null);
    }
    v.parse::<u64>()
        .map(Value::from)
        .map_err(|_| anyhow::anyhow!("--{flag} is a number or `default`, not '{v}'"))
}

pub async fn limits(cmd: LimitsCmd) -> anyhow::Result<()> {
    let (conn, env_patch, org_patch) = match cmd {
        LimitsCmd::Show { conn } => (conn, None, None),
        LimitsCmd::Set {
            statements,
            compute_pools,
            api_keys,
            service_accounts,
            conn,
        } => {
            let patch = |fields: [(&str, &Option<String>); 2]| -> anyhow::Result<Option<Value>> {
                let mut m = serde_json::Map::new();
                for (name, v) in fields {
                    if let Some(v) = v {
                        m.insert(name.to_string(), limit_value(&name.replace('_', "-"), v)?);
                    }
                }
                Ok((!m.is_empty()).then_some(Value::Object(m)))
            };
            let env = patch([
                ("statements", &statements),
                ("compute_pools", &compute_pools),
            ])?;
            let org = patch([
                ("api_keys", &api_keys),
                ("service_accounts", &service_accounts),
            ])?;
            if env.is_none() && org.is_none() {
                anyhow::bail!("name a quota to set, e.g. --statements 100");
            }
            (conn, env, org)
        }
    };
    let client = conn.client()?;
    let env_path = format!("/weir/v1/environments/{}/limits", client.env());
    let org_path = "/weir/v1/organization/limits";
    let env = match env_patch {
        Some(p) => client.json("PATCH", &env_path, Some(&p)).await?,
        None => client.json("GET", &env_path, None).await?,
    };
    let org = match org_patch {
        Some(p) => client.json("PATCH", org_path, Some(&p)).await?,
        None => client.json("GET", org_path, None).await?,
    };
    let both = json!({"environment": env, "organization": org});
    conn.print(&both, || {
        println!("QUOTA               LIMIT    USED  SERVER  SET BY");
        for v in [&env, &org] {
            for (name, q) in v["limits"].as_object().into_iter().flatten() {
                println!(
                    "{name:<18} {:>6} {:>7} {:>7}  {}",
                    q["limit"],
                    q["used"],
                    q["server_limit"],
                    if q["set_by_organization"] == json!(true) {
                        "organization"
                    } else {
                        "server"
                    }
                );
            }
        }
    })
}

#[derive(clap::Subcommand)]
pub enum KafkaClusterCmd {
    /// Register a cluster; it must answer first.
    Create {
        /// The SQL database its topics' tables are in.
        name: String,
        /// host:port[,host:port...] of its brokers.
        #[arg(long)]
        bootstrap: String,
        /// SASL/PLAIN user name, when its brokers ask for one.
        #[arg(long, requires = "sasl_password")]
        sasl_username: Option<String>,
        /// Its password (from the environment, so that it stays out of
        /// the shell's history and `ps`).
        #[arg(long, env = "WEIR_KAFKA_SASL_PASSWORD", hide_env_values = true)]
        sasl_password: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Forget a cluster and its tables (its topics stay in Kafka).
    Delete {
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(clap::Subcommand)]
pub enum IamCmd {
    /// Service accounts: principals for statements and automation.
    #[command(subcommand)]
    ServiceAccount(ServiceAccountCmd),
    /// API keys.
    #[command(subcommand)]
    ApiKey(ApiKeyCmd),
    /// Role bindings: a role for a principal on a resource pattern.
    #[command(subcommand)]
    RoleBinding(RoleBindingCmd),
    /// OAuth identity providers: issuers whose tokens Weir accepts.
    #[command(subcommand)]
    IdentityProvider(IdentityProviderCmd),
    /// Identity pools: which of a provider's tokens become the principal
    /// `User:pool-...`.
    #[command(subcommand)]
    IdentityPool(IdentityPoolCmd),
    /// Mutating and denied calls (organization admins).
    AuditLog {
        /// Since this many minutes ago (default 60).
        #[arg(long, default_value_t = 60)]
        minutes: i64,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(clap::Subcommand)]
pub enum ServiceAccountCmd {
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        conn: Conn,
    },
    List {
        #[command(flatten)]
        conn: Conn,
    },
    Delete {
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(clap::Subcommand)]
pub enum ApiKeyCmd {
    /// Make a key; its secret is printed once.
    Create {
        /// Owned by this service account (default: the caller).
        #[arg(long)]
        service_account: Option<String>,
        /// Limited to this environment (default: the owner's reach).
        #[arg(long)]
        environment: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        conn: Conn,
    },
    List {
        #[command(flatten)]
        conn: Conn,
    },
    Delete {
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(clap::Subcommand)]
pub enum RoleBindingCmd {
    Create {
        /// `User:<id>` (a user u-..., a service account sa-... or an
        /// identity pool pool-...).
        #[arg(long)]
        principal: String,
        /// OrganizationAdmin, EnvironmentAdmin, FlinkAdmin, FlinkDeveloper,
        /// DeveloperRead, DeveloperWrite, DeveloperManage, ResourceOwner or
        /// ReadOnly.
        #[arg(long)]
        role: String,
        /// A resource name pattern, e.g.
        /// crn://weir/organization=o/environment=e/kafka=c/topic=orders-*
        #[arg(long)]
        resource: String,
        #[command(flatten)]
        conn: Conn,
    },
    List {
        #[arg(long)]
        principal: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    Delete {
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(clap::Subcommand)]
pub enum IdentityProviderCmd {
    /// Register an issuer; its JWKS URL is read once to check it.
    Create {
        name: String,
        /// The `iss` of its tokens.
        #[arg(long)]
        issuer: String,
        /// Where it publishes its signing keys.
        #[arg(long)]
        jwks_uri: String,
        /// The `aud` its tokens for Weir carry.
        #[arg(long)]
        audience: String,
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        conn: Conn,
    },
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Delete a provider with its pools and their role bindings.
    Delete {
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(clap::Subcommand)]
pub enum IdentityPoolCmd {
    Create {
        name: String,
        /// The identity provider (op-...).
        #[arg(long)]
        provider: String,
        /// Which tokens it admits, e.g. `"flink" in claims.groups` (`true`:
        /// all of the provider's).
        #[arg(long)]
        filter: String,
        /// The claim that names who calls, for the audit log.
        #[arg(long, default_value = "claims.sub")]
        identity_claim: String,
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        conn: Conn,
    },
    List {
        #[arg(long)]
        provider: String,
        #[command(flatten)]
        conn: Conn,
    },
    Delete {
        id: String,
        #[arg(long)]
        provider: String,
        #[command(flatten)]
        conn: Conn,
    },
}

/// Prints a list's `data` as lines of the given fields (or the whole answer
/// as JSON/YAML).
fn print_list(conn: &Conn, v: &Value, fields: &[&str]) -> anyhow::Result<()> {
    conn.print(v, || {
        for item in v["data"].as_array().into_iter().flatten() {
            let cells: Vec<String> = fields
                .iter()
                .map(|f| {
                    let mut x = item;
                    for part in f.split('.') {
                        x = &x[part];
                    }
                    match x {
                        Value::String(s) => s.clone(),
                        Value::Null => "-".into(),
                        other => other.to_string(),
                    }
                })
                .collect();
            println!("{}", cells.join("  "));
        }
    })
}

fn print_one(conn: &Conn, v: &Value, line: String) -> anyhow::Result<()> {
    conn.print(v, || println!("{line}"))
}

pub async fn environment(cmd: EnvironmentCmd) -> anyhow::Result<()> {
    match cmd {
        EnvironmentCmd::Create { name, conn } => {
            let v = conn
                .client()?
                .json(
                    "POST",
                    "/org/v2/environments",
                    Some(&json!({"display_name": name})),
                )
                .await?;
            print_one(
                &conn,
                &v,
                format!("{}  {}", v["id"].as_str().unwrap_or_default(), name),
            )
        }
        EnvironmentCmd::List { conn } => {
            let v = conn
                .client()?
                .json("GET", "/org/v2/environments", None)
                .await?;
            print_list(&conn, &v, &["id", "display_name"])
        }
        EnvironmentCmd::Delete { id, conn } => {
            conn.client()?
                .json("DELETE", &format!("/org/v2/environments/{id}"), None)
                .await?;
            println!("deleted {id}");
            Ok(())
        }
    }
}

pub async fn kafka_cluster(cmd: KafkaClusterCmd) -> anyhow::Result<()> {
    match cmd {
        KafkaClusterCmd::Create {
            name,
            bootstrap,
            sasl_username,
            sasl_password,
            conn,
        } => {
            let client = conn.client()?;
            let v = client
                .json(
                    "POST",
                    "/cmk/v2/clusters",
                    Some(&{
                        let mut spec = json!({"display_name": name, "kafka_bootstrap_endpoint": bootstrap,
                                              "environment": {"id": client.env()}});
                        if let (Some(u), Some(p)) = (&sasl_username, &sasl_password) {
                            spec["credentials"] =
                                json!({"mechanism": "PLAIN", "username": u, "password": p});
                        }
                        json!({ "spec": spec })
                    }),
                )
                .await?;
            print_one(
                &conn,
                &v,
                format!(
                    "{}  {name}  {bootstrap}",
                    v["id"].as_str().unwrap_or_default()
                ),
            )
        }
        KafkaClusterCmd::List { conn } => {
            let client = conn.client()?;
            let v = client
                .json(
                    "GET",
                    &format!("/cmk/v2/clusters?environment={}", client.env()),
                    None,
                )
                .await?;
            print_list(
                &conn,
                &v,
                &["id", "spec.display_name", "spec.kafka_bootstrap_endpoint"],
            )
        }
        KafkaClusterCmd::Delete { id, conn } => {
            let client = conn.client()?;
            client
                .json(
                    "DELETE",
                    &format!("/cmk/v2/clusters/{id}?environment={}", client.env()),
                    None,
                )
                .await?;
            println!("deleted {id}");
            Ok(())
        }
    }
}

pub async fn iam(cmd: IamCmd) -> anyhow::Result<()> {
    match cmd {
        IamCmd::ServiceAccount(c) => match c {
            ServiceAccountCmd::Create {
                name,
                description,
                conn,
            } => {
                let v = conn
                    .client()?
                    .json(
                        "POST",
                        "/iam/v2/service-accounts",
                        Some(&json!({"display_name": name, "description": description})),
                    )
                    .await?;
                print_one(
                    &conn,
                    &v,
                    format!("{}  {}", v["id"].as_str().unwrap_or_default(), name),
                )
            }
            ServiceAccountCmd::List { conn } => {
                let v = conn
                    .client()?
                    .json("GET", "/iam/v2/service-accounts", None)
                    .await?;
                print_list(&conn, &v, &["id", "display_name", "description"])
            }
            ServiceAccountCmd::Delete { id, conn } => {
                conn.client()?
                    .json("DELETE", &format!("/iam/v2/service-accounts/{id}"), None)
                    .await?;
                println!("deleted {id}");
                Ok(())
            }
        },
        IamCmd::ApiKey(c) => match c {
            ApiKeyCmd::Create {
                service_account,
                environment,
                description,
                conn,
            } => {
                let mut spec = json!({"description": description});
                if let Some(sa) = service_account {
                    spec["owner"] = json!({"id": sa});
                }
                if let Some(env) = environment {
                    spec["resource"] = json!({"id": env});
                }
                let v = conn
                    .client()?
                    .json("POST", "/iam/v2/api-keys", Some(&json!({"spec": spec})))
                    .await?;
                print_one(
                    &conn,
                    &v,
                    format!(
                        "key     {}\nsecret  {}\n(the secret is shown once; keep it now)",
                        v["id"].as_str().unwrap_or_default(),
                        v["spec"]["secret"].as_str().unwrap_or_default()
                    ),
                )
            }
            ApiKeyCmd::List { conn } => {
                let v = conn.client()?.json("GET", "/iam/v2/api-keys", None).await?;
                print_list(
                    &conn,
                    &v,
                    &[
                        "id",
                        "spec.owner.id",
                        "spec.resource.id",
                        "spec.description",
                    ],
                )
            }
            ApiKeyCmd::Delete { id, conn } => {
                conn.client()?
                    .json("DELETE", &format!("/iam/v2/api-keys/{id}"), None)
                    .await?;
                println!("deleted {id}");
                Ok(())
            }
        },
        IamCmd::RoleBinding(c) => match c {
            RoleBindingCmd::Create {
                principal,
                role,
                resource,
                conn,
            } => {
                let v = conn
                    .client()?
                    .json(
                        "POST",
                        "/iam/v2/role-bindings",
                        Some(&json!({"principal": principal, "role_name": role, "crn_pattern": resource})),
                    )
                    .await?;
                print_one(
                    &conn,
                    &v,
                    format!(
                        "{}  {principal}  {role}  {resource}",
                        v["id"].as_str().unwrap_or_default()
                    ),
                )
            }
            RoleBindingCmd::List { principal, conn } => {
                let path = match principal {
                    Some(p) => format!("/iam/v2/role-bindings?principal={}", p.replace(':', "%3A")),
                    None => "/iam/v2/role-bindings".into(),
                };
                let v = conn.client()?.json("GET", &path, None).await?;
                print_list(&conn, &v, &["id", "principal", "role_name", "crn_pattern"])
            }
            RoleBindingCmd::Delete { id, conn } => {
                conn.client()?
                    .json("DELETE", &format!("/iam/v2/role-bindings/{id}"), None)
                    .await?;
                println!("deleted {id}");
                Ok(())
            }
        },
        IamCmd::IdentityProvider(c) => {
            match c {
                IdentityProviderCmd::Create {
                    name,
                    issuer,
                    jwks_uri,
                    audience,
                    description,
                    conn,
                } => {
                    let v = conn
                    .client()?
                    .json(
                        "POST",
                        "/iam/v2/identity-providers",
                        Some(&json!({"display_name": name, "issuer": issuer, "jwks_uri": jwks_uri,
                                     "audience": audience, "description": description})),
                    )
                    .await?;
                    print_one(
                        &conn,
                        &v,
                        format!("{}  {name}  {issuer}", v["id"].as_str().unwrap_or_default()),
                    )
                }
                IdentityProviderCmd::List { conn } => {
                    let v = conn
                        .client()?
                        .json("GET", "/iam/v2/identity-providers", None)
                        .await?;
                    print_list(&conn, &v, &["id", "display_name", "issuer", "audience"])
                }
                IdentityProviderCmd::Delete { id, conn } => {
                    conn.client()?
                        .json("DELETE", &format!("/iam/v2/identity-providers/{id}"), None)
                        .await?;
                    println!("deleted {id}");
                    Ok(())
                }
            }
        }
        IamCmd::IdentityPool(c) => match c {
            IdentityPoolCmd::Create {
                name,
                provider,
                filter,
                identity_claim,
                description,
                conn,
            } => {
                let v = conn
                    .client()?
                    .json(
                        "POST",
                        &format!("/iam/v2/identity-providers/{provider}/identity-pools"),
                        Some(&json!({"display_name": name, "filter": filter,
                                     "identity_claim": identity_claim, "description": description})),
                    )
                    .await?;
                print_one(
                    &conn,
                    &v,
                    format!(
                        "{}  {name}  (bind roles to {})",
                        v["id"].as_str().unwrap_or_default(),
                        v["principal"].as_str().unwrap_or_default()
                    ),
                )
            }
            IdentityPoolCmd::List { provider, conn } => {
                let v = conn
                    .client()?
                    .json(
                        "GET",
                        &format!("/iam/v2/identity-providers/{provider}/identity-pools"),
                        None,
                    )
                    .await?;
                print_list(
                    &conn,
                    &v,
                    &["id", "display_name", "identity_claim", "filter"],
                )
            }
            IdentityPoolCmd::Delete { id, provider, conn } => {
                conn.client()?
                    .json(
                        "DELETE",
                        &format!("/iam/v2/identity-providers/{provider}/identity-pools/{id}"),
                        None,
                    )
                    .await?;
                println!("deleted {id}");
                Ok(())
            }
        },
        IamCmd::AuditLog { minutes, conn } => {
            let since = chrono_free_now_ms() - minutes * 60_000;
            let v = conn
                .client()?
                .json("GET", &format!("/weir/v1/audit-log?since={since}"), None)
                .await?;
            print_list(
                &conn,
                &v,
                &["time", "principal", "method", "path", "status", "result"],
            )
        }
    }
}

fn chrono_free_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
