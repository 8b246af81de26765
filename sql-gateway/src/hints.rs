//! Flink's dynamic table options: `FROM t /*+ OPTIONS('k'='v') */`.
//!
//! Hints are comments to `sqlparser`, so they are taken out of the text before
//! parsing. Each is replaced by spaces of the same length so that positions in
//! later errors still point into the user's text.

use std::collections::BTreeMap;

use crate::error::{offset_to_position, SqlError};

/// Options per table name (the last part of the name before the hint).
pub type TableHints = BTreeMap<String, BTreeMap<String, String>>;

pub fn extract(sql: &str) -> Result<(String, TableHints), SqlError> {
    let mut out = sql.to_string();
    let mut hints = TableHints::new();
    let mut search = 0;
    while let Some(i) = sql[search..].find("/*+") {
        let start = search + i;
        let Some(len) = sql[start..].find("*/") else {
            return Err(SqlError::parse(
                "unterminated hint: '/*+' has no closing '*/'",
                Some(offset_to_position(sql, start)),
            ));
        };
        let end = start + len + 2;
        let body = sql[start + 3..end - 2].trim();
        let table = preceding_name(&sql[..start]);
        let Some(args) = body
            .strip_prefix("OPTIONS")
            .or_else(|| body.strip_prefix("options"))
            .map(str::trim)
            .and_then(|r| r.strip_prefix('('))
            .and_then(|r| r.strip_suffix(')'))
        else {
            return Err(SqlError::parse(
                format!("unsupported hint '{body}': Weir supports /*+ OPTIONS('key'='value', ...) */ after a table name"),
                Some(offset_to_position(sql, start)),
            ));
        };
        let Some(table) = table else {
            return Err(SqlError::parse(
                "an OPTIONS hint must follow a table name",
                Some(offset_to_position(sql, start)),
            ));
        };
        let opts = parse_options(args)
            .map_err(|m| SqlError::parse(m, Some(offset_to_position(sql, start))))?;
        hints.entry(table).or_default().extend(opts);
        out.replace_range(start..end, &" ".repeat(end - start));
        search = end;
    }
    Ok((out, hints))
}

fn preceding_name(before: &str) -> Option<String> {
    let t = before.trim_end();
    let name: String = t
        .chars()
        .rev()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '`' || *c == '$')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let name = name.trim_matches('`').to_string();
    (!name.is_empty()).then_some(name)
}

/// Parses `'k' = 'v', 'k2' = 'v2'`.
pub fn parse_options(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut opts = BTreeMap::new();
    let mut chars = text.chars().peekable();
    let mut strings = Vec::new();
    loop {
        while chars
            .peek()
            .is_some_and(|c| c.is_whitespace() || *c == ',' || *c == '=')
        {
            chars.next();
        }
        match chars.next() {
            None => break,
            Some('\'') => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err("unterminated string in OPTIONS".into()),
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            s.push('\'');
                        }
                        Some('\'') => break,
                        Some(c) => s.push(c),
                    }
                }
                strings.push(s);
            }
            Some(c) => return Err(format!("expected a quoted string in OPTIONS, found '{c}'")),
        }
    }
    if strings.len() % 2 != 0 {
        return Err("OPTIONS takes 'key' = 'value' pairs".into());
    }
    for kv in strings.chunks(2) {
        opts.insert(kv[0].clone(), kv[1].clone());
    }
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hint_is_removed_and_attached_to_the_table() {
        let sql = "SELECT * FROM orders /*+ OPTIONS('scan.startup.mode'='earliest-offset') */ WHERE a > 1";
        let (clean, hints) = extract(sql).unwrap();
        assert_eq!(clean.len(), sql.len());
        assert!(!clean.contains("OPTIONS"));
        assert_eq!(
            hints["orders"]["scan.startup.mode"],
            "earliest-offset".to_string()
        );
    }

    #[test]
    fn unknown_hint_is_an_error_with_position() {
        let err = extract("SELECT *\nFROM t /*+ BROADCAST(t) */").unwrap_err();
        assert_eq!(err.position(), Some((2, 8)));
    }
}
