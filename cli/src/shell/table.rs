//! A query's changelog applied to a table, and the table as text.

use std::collections::VecDeque;

use serde_json::Value;

/// The most rows a table keeps (as Flink's SQL client's
/// `sql-client.execution.max-table-result.rows`): past it the oldest go,
/// so that a query over a large topic cannot take the shell's memory.
pub const MAX_ROWS: usize = 100_000;

/// The widest a cell is shown; longer values end in `…`.
const MAX_CELL: usize = 40;
/// The changelog's row kinds by `op`.
pub const OPS: [&str; 4] = ["+I", "-U", "+U", "-D"];

/// The rows a changelog has produced so far.
#[derive(Debug, Default)]
pub struct ResultTable {
    pub columns: Vec<String>,
    /// The upsert key's column positions, when the statement has one.
    key: Option<Vec<usize>>,
    rows: VecDeque<Vec<Value>>,
    /// Rows dropped, oldest first, to stay within the cap.
    pub dropped: u64,
    cap: usize,
    /// Where the last `-U` took its row from, so that the `+U` after it
    /// keeps the row's place.
    retracted_at: Option<usize>,
    pub changes: u64,
}

impl ResultTable {
    pub fn new(columns: Vec<String>, key: Option<Vec<usize>>) -> ResultTable {
        ResultTable::with_cap(columns, key, MAX_ROWS)
    }

    pub fn with_cap(columns: Vec<String>, key: Option<Vec<usize>>, cap: usize) -> ResultTable {
        ResultTable {
            columns,
            key: key.filter(|k| !k.is_empty()),
            cap: cap.max(1),
            ..Default::default()
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    fn position(&self, row: &[Value]) -> Option<usize> {
        match &self.key {
            Some(key) => self
                .rows
                .iter()
                .position(|r| key.iter().all(|&k| r.get(k) == row.get(k))),
            None => self.rows.iter().position(|r| r == row),
        }
    }

    /// Applies one change: `op` 0 = +I, 1 = -U, 2 = +U, 3 = -D.
    pub fn apply(&mut self, op: u8, row: Vec<Value>) {
        self.changes += 1;
        match op {
            0 | 2 => {
                let at = if self.key.is_some() {
                    self.position(&row)
                } else {
                    None
                };
                match (at, self.retracted_at.take()) {
                    (Some(i), _) => self.rows[i] = row,
                    (None, Some(i)) if op == 2 && i <= self.rows.len() => self.rows.insert(i, row),
                    _ => self.rows.push_back(row),
                }
                while self.rows.len() > self.cap {
                    self.rows.pop_front();
                    self.dropped += 1;
                }
            }
            _ => {
                if let Some(i) = self.position(&row) {
                    self.rows.remove(i);
                    self.retracted_at = (op == 1).then_some(i);
                }
            }
        }
    }

    /// The table as lines at most `width` wide, with at most `max_rows`
    /// rows (a last line says how many more there are).
    pub fn render(&self, width: usize, max_rows: usize) -> Vec<String> {
        let shown = self.rows.len().min(max_rows);
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .take(shown)
            .map(|r| r.iter().map(cell).collect())
            .collect();
        let mut widths: Vec<usize> = self.columns.iter().map(|c| c.chars().count()).collect();
        for r in &cells {
            for (i, c) in r.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(c.chars().count());
                }
            }
        }
        let line = |values: &[String]| {
            let parts: Vec<String> = values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let w = widths.get(i).copied().unwrap_or(0);
                    format!("{v:<w$}")
                })
                .collect();
            clip(&format!(" {} ", parts.join(" | ")), width)
        };
        let mut out = vec![line(&self.columns)];
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        out.push(clip(&format!("-{}-", rule.join("-+-")), width));
        for r in &cells {
            out.push(line(r));
        }
        if self.rows.len() > shown {
            out.push(format!("(and {} more rows)", self.rows.len() - shown));
        }
        out
    }
}

/// One changelog row as text: `+I | 1 | abc`.
pub fn changelog_line(op: u8, row: &[Value], width: usize) -> String {
    let values: Vec<String> = row.iter().map(cell).collect();
    clip(
        &format!(
            "{} | {}",
            OPS.get(op as usize).unwrap_or(&"?"),
            values.join(" | ")
        ),
        width,
    )
}

/// A value as a cell: strings bare, `NULL`, at most [`MAX_CELL`] wide.
pub fn cell(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Null => "NULL".into(),
        v => v.to_string(),
    };
    let s = s.replace(['\n', '\r', '\t'], " ");
    if s.chars().count() > MAX_CELL {
        let mut t: String = s.chars().take(MAX_CELL - 1).collect();
        t.push('…');
        t
    } else {
        s
    }
}

fn clip(s: &str, width: usize) -> String {
    if s.chars().count() > width && width > 1 {
        let mut t: String = s.chars().take(width - 1).collect();
        t.push('…');
        t
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: &[Value]) -> Vec<Value> {
        v.to_vec()
    }

    #[test]
    fn an_update_keeps_its_rows_place_and_a_delete_removes_it() {
        let mut t = ResultTable::new(vec!["k".into(), "n".into()], None);
        t.apply(0, row(&[json!("a"), json!(1)]));
        t.apply(0, row(&[json!("b"), json!(1)]));
        t.apply(1, row(&[json!("a"), json!(1)]));
        t.apply(2, row(&[json!("a"), json!(2)]));
        assert_eq!(
            t.rows,
            [row(&[json!("a"), json!(2)]), row(&[json!("b"), json!(1)])]
        );
        t.apply(3, row(&[json!("b"), json!(1)]));
        assert_eq!(t.len(), 1);
        assert_eq!(t.changes, 5);
    }

    #[test]
    fn past_the_cap_the_oldest_rows_go() {
        let mut t = ResultTable::with_cap(vec!["n".into()], None, 3);
        for i in 0..5 {
            t.apply(0, row(&[json!(i)]));
        }
        assert_eq!(t.len(), 3);
        assert_eq!(t.dropped, 2);
        assert_eq!(t.rows.front(), Some(&row(&[json!(2)])));
    }

    #[test]
    fn an_upsert_key_replaces_the_row_with_the_same_key() {
        let mut t = ResultTable::new(vec!["k".into(), "n".into()], Some(vec![0]));
        t.apply(0, row(&[json!("a"), json!(1)]));
        t.apply(2, row(&[json!("a"), json!(5)]));
        t.apply(0, row(&[json!("b"), json!(1)]));
        assert_eq!(
            t.rows,
            [row(&[json!("a"), json!(5)]), row(&[json!("b"), json!(1)])]
        );
        t.apply(3, row(&[json!("a"), Value::Null]));
        assert_eq!(t.rows, [row(&[json!("b"), json!(1)])]);
    }

    #[test]
    fn the_table_is_aligned_clipped_and_says_what_it_leaves_out() {
        let mut t = ResultTable::new(vec!["id".into(), "name".into()], None);
        for i in 0..5 {
            t.apply(0, row(&[json!(i), json!(format!("n{i}"))]));
        }
        t.apply(0, row(&[json!(10), Value::Null]));
        let lines = t.render(80, 3);
        assert_eq!(lines[0], " id | name ");
        assert_eq!(lines[1], "----+------");
        assert_eq!(lines[2], " 0  | n0   ");
        assert_eq!(lines.last().unwrap(), "(and 3 more rows)");
        let narrow = t.render(6, 10);
        assert!(narrow.iter().all(|l| l.chars().count() <= 6), "{narrow:?}");
        assert_eq!(cell(&json!("x".repeat(50))).chars().count(), MAX_CELL);
        assert_eq!(
            changelog_line(1, &[json!(1), Value::Null], 80),
            "-U | 1 | NULL"
        );
    }
}
