//! Topic discovery: every cluster's topics become tables within seconds.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use weir_catalog::{sync_schemas, sync_topics, KafkaAdmin, Store};

pub async fn run(store: Store, every: Duration, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let clusters = match store.all_clusters().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "topic sync: cannot list clusters");
                continue;
            }
        };
        for (org, env, cluster) in clusters {
            let admin = match KafkaAdmin::new(&cluster.connection()) {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "topic sync: bad cluster");
                    continue;
                }
            };
            match sync_topics(&store, &admin, &org, &env, &cluster.id).await {
                Ok(r) if !r.added.is_empty() || !r.removed.is_empty() => {
                    tracing::info!(org, env, cluster = cluster.name, added = ?r.added, removed = ?r.removed, "topics synced")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(org, env, cluster = cluster.name, error = %e, "topic sync failed")
                }
            }
            // Subjects of the environment's schema registry type the
            // discovered tables.
            match sync_schemas(&store, &org, &env, &cluster.id).await {
                Ok((changed, problems)) => {
                    if !changed.is_empty() {
                        tracing::info!(org, env, cluster = cluster.name, tables = ?changed, "tables typed from the schema registry");
                    }
                    for p in problems {
                        tracing::debug!(org, env, problem = p, "a subject has no table mapping");
                    }
                }
                Err(e) => {
                    tracing::warn!(org, env, cluster = cluster.name, error = %e, "schema sync failed")
                }
            }
        }
    }
}
