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
    capacity: usize,
}

#[derive(Debug)]
struct Inner {
    /// Rows from `first` on; rows before it were read and acknowledged by a
    /// later page request.
    rows: std::collections::VecDeque<ResultRow>,
    first: u64,
    complete: bool,
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
    pub fn new(capacity: usize) -> ResultsBuffer {
        ResultsBuffer {
            inner: Mutex::new(Inner {
                rows: Default::default(),
                first: 0,
                complete: false,
                last_read: Instant::now(),
            }),
            space: Notify::new(),
            capacity,
        }
    }

    /// Appends rows, waiting while the buffer is full.
    pub async fn push(&self, rows: Vec<ResultRow>) {
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let notified = self.space.notified();
            {
                let mut g = self.inner.lock().unwrap();
                while g.rows.len() < self.capacity {
                    match rows.next() {
                        Some(r) => g.rows.push_back(r),
                        None => break,
                    }
                }
            }
            if rows.peek().is_some() {
                notified.await;
            }
        }
    }

    pub fn complete(&self) {
        self.inner.lock().unwrap().complete = true;
    }

    /// Reads up to `max` rows from token `from`; reading from `from`
    /// acknowledges (frees) every row before it.
    pub fn page(&self, from: u64, max: usize) -> ResultsPage {
        let mut g = self.inner.lock().unwrap();
        g.last_read = Instant::now();
        while g.first < from && !g.rows.is_empty() {
            g.rows.pop_front();
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

    /// How long since a client last asked for a page.
    pub fn idle_for(&self) -> std::time::Duration {
        self.inner.lock().unwrap().last_read.elapsed()
    }
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
        let b = ResultsBuffer::new(10);
        b.push((0..5).map(row).collect()).await;
        let p = b.page(0, 3);
        assert_eq!(p.rows.len(), 3);
        assert_eq!(p.next, Some(3));
        let p = b.page(3, 3);
        assert_eq!(p.rows, vec![row(3), row(4)]);
        assert_eq!(p.next, Some(5));
        b.complete();
        let p = b.page(5, 3);
        assert!(p.rows.is_empty());
        assert_eq!(p.next, None);
    }

    #[tokio::test]
    async fn a_full_buffer_waits_for_a_reader() {
        let b = std::sync::Arc::new(ResultsBuffer::new(2));
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
}
