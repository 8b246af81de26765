//! What a statement needs from its principal: to read every table it
//! reads, to write the one it writes, to manage the ones it creates, alters
//! or drops. Checked when the statement is created (a refusal names the
//! role and the resource), recorded, and checked again while it runs
//! ([`watch`]): a statement whose principal loses a binding fails rather
//! than silently keep reading.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use weir_api::Phase;
use weir_sql_gateway::{Analysis, CatalogContext, FlinkStatement};

use crate::authz::{Access, Crn, Permission};
use crate::scheduler::Scheduler;
use crate::ApiError;
use weir_catalog::Store;

/// The database of a `` `catalog`.`database`.`table` `` name.
use weir_sql_gateway::database_of;

fn topic_crn(ctx: &CatalogContext, database: &str, topic: &str) -> Crn {
    let cluster = ctx
        .cluster(database)
        .map(|c| c.id.as_str())
        .unwrap_or(database);
    Crn::topic(&ctx.org, &ctx.env_id, cluster, topic)
}

/// The permissions the statement's principal needs.
pub fn needs(ctx: &CatalogContext, analysis: &Analysis) -> Vec<(Permission, Crn)> {
    let mut out = vec![];
    match analysis {
        Analysis::Streaming { plan, create, .. } => {
            for s in plan.root.sources() {
                let db = database_of(&s.qualified_name).unwrap_or(&ctx.database);
                out.push((Permission::Read, topic_crn(ctx, db, &s.table.topic)));
            }
            for (table, qualified_name) in plan.sink.tables() {
                let db = database_of(qualified_name).unwrap_or(&ctx.database);
                out.push((Permission::Write, topic_crn(ctx, db, &table.topic)));
            }
            if let Some(def) = create {
                out.push((
                    Permission::Manage,
                    topic_crn(ctx, &ctx.database, &def.topic),
                ));
            }
        }
        Analysis::Metadata(stmt) => match stmt {
            FlinkStatement::CreateTable { def, name, .. } => {
                // `CREATE TABLE db.t` makes it on db's cluster.
                let text = name.to_string();
                let parts: Vec<&str> = text.split('.').map(|p| p.trim_matches('`')).collect();
                let db = match parts.as_slice() {
                    [.., db, _] => db,
                    _ => ctx.database.as_str(),
                };
                out.push((Permission::Manage, topic_crn(ctx, db, &def.topic)));
            }
            FlinkStatement::CreateView { name, .. } => {
                let text = name.to_string();
                let view = text
                    .rsplit('.')
                    .next()
                    .unwrap_or_default()
                    .trim_matches('`');
                out.push((Permission::Manage, topic_crn(ctx, &ctx.database, view)));
            }
            FlinkStatement::DropTable { name, .. }
            | FlinkStatement::DropView { name, .. }
            | FlinkStatement::AlterTableSet { name, .. }
            | FlinkStatement::AlterTable { name, .. } => {
                if let Ok((db, def)) = ctx.resolve_object(name) {
                    // A view has a name and no topic.
                    let topic = if def.topic.is_empty() {
                        &def.name
                    } else {
                        &def.topic
                    };
                    out.push((Permission::Manage, topic_crn(ctx, &db, topic)));
                }
            }
            _ => {}
        },
        Analysis::Explain(_) => {}
    }
    out.sort_by(|a, b| (a.1.as_str(), a.0 as u8).cmp(&(b.1.as_str(), b.0 as u8)));
    out.dedup();
    out
}

/// The access of a principal by id (`u-...`, `sa-...`), from its bindings.
pub async fn access_of(store: &Store, org: &str, principal: &str) -> Result<Access, ApiError> {
    let user = format!("User:{principal}");
    let bindings = store.list_role_bindings(org, Some(&user)).await?;
    Ok(Access::new(&user, &bindings, None))
}

/// `Ok` when `access` has every need; else the 403 of the first missing.
pub fn check(access: &Access, needs: &[(Permission, Crn)]) -> Result<(), ApiError> {
    for (p, crn) in needs {
        access.require(*p, crn)?;
    }
    Ok(())
}

fn encode(needs: &[(Permission, Crn)]) -> String {
    serde_json::to_string(
        &needs
            .iter()
            .map(|(p, c)| (p.as_str(), c.as_str()))
            .collect::<Vec<_>>(),
    )
    .expect("needs serialize")
}

pub fn decode(text: &str) -> Vec<(Permission, Crn)> {
    serde_json::from_str::<Vec<(String, String)>>(text)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(p, c)| Some((Permission::parse(&p)?, crate::authz::parse_pattern(&c)?)))
        .collect()
}

/// Records what a statement keeps needing while it runs.
pub async fn record(
    store: &Store,
    org: &str,
    env: &str,
    statement: &str,
    principal: &str,
    needs: &[(Permission, Crn)],
) -> Result<(), ApiError> {
    store
        .set_statement_access(org, env, statement, principal, &encode(needs))
        .await?;
    Ok(())
}

/// Checks every running statement's principal again every `every`, and
/// fails a statement whose principal lost what it needs.
pub async fn watch(store: Store, scheduler: Scheduler, every: Duration, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let running = match store.statements_to_resume().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "access check: cannot list statements");
                continue;
            }
        };
        for (org, env, name) in running {
            if let Err(e) = check_one(&store, &scheduler, &org, &env, &name).await {
                tracing::warn!(org, env, statement = name, error = %e.detail, "access check failed");
            }
        }
    }
}

async fn check_one(
    store: &Store,
    scheduler: &Scheduler,
    org: &str,
    env: &str,
    name: &str,
) -> Result<(), ApiError> {
    let Some((principal, needs)) = store.statement_access(org, env, name).await? else {
        return Ok(());
    };
    let access = access_of(store, org, &principal).await?;
    let Err(refused) = check(&access, &decode(&needs)) else {
        return Ok(());
    };
    let detail = format!(
        "the statement's principal lost access while it ran: {}",
        refused.detail
    );
    tracing::warn!(
        org,
        env,
        statement = name,
        detail,
        "statement failed: access removed"
    );
    scheduler.stop(org, env, name).await;
    store.add_exception(org, env, name, &detail).await?;
    store
        .update_statement_status(org, env, name, Phase::Failed.as_str(), &detail)
        .await?;
    Ok(())
}
