//! Flink function names that DataFusion spells differently.
//!
//! Every other function is looked up under its own (lower-cased) name in
//! DataFusion's registry, which already agrees with Flink for `UPPER`,
//! `LOWER`, `TRIM`, `CONCAT`, `CONCAT_WS`, `REPLACE`, `SUBSTRING`, `POSITION`,
//! `LPAD`, `RPAD`, `INITCAP`, `REGEXP_REPLACE`, `ABS`, `MOD`, `POWER`, `SQRT`,
//! `ROUND`, `FLOOR`, `CEIL`, `COALESCE`, `NULLIF`, `MD5`, `SHA256`,
//! `TO_TIMESTAMP`, `DATE_TRUNC`, `NOW` and others.

/// `(flink name, datafusion name)`, lower case.
pub const FLINK_FUNCTION_MAPPING: &[(&str, &str)] = &[
    ("char_length", "character_length"),
    ("character_length", "character_length"),
    ("localtimestamp", "now"),
    ("current_timestamp", "now"),
    ("ln", "ln"),
    ("log10", "log10"),
    ("power", "power"),
    ("rand", "random"),
    ("uuid", "uuid"),
    ("regexp", "regexp_like"),
    ("ifnull", "coalesce"),
    ("to_timestamp_ltz", "to_timestamp_millis"),
    ("from_unixtime", "from_unixtime"),
    ("unix_timestamp", "to_unixtime"),
    ("truncate", "trunc"),
    ("instr", "strpos"),
    ("locate", "strpos"),
];

/// The DataFusion name for a Flink function name.
pub fn datafusion_name(flink: &str) -> String {
    let lower = flink.to_lowercase();
    FLINK_FUNCTION_MAPPING
        .iter()
        .find(|(f, _)| *f == lower)
        .map(|(_, d)| d.to_string())
        .unwrap_or(lower)
}
