//! Bounds on what one statement may ask of the planner, so that no SQL a
//! tenant sends can take the process down.
//!
//! Parsing, name resolution, DataFusion's planner and optimizer all recurse
//! over expression trees; a 20,000-term `1 + 1 + ...` is a tree 20,000 deep
//! and overflows an ordinary thread's stack, which aborts the whole
//! process. Two things keep that from happening:
//! - [`on_planner_stack`] runs planning on a thread whose stack is sized for
//!   the deepest tree Weir accepts (and catches a panic, which then fails
//!   that one statement);
//! - [`check_depth`] refuses, with the limit named, an expression nested
//!   deeper than [`MAX_EXPRESSION_DEPTH`], before anything else walks it.
//!
//! [`MAX_WINDOWS_PER_ROW`] bounds `HOP` and `CUMULATE` windows, whose cost
//! per row is their size over their slide.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{Expr, Spanned, Visit, Visitor};

use crate::error::SqlError;

/// The deepest expression Weir plans: far beyond what people write (a
/// 1,000-term `a + b + ...` or `CASE` chain), well within the planner's
/// stack.
pub const MAX_EXPRESSION_DEPTH: usize = 1_000;

/// The most binary operators (`+`, `=`, `AND`, ...) one statement may
/// have. A chain of them is a tree as deep as it is long, built by the
/// parser without recursion but walked (and dropped) recursively: past
/// about 50,000 levels that overflows the planner's stack. Far beyond what
/// people write; checked on the tokens, before the tree exists.
pub const MAX_OPERATORS: usize = 20_000;

/// The stack of the thread that parses and plans a statement. Only the
/// pages a plan touches are ever committed.
pub const PLANNER_STACK_BYTES: usize = 256 << 20;

/// The most windows a `HOP` or `CUMULATE` window may put one row in (its
/// size over its slide or step): one day in one-minute slides is 1,440.
pub const MAX_WINDOWS_PER_ROW: i64 = 10_000;

/// The most copies of a row a `HOP` or `CUMULATE` window used without
/// aggregation may make (each copy is a row the next operator receives).
pub const MAX_EXPANDED_WINDOWS_PER_ROW: i64 = 100;

/// The most `INSERT`s one statement set holds, and the most columns its
/// tables have in all: every `INSERT`'s rows carry every table's columns
/// (see `SinkSpec::Tables`), so the plan grows with their product.
pub const MAX_STATEMENT_SET_INSERTS: usize = 64;
pub const MAX_STATEMENT_SET_COLUMNS: usize = 2_048;

/// Refuses an expression nested deeper than [`MAX_EXPRESSION_DEPTH`], at
/// the position of the part that is too deep.
pub fn check_depth<V: Visit>(node: &V) -> Result<(), SqlError> {
    struct Depth {
        now: usize,
        /// The first expression found below the limit.
        too_deep: Option<(u64, u64)>,
    }
    impl Visitor for Depth {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            self.now += 1;
            if self.now > MAX_EXPRESSION_DEPTH {
                let start = e.span().start;
                self.too_deep = Some(if start.line > 0 {
                    (start.line, start.column)
                } else {
                    (1, 1)
                });
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
            self.now -= 1;
            ControlFlow::Continue(())
        }
    }
    let mut d = Depth {
        now: 0,
        too_deep: None,
    };
    let _ = node.visit(&mut d);
    match d.too_deep {
        None => Ok(()),
        Some(position) => Err(SqlError::validation(
            format!(
                "an expression here is nested more than {MAX_EXPRESSION_DEPTH} levels deep, \
                     the most Weir plans (a chain like `a + b + c ...` nests one level per \
                     operator); split it into several columns or subqueries, or use IN (...) \
                     for a long list of alternatives"
            ),
            Some(position),
        )),
    }
}

/// How much more typing work than its size a statement may ask of the
/// planner (see [`check_typing_cost`]).
pub const MAX_TYPING_AMPLIFICATION: u64 = 100;

/// Typing work any statement may take, however small.
pub const TYPING_WORK_FLOOR: u64 = 10_000;

/// Refuses a statement whose expressions would take DataFusion's planner
/// exponentially long to type.
///
/// DataFusion types a `CASE`, `BETWEEN`, `LIKE`, `IN` or `NOT` by asking
/// its operands for their type and, apart, for their nullability, and a
/// function call answers either by typing its arguments in full: so each
/// such construct with a call under it doubles the work below it, and
/// `COALESCE` (which its optimizer expands into a `CASE` that repeats its
/// arguments) quadruples it. Twelve `CASE WHEN c THEN ABS(...) END` nested
/// took a second, sixteen a quarter of a minute, and no timeout can stop
/// a planner thread. This walk counts that work the way DataFusion does it
/// (a number per expression, in one pass) and refuses a statement whose
/// work exceeds [`MAX_TYPING_AMPLIFICATION`] times its number of
/// expressions (plus [`TYPING_WORK_FLOOR`]): statements as wide and long as
/// anyone writes stay far below; only nesting these constructs a dozen
/// levels deep reaches it.
pub fn check_typing_cost<V: Visit>(node: &V) -> Result<(), SqlError> {
    /// What typing one expression costs: in full (`field`), its type
    /// alone, its nullability alone.
    #[derive(Clone, Copy, Default)]
    struct Work {
        field: u64,
        ty: u64,
        nullable: u64,
    }
    impl Work {
        fn add(&mut self, o: Work) {
            self.field = self.field.saturating_add(o.field);
            self.ty = self.ty.saturating_add(o.ty);
            self.nullable = self.nullable.saturating_add(o.nullable);
        }
    }
    struct Cost {
        /// The children's work summed, one frame per open expression.
        frames: Vec<Work>,
        total: u64,
        nodes: u64,
        /// The first outermost expression whose work passed the floor.
        costly: Option<(u64, u64)>,
    }
    impl Visitor for Cost {
        type Break = ();
        fn pre_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
            self.frames.push(Work::default());
            self.nodes += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            let below = self.frames.pop().unwrap_or_default();
            let one = |x: u64| x.saturating_add(1);
            let work = match e {
                Expr::Function(f) => {
                    let name = f.name.to_string().to_ascii_lowercase();
                    let repeats = match name.as_str() {
                        "coalesce" | "ifnull" | "nvl" | "nullif" => 4,
                        _ => 1,
                    };
                    let field = one(below.field.saturating_mul(repeats));
                    Work {
                        field,
                        ty: field,
                        nullable: field,
                    }
                }
                Expr::Case { .. }
                | Expr::Between { .. }
                | Expr::Like { .. }
                | Expr::ILike { .. }
                | Expr::SimilarTo { .. }
                | Expr::InList { .. }
                | Expr::UnaryOp { .. } => {
                    let (ty, nullable) = (one(below.ty), one(below.nullable));
                    Work {
                        field: ty.saturating_add(nullable),
                        ty,
                        nullable,
                    }
                }
                Expr::Cast { .. } => Work {
                    field: one(below.field),
                    ty: 1,
                    nullable: one(below.nullable),
                },
                _ => Work {
                    field: one(below.field),
                    ty: one(below.ty),
                    nullable: one(below.nullable),
                },
            };
            match self.frames.last_mut() {
                Some(parent) => parent.add(work),
                None => {
                    self.total = self.total.saturating_add(work.field);
                    if self.costly.is_none() && work.field > TYPING_WORK_FLOOR {
                        let start = e.span().start;
                        self.costly = (start.line > 0).then_some((start.line, start.column));
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut c = Cost {
        frames: vec![],
        total: 0,
        nodes: 0,
        costly: None,
    };
    let _ = node.visit(&mut c);
    let allowed = c
        .nodes
        .saturating_mul(MAX_TYPING_AMPLIFICATION)
        .saturating_add(TYPING_WORK_FLOOR);
    if c.total <= allowed {
        return Ok(());
    }
    Err(SqlError::validation(
        "an expression here nests CASE, COALESCE, BETWEEN, LIKE, IN or NOT and function calls \
         inside one another so deeply that typing it would take the planner too long (the \
         work doubles with every level); compute the inner part as a column of a subquery or \
         a WITH clause and use that column"
            .to_string(),
        c.costly,
    ))
}

/// Runs `f` (parsing and planning) on a thread with a stack of
/// [`PLANNER_STACK_BYTES`], and turns a panic in it into an error naming
/// the panic, so that neither a deep tree nor a planner bug can abort the
/// process. Blocks the calling thread until `f` returns.
pub fn on_planner_stack<T: Send>(f: impl FnOnce() -> T + Send) -> Result<T, String> {
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .name("weir-planner".into())
            .stack_size(PLANNER_STACK_BYTES)
            .spawn_scoped(s, f)
            .map_err(|e| format!("cannot start a planner thread: {e}"))?;
        handle.join().map_err(|p| panic_message(p.as_ref()))
    })
}

/// The text of a panic's payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// A statement's memory limits, in bytes (see
/// [`crate::properties::MEMORY_LIMIT`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimit {
    /// Past this the statement is `DEGRADED`.
    pub soft: u64,
    /// Past this the statement fails.
    pub hard: u64,
}

/// The server's default `'sql.memory.limit'`.
pub const DEFAULT_MEMORY_LIMIT: u64 = 1 << 30;

/// Parses a memory size as Flink writes one: a number and an optional
/// unit, `b`, `kb`, `mb`, `gb` or `tb` (binary multiples, as in Flink).
pub fn memory_bytes(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().ok()?;
    let shift = match unit.trim().to_lowercase().as_str() {
        "" | "b" | "bytes" => 0,
        "k" | "kb" | "kib" | "kibibytes" => 10,
        "m" | "mb" | "mib" | "mebibytes" => 20,
        "g" | "gb" | "gib" | "gibibytes" => 30,
        "t" | "tb" | "tib" | "tebibytes" => 40,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

/// A byte count as people read it: `512 B`, `3.2 MiB`, `1.0 GiB`.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_read_as_flink_writes_them() {
        assert_eq!(memory_bytes("512"), Some(512));
        assert_eq!(memory_bytes("64 kb"), Some(64 << 10));
        assert_eq!(memory_bytes("512mb"), Some(512 << 20));
        assert_eq!(memory_bytes(" 2 GB "), Some(2 << 30));
        assert_eq!(memory_bytes("1 furlong"), None);
        assert_eq!(memory_bytes("-1 mb"), None);
        // Too large to count in bytes: refused, not wrapped.
        assert_eq!(memory_bytes("99999999999999 tb"), None);
    }

    #[test]
    fn byte_counts_print_for_people() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
        assert_eq!(human_bytes((1 << 30) + (1 << 29)), "1.5 GiB");
    }
}
