//! Flink's lexical rules on top of `sqlparser`.

use datafusion::sql::sqlparser::dialect::Dialect;

/// Flink SQL: identifiers are quoted with backticks and are case-sensitive,
/// strings use single quotes, and aggregates take `FILTER (WHERE ...)`.
#[derive(Debug, Default, Clone, Copy)]
pub struct FlinkDialect;

impl Dialect for FlinkDialect {
    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '`'
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        ch.is_alphabetic() || ch == '_'
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        ch.is_alphanumeric() || ch == '_'
    }

    fn supports_filter_during_aggregation(&self) -> bool {
        true
    }

    fn supports_group_by_expr(&self) -> bool {
        true
    }
}
