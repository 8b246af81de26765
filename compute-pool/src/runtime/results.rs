//! The results of a `SELECT`: a bounded changelog buffer read page by page.

use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::Notify;
use weir_api::ResultRow;

/// Rows wait here until a client reads them. When the buffer is full the
/// statement waits (backpressure) instead of dropping rows.
#[derive(Debug)]
pub struct ResultsBuffer {
    inner: Mutex<Inner>,
    space: Notify,
    /// Rows, and bytes (an estimate), the buffer holds before `push` waits.
    capacity: usize,
    capacity_bytes: usize,
    /// A bounded statement's changelog is applied here and only its final
    /// rows are readable, as inserts, once it completes: a bounded result
    /// is a table, not a changelog (as the managed service's clients
    /// expect: `is_bounded` implies `is_append_only`).
    materialized: Option<Mutex<Materialized>>,
    /// The tasks that write into it (a parallel `SELECT` has several), and
    /// those of them that are done: it is complete once they all are.
    parts: usize,
    done: Mutex<std::collections::HashSet<String>>,
}

/// The current rows of a changelog, in the order they first appeared.
#[derive(Debug, Default)]
struct Materialized {
    index: std::collections::HashMap<String, usize>,
    rows: Vec<(Vec<serde_json::Value>, usize)>,
    bytes: usize,
}

impl Materialized {
    fn apply(&mut self, r: ResultRow) {
        let key = serde_json::to_string(&r.row).expect("JSON values serialize");
        // +I and +U add a copy of the row; -U and -D take one away.
        let add = matches!(r.op, 0 | 2);
        match self.index.get(&key) {
            Some(&i) => {
                let n = &mut self.rows[i].1;
                *n = if add { *n + 1 } else { n.saturating_sub(1) };
            }
            None if add => {
                self.bytes += row_bytes(&r) + key.len();
                self.index.insert(key, self.rows.len());
                self.rows.push((r.row, 1));
            }
            None => {}
        }
    }
}

#[derive(Debug)]
struct Inner {
    /// Rows from `first` on; rows before it were read and acknowledged by a
    /// later page request.
    rows: std::collections::VecDeque<ResultRow>,
    /// An estimate of the memory `rows` hold (see [`row_bytes`]).
    bytes: usize,
    first: u64,
    complete: bool,
    /// No more rows are taken: the statement was stopped.
    closed: bool,
    last_read: Instant,
}

/// One page: the rows from `from` and the token of the next page (`None`
/// once the statement is complete and every row was read).
#[derive(Debug, Clone, PartialEq)]
pub struct ResultsPage {
    pub rows: Vec<ResultRow>,
    pub next: Option<u64>,
}

impl ResultsBuffer {
    /// A buffer that holds up to `capacity` rows and `capacity_bytes` (it
    /// takes a row when empty, however large).
    pub fn new(capacity: usize, capacity_bytes: usize) -> ResultsBuffer {
        ResultsBuffer {
            inner: Mutex::new(Inner {
                rows: Default::default(),
                bytes: 0,
                first: 0,
                complete: false,
                closed: false,
                last_read: Instant::now(),
            }),
            space: Notify::new(),
            capacity,
            capacity_bytes,
            materialized: None,
            parts: 1,
            done: Default::default(),
        }
    }

    /// The same buffer, written by `parts` tasks: it completes when each
    /// of them called [`ResultsBuffer::complete_part`].
    pub fn with_parts(self, parts: usize) -> ResultsBuffer {
        ResultsBuffer {
            parts: parts.max(1),
            ..self
        }
    }

    /// A buffer for a bounded statement's final result: the changelog
    /// pushed is applied, and the rows it leaves are readable, each as an
    /// insert, once the statement completes.
    pub fn final_result(capacity: usize, capacity_bytes: usize) -> ResultsBuffer {
        ResultsBuffer {
            materialized: Some(Mutex::new(Materialized::default())),
            ..ResultsBuffer::new(capacity, capacity_bytes)
        }
    }

    /// Appends rows, waiting while the buffer is full; once the buffer is
    /// closed, drops them and returns at once.
    pub async fn push(&self, rows: Vec<ResultRow>) {
        if let Some(m) = &self.materialized {
            let mut m = m.lock().unwrap();
            for r in rows {
                m.apply(r);
            }
            return;
        }
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let notified = self.space.notified();
            {
                let mut g = self.inner.lock().unwrap();
                if g.closed {
                    return;
                }
                while g.rows.len() < self.capacity
                    && (g.rows.is_empty() || g.bytes < self.capacity_bytes)
                {
                    match rows.next() {
                        Some(r) => {
                            g.bytes += row_bytes(&r);
                            g.rows.push_back(r)
                        }
                        None => break,
                    }
                }
            }
            if rows.peek().is_some() {
                notified.await;
            }
        }
    }

    /// Takes no more rows, and ends a `push` waiting for room: a stopped
    /// statement must not wait for a reader that may never come. What
    /// was pushed stays readable.
    pub fn close(&self) {
        self.inner.lock().unwrap().closed = true;
        self.space.notify_waiters();
    }

    /// Task `part` has written all its rows; once every part has, the
    /// buffer is complete. A part done twice (a task run again) counts once.
    pub fn complete_part(&self, part: &str) {
        let all = {
            let mut done = self.done.lock().unwrap();
            done.insert(part.to_string());
            done.len() >= self.parts
        };
        if all {
            self.complete();
        }
    }

    /// No more rows come, from any part.
    pub fn complete(&self) {
        let mut g = self.inner.lock().unwrap();
        if g.complete {
            return;
        }
        if let Some(m) = &self.materialized {
            let m = std::mem::take(&mut *m.lock().unwrap());
            for (row, n) in m.rows {
                for _ in 0..n {
                    let r = ResultRow {
                        op: 0,
                        row: row.clone(),
                    };
                    g.bytes += row_bytes(&r);
                    g.rows.push_back(r);
                }
            }
        }
        g.complete = true;
    }

    /// Reads up to `max` rows from token `from`; reading from `from`
    /// acknowledges (frees) every row before it.
    pub fn page(&self, from: u64, max: usize) -> ResultsPage {
        let mut g = self.inner.lock().unwrap();
        g.last_read = Instant::now();
        while g.first < from {
            let Some(r) = g.rows.pop_front() else { break };
            g.bytes -= row_bytes(&r);
            g.first += 1;
        }
        self.space.notify_waiters();
        let skip = from.saturating_sub(g.first) as usize;
        let rows: Vec<ResultRow> = g.rows.iter().skip(skip).take(max).cloned().collect();
        let end = from.max(g.first) + rows.len() as u64;
        let done = g.complete && end >= g.first + g.rows.len() as u64;
        ResultsPage {
            rows,
            next: if done { None } else { Some(end) },
        }
    }

    /// An estimate of the memory the unread rows hold.
    pub fn bytes(&self) -> usize {
        let held = self
            .materialized
            .as_ref()
            .map_or(0, |m| m.lock().unwrap().bytes);
        self.inner.lock().unwrap().bytes + held
    }

    /// How long since a client last asked for a page.
    pub fn idle_for(&self) -> std::time::Duration {
        self.inner.lock().unwrap().last_read.elapsed()
    }
}

/// An estimate of the heap a result row holds: each value's own size, and
/// its text or elements.
fn row_bytes(r: &ResultRow) -> usize {
    fn value(v: &serde_json::Value) -> usize {
        std::mem::size_of::<serde_json::Value>()
            + match v {
                serde_json::Value::String(s) => s.len(),
                serde_json::Value::Array(a) => a.iter().map(value).sum(),
                serde_json::Value::Object(o) => o.iter().map(|(k, v)| k.len() + value(v)).sum(),
                _ => 0,
            }
    }
    std::mem::size_of::<ResultRow>() + r.row.iter().map(value).sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: i64) -> ResultRow {
        ResultRow {
            op: 0,
            row: vec![serde_json::json!(i)],
        }
    }

    #[tokio::test]
    async fn pages_walk_the_rows_and_end_when_complete() {
        let b = ResultsBuffer::new(10, usize::MAX);
        b.push((0..5).map(row).collect()).await;
        let p = b.page(0, 3);
        assert_eq!(p.rows.len(), 3);
        assert_eq!(p.next, Some(3));
        let held = b.bytes();
        let p = b.page(3, 3);
        assert_eq!(p.rows, vec![row(3), row(4)]);
        // Reading from 3 frees rows 0 to 2.
        assert_eq!(b.bytes(), held / 5 * 2);
        assert_eq!(p.next, Some(5));
        b.complete();
        let p = b.page(5, 3);
        assert!(p.rows.is_empty());
        assert_eq!(p.next, None);
    }

    #[tokio::test]
    async fn a_buffer_of_several_tasks_completes_when_each_is_done() {
        let b = ResultsBuffer::new(10, usize::MAX).with_parts(2);
        b.push(vec![row(0)]).await;
        b.complete_part("s0-t0");
        // The same task done again (run anew after a move) counts once.
        b.complete_part("s0-t0");
        assert_eq!(b.page(0, 10).next, Some(1));
        b.push(vec![row(1)]).await;
        b.complete_part("s0-t1");
        let p = b.page(0, 10);
        assert_eq!(p.rows, vec![row(0), row(1)]);
        assert_eq!(p.next, None);
    }

    #[tokio::test]
    async fn a_buffer_full_of_bytes_waits_for_a_reader() {
        let b = std::sync::Arc::new(ResultsBuffer::new(1000, 1));
        let w = b.clone();
        let writer = tokio::spawn(async move { w.push((0..3).map(row).collect()).await });
        // One row at a time: each fills the byte budget on its own.
        let mut token = 0;
        let mut pages = vec![];
        while token < 3 {
            let p = b.page(token, 10);
            if !p.rows.is_empty() {
                pages.push(p.rows.len());
            }
            token = p.next.unwrap();
            tokio::task::yield_now().await;
        }
        writer.await.unwrap();
        assert!(pages.iter().all(|n| *n == 1), "{pages:?}");
    }

    #[tokio::test]
    async fn closing_ends_a_push_that_waits_for_room() {
        let b = std::sync::Arc::new(ResultsBuffer::new(2, usize::MAX));
        let w = b.clone();
        let writer = tokio::spawn(async move { w.push((0..5).map(row).collect()).await });
        while b.page(0, 10).rows.len() < 2 {
            tokio::task::yield_now().await;
        }
        assert!(!writer.is_finished());
        b.close();
        writer.await.unwrap();
        assert_eq!(b.page(0, 10).rows, vec![row(0), row(1)]);
    }

    #[tokio::test]
    async fn a_full_buffer_waits_for_a_reader() {
        let b = std::sync::Arc::new(ResultsBuffer::new(2, usize::MAX));
        let w = b.clone();
        let writer = tokio::spawn(async move { w.push((0..5).map(row).collect()).await });
        let mut seen = vec![];
        let mut token = 0;
        while seen.len() < 5 {
            let p = b.page(token, 10);
            token = p.next.unwrap();
            seen.extend(p.rows);
            tokio::task::yield_now().await;
        }
        writer.await.unwrap();
        assert_eq!(seen, (0..5).map(row).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_final_result_is_the_rows_its_changelog_leaves_as_inserts() {
        let b = ResultsBuffer::final_result(10, usize::MAX);
        let r = |op: u8, who: &str, n: &str| ResultRow {
            op,
            row: vec![serde_json::json!(who), serde_json::json!(n)],
        };
        b.push(vec![
            r(0, "a", "1"),
            r(0, "b", "1"),
            r(1, "a", "1"),
            r(2, "a", "2"),
        ])
        .await;
        b.push(vec![r(0, "c", "1"), r(3, "c", "1")]).await;
        let page = b.page(0, 10);
        assert!(page.rows.is_empty(), "nothing is readable before the end");
        assert_eq!(page.next, Some(0));
        b.complete();
        let page = b.page(0, 10);
        assert_eq!(page.rows, vec![r(0, "b", "1"), r(0, "a", "2")]);
        assert_eq!(page.next, None);
    }
}
