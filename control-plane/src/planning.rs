//! Planning away from the API's threads.
//!
//! Parsing and planning recurse over the statement's trees, so they run on
//! a thread with the planner's large stack (see
//! [`weir_sql_gateway::limits`]); a panic there comes back as an error
//! naming it, and fails that one statement instead of the process.

/// Runs `f` on a planner thread and waits for it without blocking the
/// runtime; `Err` carries the text of a panic.
pub(crate) async fn isolated<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(move || weir_sql_gateway::limits::on_planner_stack(f))
        .await
        .unwrap_or_else(|e| Err(format!("the planner thread failed: {e}")))
}
