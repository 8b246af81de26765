//! What Tab offers: Flink SQL keywords, and the functions, tables and
//! columns of the live catalog (loaded from `SHOW FUNCTIONS` and
//! `INFORMATION_SCHEMA.COLUMNS`, again after DDL and `USE`).

use std::sync::{Arc, RwLock};

/// Keywords of the statements Weir runs.
const KEYWORDS: &[&str] = &[
    "ADD",
    "ALL",
    "ALTER",
    "AND",
    "ARRAY",
    "AS",
    "ASC",
    "AVG",
    "BEGIN",
    "BETWEEN",
    "BIGINT",
    "BOOLEAN",
    "BY",
    "BYTES",
    "CASCADE",
    "CASE",
    "CAST",
    "CATALOG",
    "CATALOGS",
    "COLUMNS",
    "COMMENT",
    "COMPUTE",
    "CONSTRAINT",
    "COUNT",
    "CREATE",
    "CROSS",
    "CUMULATE",
    "CURRENT",
    "DATABASE",
    "DATABASES",
    "DATE",
    "DECIMAL",
    "DEFINE",
    "DESC",
    "DESCRIBE",
    "DISTINCT",
    "DISTRIBUTED",
    "DOUBLE",
    "DROP",
    "ELSE",
    "END",
    "ENFORCED",
    "EXCEPT",
    "EXECUTE",
    "EXISTS",
    "EXPLAIN",
    "FALSE",
    "FETCH",
    "FIRST",
    "FLOAT",
    "FOLLOWING",
    "FOR",
    "FROM",
    "FULL",
    "FUNCTIONS",
    "GROUP",
    "HAVING",
    "HOP",
    "IF",
    "IN",
    "INNER",
    "INSERT",
    "INT",
    "INTEGER",
    "INTERSECT",
    "INTERVAL",
    "INTO",
    "IS",
    "JOIN",
    "KEY",
    "LATERAL",
    "LEFT",
    "LIKE",
    "LIMIT",
    "MAP",
    "MATCH_RECOGNIZE",
    "MEASURES",
    "METADATA",
    "MINUS",
    "NOT",
    "NULL",
    "OF",
    "OFFSET",
    "ON",
    "OR",
    "ORDER",
    "OUTER",
    "OVER",
    "OVERWRITE",
    "PARTITION",
    "PATTERN",
    "PRECEDING",
    "PRIMARY",
    "RANGE",
    "RESET",
    "RIGHT",
    "ROW",
    "ROWS",
    "ROW_NUMBER",
    "SELECT",
    "SESSION",
    "SET",
    "SHOW",
    "SMALLINT",
    "STATEMENT",
    "STRING",
    "SYSTEM_TIME",
    "TABLE",
    "TABLES",
    "THEN",
    "TIME",
    "TIMESTAMP",
    "TIMESTAMP_LTZ",
    "TINYINT",
    "TO",
    "TRUE",
    "TUMBLE",
    "UNION",
    "UNNEST",
    "USE",
    "VALUES",
    "VARCHAR",
    "VIEW",
    "VIEWS",
    "VIRTUAL",
    "WATERMARK",
    "WHEN",
    "WHERE",
    "WINDOW",
    "WITH",
    "WITHIN",
];

/// The live catalog's names.
#[derive(Default, Debug)]
pub struct Vocabulary {
    pub functions: Vec<String>,
    pub tables: Vec<String>,
    /// (table, column)
    pub columns: Vec<(String, String)>,
    /// The newest reload written: an older one that ends later is dropped.
    pub generation: u64,
    /// The reloads started.
    pub started: u64,
}

pub type Shared = Arc<RwLock<Vocabulary>>;

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// The candidates for the word that ends at `pos` in `line`, and where the
/// replaced text starts.
pub fn complete(vocab: &Vocabulary, line: &str, pos: usize) -> (usize, Vec<String>) {
    let before = &line[..pos];
    let start = before
        .char_indices()
        .rev()
        .find(|(_, c)| !is_word(*c))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let partial = &before[start..];
    // `table.col`: that table's columns.
    if before[..start].ends_with('.') {
        let q_end = start - 1;
        let q_start = before[..q_end]
            .char_indices()
            .rev()
            .find(|(_, c)| !is_word(*c) && *c != '`')
            .map_or(0, |(i, c)| i + c.len_utf8());
        let qualifier = before[q_start..q_end].trim_matches('`');
        let mut out: Vec<String> = vocab
            .columns
            .iter()
            .filter(|(t, _)| t.eq_ignore_ascii_case(qualifier))
            .map(|(_, c)| c.clone())
            .filter(|c| starts_with_ci(c, partial))
            .collect();
        out.sort();
        out.dedup();
        return (start, out);
    }
    if partial.is_empty() {
        return (pos, vec![]);
    }
    let lower = partial.chars().all(|c| !c.is_uppercase());
    let mut out: Vec<String> = KEYWORDS
        .iter()
        .filter(|k| starts_with_ci(k, partial))
        .map(|k| {
            if lower {
                k.to_ascii_lowercase()
            } else {
                k.to_string()
            }
        })
        .collect();
    let names = vocab
        .functions
        .iter()
        .chain(&vocab.tables)
        .chain(vocab.columns.iter().map(|(_, c)| c));
    out.extend(names.filter(|n| starts_with_ci(n, partial)).cloned());
    out.sort();
    out.dedup();
    out.truncate(200);
    (start, out)
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> Vocabulary {
        Vocabulary {
            functions: vec!["TUMBLE".into(), "TO_TIMESTAMP".into(), "UPPER".into()],
            tables: vec!["orders".into(), "order_lines".into()],
            columns: vec![
                ("orders".into(), "amount".into()),
                ("orders".into(), "id".into()),
                ("order_lines".into(), "amount_due".into()),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn keywords_functions_tables_and_columns_complete_in_the_case_typed() {
        let v = vocab();
        let (start, c) = complete(&v, "SELECT * FROM ord", 17);
        assert_eq!(start, 14);
        // ORDER is a keyword, in the case typed.
        assert_eq!(c, ["order", "order_lines", "orders"]);
        let (_, c) = complete(&v, "sel", 3);
        assert_eq!(c, ["select"]);
        let (_, c) = complete(&v, "SELECT TO_T", 11);
        assert_eq!(c, ["TO_TIMESTAMP"]);
        let (_, c) = complete(&v, "SELECT amo", 10);
        assert_eq!(c, ["amount", "amount_due"]);
        assert!(complete(&v, "SELECT ", 7).1.is_empty());
    }

    #[test]
    fn a_qualified_name_completes_that_tables_columns() {
        let v = vocab();
        let (start, c) = complete(&v, "SELECT orders.", 14);
        assert_eq!(
            (start, c),
            (14, vec!["amount".to_string(), "id".to_string()])
        );
        let (start, c) = complete(&v, "SELECT `order_lines`.am", 23);
        assert_eq!((start, c), (21, vec!["amount_due".to_string()]));
    }
}
