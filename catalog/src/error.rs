/// Errors of the catalog and its store.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{what} '{name}' already exists")]
    AlreadyExists { what: &'static str, name: String },
    #[error("{what} '{name}' does not exist")]
    NotFound { what: &'static str, name: String },
    #[error("the resource changed since it was read (resource_version {expected} is stale, current is {current}); read it again and retry")]
    StaleVersion { expected: i64, current: i64 },
    #[error("the metadata database failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the metadata database could not be migrated: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL '{0}': use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error("the Kafka cluster failed: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("Kafka refused to {action} topic '{topic}': {reason}")]
    Topic {
        action: &'static str,
        topic: String,
        reason: String,
    },
    #[error("the schema registry at {url} failed: {reason}")]
    Registry { url: String, reason: String },
    #[error("a stored record is corrupt: {0}")]
    Corrupt(String),
    #[error("this server keeps no credentials: start it with a secret key (weir server --secret-key-file PATH; weir dev keeps one in its data directory)")]
    NoSecretKey,
    #[error("unsupported type: {0}")]
    UnsupportedType(String),
    #[error("'{0}' is not a time zone: use an IANA name such as 'Europe/Amsterdam', 'UTC', or an offset such as '+08:00' or 'GMT-05:00'")]
    InvalidTimeZone(String),
}
