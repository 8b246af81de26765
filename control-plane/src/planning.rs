//! Planning away from the API's threads.
//!
//! Parsing and planning recurse over the statement's trees, so they run on
//! a thread with the planner's large stack (see
//! [`weir_sql_gateway::limits`]); a panic there comes back as an error
//! naming it, and fails that one statement instead of the process.
//!
//! Planning the deepest expression Weir accepts takes a couple of seconds
//! of CPU (DataFusion's type coercion is quadratic in depth), so an
//! organization plans one statement at a time: one tenant sending many
//! such statements at once holds one core, not all of them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

/// One planning permit per organization.
#[derive(Debug, Default)]
pub(crate) struct PlanningGates {
    per_org: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl PlanningGates {
    fn of(&self, org: &str) -> Arc<Semaphore> {
        self.per_org
            .lock()
            .unwrap()
            .entry(org.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(1)))
            .clone()
    }
}

/// Runs `f` on a planner thread once `org` has no other planning under
/// way, and waits for it without blocking the runtime; `Err` carries the
/// text of a panic.
pub(crate) async fn isolated<T: Send + 'static>(
    gates: &PlanningGates,
    org: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let permit = gates
        .of(org)
        .acquire_owned()
        .await
        .map_err(|e| format!("the planning gate closed: {e}"))?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        weir_sql_gateway::limits::on_planner_stack(f)
    })
    .await
    .unwrap_or_else(|e| Err(format!("the planner thread failed: {e}")))
}
