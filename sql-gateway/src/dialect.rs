//! Flink's lexical rules on top of `sqlparser`.

use datafusion::sql::sqlparser::ast::{Expr, Ident};
use datafusion::sql::sqlparser::dialect::Dialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

/// The first part of the identifier that stands for a `TABLE t` argument of
/// a table-valued function (`TUMBLE(TABLE t, ...)`); see `windows.rs`.
pub const TABLE_ARG_MARKER: &str = "__weir_table_arg__";

/// Flink SQL: identifiers are quoted with backticks and are case-sensitive,
/// strings use single quotes, and aggregates take `FILTER (WHERE ...)`.
#[derive(Debug, Default, Clone, Copy)]
pub struct FlinkDialect;

thread_local! {
    /// Expressions the parser may still start on this thread (see
    /// [`ParseBudget`]); `None`: no bound.
    static PREFIX_BUDGET: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// Bounds the work of parsing one text on this thread while it lives.
///
/// sqlparser backtracks: where a nested construct fails to parse (a
/// `CAST(` that never closes, say) it parses the same tokens again as
/// something else, at every level, so a 1 KB statement nesting 40 failed
/// calls takes 2^40 steps and would hold a core for days. A parse that
/// does not backtrack starts one expression per token or so; this guard
/// allows [`ParseBudget::PER_TOKEN`] per token, after which the parser
/// stops with [`ParserError::RecursionLimitExceeded`] (the one error its
/// backtracking does not swallow) and [`ParseBudget::exhausted`] says so.
pub struct ParseBudget {
    /// Not `Send`: the budget belongs to this thread.
    _thread: std::marker::PhantomData<*const ()>,
}

impl ParseBudget {
    /// Expressions a parse may start per token of its text.
    pub const PER_TOKEN: u64 = 64;

    /// A budget for parsing `text`.
    pub fn new(text: &str) -> ParseBudget {
        // Tokens are at most every other character; a few more for
        // generated text.
        let tokens = text.len() as u64 / 2 + 16;
        PREFIX_BUDGET.with(|b| b.set(Some(tokens * Self::PER_TOKEN + 10_000)));
        ParseBudget {
            _thread: std::marker::PhantomData,
        }
    }

    /// Whether the parse ran out of budget.
    pub fn exhausted(&self) -> bool {
        PREFIX_BUDGET.with(|b| b.get() == Some(0))
    }
}

impl Drop for ParseBudget {
    fn drop(&mut self) {
        PREFIX_BUDGET.with(|b| b.set(None));
    }
}

/// Takes one step of the thread's parse budget; `false` when none is left.
fn spend_parse_step() -> bool {
    PREFIX_BUDGET.with(|b| match b.get() {
        None => true,
        Some(0) => false,
        Some(n) => {
            b.set(Some(n - 1));
            true
        }
    })
}

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

    /// `FOR SYSTEM_TIME AS OF` (temporal joins; see `temporal.rs`).
    fn supports_table_versioning(&self) -> bool {
        true
    }

    /// `TABLE name` as a function argument (Flink's window TVFs) parses to
    /// a marked compound identifier; `TABLE name PARTITION BY a` or
    /// `PARTITION BY (a, b)` (a `SESSION` window's) to a tuple of it and
    /// the partition columns.
    fn parse_prefix(&self, parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        if !spend_parse_step() {
            return Some(Err(ParserError::RecursionLimitExceeded));
        }
        let is_table =
            matches!(&parser.peek_token().token, Token::Word(w) if w.keyword == Keyword::TABLE);
        let then_name = matches!(&parser.peek_nth_token(1).token, Token::Word(_));
        if !(is_table && then_name) {
            return None;
        }
        parser.next_token();
        Some(table_argument(parser))
    }
}

fn table_argument(parser: &mut Parser) -> Result<Expr, ParserError> {
    let name = parser.parse_object_name(false)?;
    let mut parts = vec![Ident::new(TABLE_ARG_MARKER)];
    parts.extend(name.0.into_iter().filter_map(|p| p.as_ident().cloned()));
    let table = Expr::CompoundIdentifier(parts);
    if !parser.parse_keywords(&[Keyword::PARTITION, Keyword::BY]) {
        return Ok(table);
    }
    let columns = if parser.consume_token(&Token::LParen) {
        let c = parser.parse_comma_separated(|p| p.parse_identifier())?;
        parser.expect_token(&Token::RParen)?;
        c
    } else {
        vec![parser.parse_identifier()?]
    };
    let mut tuple = vec![table];
    tuple.extend(columns.into_iter().map(Expr::Identifier));
    Ok(Expr::Tuple(tuple))
}
