//! Flink's lexical rules and syntax on top of `sqlparser`: window TVF
//! table arguments, `MAP[k, v, ...]`, `x IS [NOT] JSON`, `BETWEEN
//! SYMMETRIC`, and the clauses of `JSON_VALUE` and `JSON_QUERY`.

use crate::unnest::call;
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
    /// The bound on this thread's current parse (see [`ParseBudget`]);
    /// `None`: no bound.
    static PARSE_BUDGET: std::cell::RefCell<Option<Budget>> = const { std::cell::RefCell::new(None) };
}

/// What a parse has spent: expressions started at each token, and whether
/// it ran out.
struct Budget {
    starts: std::collections::HashMap<usize, u32>,
    exhausted: bool,
}

/// Bounds the work of parsing one text on this thread while it lives.
///
/// sqlparser backtracks: where a nested construct fails to parse (a
/// `CAST(` that never closes, say) it parses the same tokens again as
/// something else, at every level, so a 1 KB statement nesting 40 failed
/// calls takes 2^40 steps and would hold a core for days. A parse that
/// does not backtrack starts an expression at a given token a few times
/// at most (once per construct it tries there); this guard allows
/// [`ParseBudget::STARTS_PER_TOKEN`] starts at any one token, after which
/// the parser stops with [`ParserError::RecursionLimitExceeded`] (the one
/// error its backtracking does not swallow) and
/// [`ParseBudget::exhausted`] says so. The bound is per token, not per
/// text: a long statement does not buy a long backtrack.
pub struct ParseBudget {
    /// Not `Send`: the budget belongs to this thread.
    _thread: std::marker::PhantomData<*const ()>,
}

impl ParseBudget {
    /// Expressions a parse may start at any one token.
    pub const STARTS_PER_TOKEN: u32 = 256;

    /// A budget for parsing one text.
    pub fn start() -> ParseBudget {
        PARSE_BUDGET.with(|b| {
            *b.borrow_mut() = Some(Budget {
                starts: Default::default(),
                exhausted: false,
            })
        });
        ParseBudget {
            _thread: std::marker::PhantomData,
        }
    }

    /// Whether the parse ran out of budget.
    pub fn exhausted(&self) -> bool {
        PARSE_BUDGET.with(|b| b.borrow().as_ref().is_some_and(|b| b.exhausted))
    }
}

impl Drop for ParseBudget {
    fn drop(&mut self) {
        PARSE_BUDGET.with(|b| *b.borrow_mut() = None);
    }
}

/// Counts an expression started at token `index` against the thread's
/// parse budget; `false` when the budget is spent.
fn spend_parse_step(index: usize) -> bool {
    PARSE_BUDGET.with(|b| {
        let mut b = b.borrow_mut();
        let Some(budget) = b.as_mut() else {
            return true;
        };
        if budget.exhausted {
            return false;
        }
        let starts = budget.starts.entry(index).or_default();
        *starts += 1;
        budget.exhausted = *starts > ParseBudget::STARTS_PER_TOKEN;
        !budget.exhausted
    })
}

impl Dialect for FlinkDialect {
    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '`'
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        ch.is_alphabetic() || ch == '_'
    }

    /// `$` continues a name, as in Calcite (`EXPR$0`, the name Flink
    /// gives an unnamed expression or a row's field).
    fn is_identifier_part(&self, ch: char) -> bool {
        ch.is_alphanumeric() || ch == '_' || ch == '$'
    }

    /// `ARRAY_AGG(x IGNORE NULLS)`.
    fn supports_window_function_null_treatment_arg(&self) -> bool {
        true
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

    /// `MATCH_RECOGNIZE` (see `match_recognize.rs`).
    fn supports_match_recognize(&self) -> bool {
        true
    }

    /// `x IS [NOT] JSON [VALUE | OBJECT | ARRAY | SCALAR]` parses to
    /// `weir_is_json(x, 'KIND')`, negated for `NOT`.
    fn parse_infix(
        &self,
        parser: &mut Parser,
        expr: &Expr,
        _precedence: u8,
    ) -> Option<Result<Expr, ParserError>> {
        let is_word =
            |t: &Token, k: &str| matches!(t, Token::Word(w) if w.value.eq_ignore_ascii_case(k));
        // `x [NOT] BETWEEN SYMMETRIC a AND b`: between the lesser and the
        // greater of the two.
        let not = is_word(&parser.peek_token().token, "NOT");
        let at = usize::from(not);
        if is_word(&parser.peek_nth_token(at).token, "BETWEEN")
            && is_word(&parser.peek_nth_token(at + 1).token, "SYMMETRIC")
        {
            for _ in 0..at + 2 {
                parser.next_token();
            }
            let prec = self.prec_value(datafusion::sql::sqlparser::dialect::Precedence::Between);
            let bounds = parser.parse_subexpr(prec).and_then(|low| {
                parser.expect_keyword(Keyword::AND)?;
                Ok((low, parser.parse_subexpr(prec)?))
            });
            return Some(bounds.map(|(a, b)| Expr::Between {
                expr: Box::new(expr.clone()),
                negated: not,
                low: Box::new(call("least", vec![a.clone(), b.clone()])),
                high: Box::new(call("greatest", vec![a, b])),
            }));
        }
        if !is_word(&parser.peek_token().token, "IS") {
            return None;
        }
        let not = is_word(&parser.peek_nth_token(1).token, "NOT");
        let at = if not { 2 } else { 1 };
        if !is_word(&parser.peek_nth_token(at).token, "JSON") {
            return None;
        }
        for _ in 0..=at {
            parser.next_token();
        }
        let mut kind = "VALUE";
        for k in ["VALUE", "OBJECT", "ARRAY", "SCALAR"] {
            if is_word(&parser.peek_token().token, k) {
                parser.next_token();
                kind = k;
                break;
            }
        }
        let test = call(
            crate::flink_udfs::IS_JSON_FN,
            vec![
                expr.clone(),
                Expr::Value(
                    datafusion::sql::sqlparser::ast::Value::SingleQuotedString(kind.into()).into(),
                ),
            ],
        );
        Some(Ok(if not {
            Expr::UnaryOp {
                op: datafusion::sql::sqlparser::ast::UnaryOperator::Not,
                expr: Box::new(Expr::Nested(Box::new(test))),
            }
        } else {
            test
        }))
    }

    /// `TABLE name` as a function argument (Flink's window TVFs) parses to
    /// a marked compound identifier; `TABLE name PARTITION BY a` or
    /// `PARTITION BY (a, b)` (a `SESSION` window's) to a tuple of it and
    /// the partition columns.
    fn parse_prefix(&self, parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        if !spend_parse_step(parser.index()) {
            return Some(Err(ParserError::RecursionLimitExceeded));
        }
        // Flink's `MAP[k1, v1, k2, v2, ...]` (DataFusion's SQL has
        // `MAP {k: v}`): `map(make_array(keys), make_array(values))`.
        let is_map =
            matches!(&parser.peek_token().token, Token::Word(w) if w.keyword == Keyword::MAP);
        if is_map && parser.peek_nth_token(1).token == Token::LBracket {
            parser.next_token();
            parser.next_token();
            return Some(map_constructor(parser));
        }
        // `CAST(x AS MAP<k, v>)` and `CAST(x AS ROW<...>)` (and `TRY_CAST`),
        // types sqlparser does not take: Weir's cast with the type as text.
        let cast = match &parser.peek_token().token {
            Token::Word(w) if w.keyword == Keyword::CAST => Some(false),
            Token::Word(w) if w.keyword == Keyword::TRY_CAST => Some(true),
            _ => None,
        };
        if let (Some(try_), Token::LParen) = (cast, parser.peek_nth_token(1).token) {
            if !casts_to_composite(parser) {
                return None;
            }
            match parser.maybe_parse(|p| composite_cast(p, try_)) {
                Ok(Some(e)) => return Some(Ok(e)),
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
        }
        // `JSON_OBJECT([KEY] k VALUE v, ...)` and `JSON_OBJECTAGG([KEY] k
        // VALUE v)`: sqlparser does not take the `KEY` word.
        let object = match &parser.peek_token().token {
            Token::Word(w) if w.quote_style.is_none() => {
                let n = w.value.to_ascii_uppercase();
                (n == "JSON_OBJECT" || n == "JSON_OBJECTAGG").then_some(n)
            }
            _ => None,
        };
        if let (Some(name), Token::LParen) = (object, parser.peek_nth_token(1).token) {
            parser.next_token();
            parser.next_token();
            return Some(json_object_call(parser, &name));
        }
        // `JSON_VALUE(doc, path [RETURNING t] [b ON EMPTY] [b ON ERROR])`,
        // whose clauses sqlparser does not take.
        let is_json_value = matches!(&parser.peek_token().token,
            Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("JSON_VALUE"));
        if is_json_value && parser.peek_nth_token(1).token == Token::LParen {
            parser.next_token();
            parser.next_token();
            return Some(json_function(parser, false));
        }
        // `JSON_QUERY(doc, path [RETURNING t] [WITH[OUT] ... WRAPPER]
        // [b ON EMPTY] [b ON ERROR])`.
        let is_json_query = matches!(&parser.peek_token().token,
            Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("JSON_QUERY"));
        if is_json_query && parser.peek_nth_token(1).token == Token::LParen {
            parser.next_token();
            parser.next_token();
            return Some(json_function(parser, true));
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

/// The rest of `JSON_OBJECT(` or `JSON_OBJECTAGG(` (the name and
/// parenthesis taken): `[KEY] k VALUE v` pairs and an optional `NULL |
/// ABSENT ON NULL`, as the call sqlparser makes of `JSON_OBJECT(k VALUE
/// v)`; then, for the aggregate, an optional `FILTER (WHERE ...)`.
fn json_object_call(parser: &mut Parser, name: &str) -> Result<Expr, ParserError> {
    use datafusion::sql::sqlparser::ast::{
        FunctionArg, FunctionArgExpr, FunctionArgOperator, FunctionArgumentClause, JsonNullClause,
    };
    let mut args = vec![];
    let mut clauses = vec![];
    loop {
        if parser.parse_keywords(&[Keyword::NULL, Keyword::ON, Keyword::NULL]) {
            clauses.push(FunctionArgumentClause::JsonNullClause(
                JsonNullClause::NullOnNull,
            ));
            break;
        }
        if parser.parse_keywords(&[Keyword::ABSENT, Keyword::ON, Keyword::NULL]) {
            clauses.push(FunctionArgumentClause::JsonNullClause(
                JsonNullClause::AbsentOnNull,
            ));
            break;
        }
        if parser.peek_token().token == Token::RParen {
            break;
        }
        // `KEY` is the keyword unless it is the key itself (a column
        // named `key`: `JSON_OBJECT(key VALUE v)`).
        let key_word = matches!(&parser.peek_token().token,
            Token::Word(w) if w.keyword == Keyword::KEY && w.quote_style.is_none());
        let then_value = matches!(&parser.peek_nth_token(1).token,
            Token::Word(w) if w.keyword == Keyword::VALUE);
        if key_word && !then_value {
            parser.next_token();
        }
        let key = parser.parse_expr()?;
        parser.expect_keyword(Keyword::VALUE)?;
        let value = parser.parse_expr()?;
        args.push(FunctionArg::ExprNamed {
            name: key,
            arg: FunctionArgExpr::Expr(value),
            operator: FunctionArgOperator::Value,
        });
        if !parser.consume_token(&Token::Comma) {
            if parser.parse_keywords(&[Keyword::NULL, Keyword::ON, Keyword::NULL]) {
                clauses.push(FunctionArgumentClause::JsonNullClause(
                    JsonNullClause::NullOnNull,
                ));
            } else if parser.parse_keywords(&[Keyword::ABSENT, Keyword::ON, Keyword::NULL]) {
                clauses.push(FunctionArgumentClause::JsonNullClause(
                    JsonNullClause::AbsentOnNull,
                ));
            }
            break;
        }
    }
    parser.expect_token(&Token::RParen)?;
    let filter = if name == "JSON_OBJECTAGG" && parser.parse_keyword(Keyword::FILTER) {
        parser.expect_token(&Token::LParen)?;
        parser.expect_keyword(Keyword::WHERE)?;
        let f = parser.parse_expr()?;
        parser.expect_token(&Token::RParen)?;
        Some(Box::new(f))
    } else {
        None
    };
    let Expr::Function(mut f) = call(&name.to_ascii_lowercase(), vec![]) else {
        unreachable!("call makes a function");
    };
    f.args = datafusion::sql::sqlparser::ast::FunctionArguments::List(
        datafusion::sql::sqlparser::ast::FunctionArgumentList {
            duplicate_treatment: None,
            args,
            clauses,
        },
    );
    f.filter = filter;
    Ok(Expr::Function(f))
}

/// What `JSON_VALUE` or `JSON_QUERY` gives when its path leads nowhere
/// (`ON EMPTY`) or it cannot read the document (`ON ERROR`).
enum JsonBehavior {
    Null,
    Error,
    Default(Box<Expr>),
}

/// The rest of `JSON_VALUE(` or (`query`) `JSON_QUERY(` (the name and
/// parenthesis taken): the call, its result cast to the `RETURNING` type
/// (a `STRING` otherwise), and, where an `ON EMPTY` or `ON ERROR` clause
/// asks for something other than NULL, a `CASE` over what the document
/// holds at the path. `JSON_QUERY`'s wrapper, and its `EMPTY ARRAY` and
/// `EMPTY OBJECT` behaviours (`[]`, `{}`), are taken too.
fn json_function(parser: &mut Parser, query: bool) -> Result<Expr, ParserError> {
    use datafusion::sql::sqlparser::ast::{CaseWhen, DataType as SqlType, Value};
    // (A `STRING` is what `json_value` gives; the defaults are cast to it.)
    let doc = parser.parse_expr()?;
    parser.expect_token(&Token::Comma)?;
    let path = parser.parse_expr()?;
    let returning = if parser.parse_keyword(Keyword::RETURNING) {
        Some(parser.parse_data_type()?)
    } else {
        None
    };
    let is_word =
        |t: &Token, k: &str| matches!(t, Token::Word(w) if w.value.eq_ignore_ascii_case(k));
    let text = |s: &str| Expr::Value(Value::SingleQuotedString(s.into()).into());
    let number = |n: &str| Expr::Value(Value::Number(n.into(), false).into());
    // 0: WITHOUT WRAPPER, 1: WITH [UNCONDITIONAL] WRAPPER, 2: CONDITIONAL.
    let mut wrapper = 0;
    if query {
        if parser.parse_keyword(Keyword::WITHOUT) {
            let _ = parser.parse_keyword(Keyword::ARRAY);
            let t = parser.next_token();
            if !is_word(&t.token, "WRAPPER") {
                return parser.expected("WRAPPER", t);
            }
        } else if parser.parse_keyword(Keyword::WITH) {
            wrapper = if is_word(&parser.peek_token().token, "CONDITIONAL") {
                parser.next_token();
                2
            } else {
                if is_word(&parser.peek_token().token, "UNCONDITIONAL") {
                    parser.next_token();
                }
                1
            };
            let _ = parser.parse_keyword(Keyword::ARRAY);
            let t = parser.next_token();
            if !is_word(&t.token, "WRAPPER") {
                return parser.expected("WRAPPER", t);
            }
        }
    }
    let (mut on_empty, mut on_error) = (JsonBehavior::Null, JsonBehavior::Null);
    loop {
        let behavior = if parser.parse_keyword(Keyword::NULL) {
            JsonBehavior::Null
        } else if query && parser.parse_keywords(&[Keyword::EMPTY, Keyword::ARRAY]) {
            JsonBehavior::Default(Box::new(text("[]")))
        } else if query
            && is_word(&parser.peek_token().token, "EMPTY")
            && is_word(&parser.peek_nth_token(1).token, "OBJECT")
        {
            parser.next_token();
            parser.next_token();
            JsonBehavior::Default(Box::new(text("{}")))
        } else if is_word(&parser.peek_token().token, "ERROR") {
            parser.next_token();
            JsonBehavior::Error
        } else if !query && parser.parse_keyword(Keyword::DEFAULT) {
            JsonBehavior::Default(Box::new(parser.parse_expr()?))
        } else {
            break;
        };
        parser.expect_keyword(Keyword::ON)?;
        let t = parser.next_token();
        if is_word(&t.token, "EMPTY") {
            on_empty = behavior;
        } else if is_word(&t.token, "ERROR") {
            on_error = behavior;
        } else {
            return parser.expected("EMPTY or ERROR", t);
        }
    }
    parser.expect_token(&Token::RParen)?;
    let plain = returning.is_none();
    let ty = returning.unwrap_or(SqlType::String(None));
    let cast = |e: Expr| Expr::Cast {
        kind: datafusion::sql::sqlparser::ast::CastKind::Cast,
        expr: Box::new(e),
        data_type: ty.clone(),
        array: false,
        format: None,
    };
    let mode = number(&wrapper.to_string());
    let value = match query {
        false => call("json_value", vec![doc.clone(), path.clone()]),
        true => call(
            crate::flink_udfs::JSON_QUERY_FN,
            vec![doc.clone(), path.clone(), mode.clone()],
        ),
    };
    let value = if plain { value } else { cast(value) };
    if matches!(
        (&on_empty, &on_error),
        (JsonBehavior::Null, JsonBehavior::Null)
    ) {
        return Ok(value);
    }
    let name = if query { "JSON_QUERY" } else { "JSON_VALUE" };
    let arm = |b: JsonBehavior, message: &str| match b {
        JsonBehavior::Null => cast(Expr::Value(Value::Null.into())),
        JsonBehavior::Default(e) => cast(*e),
        JsonBehavior::Error => cast(call(
            crate::flink_udfs::FAIL_FN,
            vec![text(&format!("{name}: {message}"))],
        )),
    };
    Ok(Expr::Case {
        case_token: datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken::empty(
        ),
        end_token: datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
        operand: Some(Box::new(match query {
            false => call(crate::flink_udfs::JSON_VALUE_STATUS_FN, vec![doc, path]),
            true => call(
                crate::flink_udfs::JSON_QUERY_STATUS_FN,
                vec![doc, path, mode],
            ),
        })),
        conditions: vec![
            CaseWhen {
                condition: number("1"),
                result: arm(on_empty, "the path leads to no value (ERROR ON EMPTY)"),
            },
            CaseWhen {
                condition: number("2"),
                result: arm(
                    on_error,
                    "the document is not JSON, the path is not one, or what it leads to \
                     cannot be given (ERROR ON ERROR)",
                ),
            },
        ],
        else_result: Some(Box::new(value)),
    })
}

/// Whether the `CAST(` ahead casts to a `MAP` or a `ROW`: its tokens are
/// scanned (not parsed, so that nested casts cost one pass each) up to the
/// `AS` at its own depth, and the parser is put back.
fn casts_to_composite(parser: &mut Parser) -> bool {
    let mut composite = false;
    let _ = parser.maybe_parse(|p| -> Result<(), ParserError> {
        p.next_token();
        p.next_token();
        let mut depth = 0usize;
        loop {
            match p.next_token().token {
                Token::EOF => break,
                Token::LParen | Token::LBracket => depth += 1,
                Token::RParen | Token::RBracket if depth == 0 => break,
                Token::RParen | Token::RBracket => depth -= 1,
                Token::Word(w) if depth == 0 && w.keyword == Keyword::AS => {
                    composite = matches!(&p.peek_token().token, Token::Word(w)
                        if w.quote_style.is_none()
                            && (w.value.eq_ignore_ascii_case("MAP")
                                || w.value.eq_ignore_ascii_case("ROW")));
                    break;
                }
                _ => {}
            }
        }
        Err(ParserError::ParserError("scanned".into()))
    });
    composite
}

/// `CAST(x AS t)` where `t` is a `MAP` or a `ROW` (an error otherwise, so
/// that sqlparser's own `CAST` takes it): `weir_cast_composite(x, 't', try)`.
fn composite_cast(p: &mut Parser, try_: bool) -> Result<Expr, ParserError> {
    p.next_token();
    p.expect_token(&Token::LParen)?;
    let e = p.parse_expr()?;
    p.expect_keyword_is(Keyword::AS)?;
    let composite = matches!(&p.peek_token().token, Token::Word(w)
        if w.quote_style.is_none()
            && (w.value.eq_ignore_ascii_case("MAP") || w.value.eq_ignore_ascii_case("ROW")));
    if !composite {
        return Err(ParserError::ParserError("not a MAP or ROW".into()));
    }
    let mut text = String::new();
    let mut depth = 0i32;
    loop {
        let t = p.next_token();
        match &t.token {
            Token::EOF => return p.expected("')' after the type", t),
            Token::RParen if depth == 0 => break,
            Token::LParen | Token::Lt => depth += 1,
            Token::RParen | Token::Gt => depth -= 1,
            Token::ShiftRight => depth -= 2,
            _ => {}
        }
        text.push_str(&t.token.to_string());
        text.push(' ');
    }
    Ok(call(
        crate::flink_udfs::CAST_FN,
        vec![
            e,
            Expr::value(datafusion::sql::sqlparser::ast::Value::SingleQuotedString(
                text.trim_end().to_string(),
            )),
            Expr::value(datafusion::sql::sqlparser::ast::Value::Boolean(try_)),
        ],
    ))
}

fn map_constructor(parser: &mut Parser) -> Result<Expr, ParserError> {
    let items = if parser.consume_token(&Token::RBracket) {
        vec![]
    } else {
        let items = parser.parse_comma_separated(|p| p.parse_expr())?;
        parser.expect_token(&Token::RBracket)?;
        items
    };
    if items.len() % 2 == 1 {
        return Err(ParserError::ParserError(
            "MAP[...] takes keys and values in pairs: MAP[k1, v1, k2, v2, ...]".into(),
        ));
    }
    let (keys, values): (Vec<_>, Vec<_>) = items
        .chunks(2)
        .map(|kv| (kv[0].clone(), kv[1].clone()))
        .unzip();
    Ok(call(
        "map",
        vec![call("make_array", keys), call("make_array", values)],
    ))
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
