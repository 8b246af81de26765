/// Errors of a running statement.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("record at topic '{topic}' partition {partition} offset {offset} could not be decoded: {reason}")]
    BadRecord {
        topic: String,
        partition: i32,
        offset: i64,
        reason: String,
    },
    #[error("Kafka failed: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("expression evaluation failed: {0}")]
    Eval(#[from] datafusion::error::DataFusionError),
    #[error("Arrow failed: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("could not store progress: {0}")]
    Progress(String),
    #[error("{0}")]
    Plan(String),
    #[error("checkpoint failed: {0}")]
    Checkpoint(String),
    #[error("the exactly-once Kafka sink failed {0}")]
    Transaction(String),
    /// The statement passed its memory limit (`'sql.memory.limit'`).
    #[error("{0}")]
    MemoryLimit(String),
    /// A panic inside the statement: a bug in Weir, stopped at this one
    /// statement.
    #[error(
        "the statement crashed ({0}); this is a bug in Weir, and only this statement was stopped"
    )]
    Crashed(String),
}
