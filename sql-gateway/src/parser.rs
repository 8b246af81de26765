//! Flink SQL statements.
//!
//! Queries and `INSERT` go through `sqlparser` with [`FlinkDialect`]; the
//! statements that `sqlparser` does not know in Flink's form (`CREATE TABLE`
//! with watermarks, metadata columns and distribution, `SHOW`, `USE CATALOG`,
//! `SET 'k' = 'v'`, ...) are parsed here with `sqlparser`'s tokenizer and
//! expression parser, so that every error carries a line and column.

use std::collections::BTreeMap;

use datafusion::sql::sqlparser::ast::{Expr, ObjectName, Query, Statement, TableObject};
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};
use weir_catalog::{
    ColumnKind, ColumnSpec, Distribution, SqlType, TableDef, TableOrigin, WatermarkSpec,
};

use crate::dialect::FlinkDialect;
use crate::error::{position_in_message, strip_position, SqlError};
use crate::hints::{self, TableHints};

#[derive(Debug, Clone, PartialEq)]
pub enum ShowKind {
    Catalogs,
    Databases,
    Tables,
    Views,
    Functions,
    CreateTable(ObjectName),
    CurrentCatalog,
    CurrentDatabase,
}

/// A parsed Flink SQL statement.
// One statement per request: the size of the largest variant does not add up.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum FlinkStatement {
    Show(ShowKind),
    Describe {
        table: ObjectName,
        extended: bool,
    },
    UseCatalog(String),
    UseDatabase(String),
    /// `SET` alone lists the properties.
    Set(Option<(String, String)>),
    Reset(Option<String>),
    Explain(Box<FlinkStatement>),
    CreateTable {
        name: ObjectName,
        if_not_exists: bool,
        /// The definition; its `topic` is the table name until resolved.
        def: TableDef,
        as_query: Option<Box<Query>>,
        /// `LIKE source (options)`: the definition is merged with the
        /// source's when the statement runs ([`crate::table_changes`]).
        like: Option<crate::table_changes::LikeClause>,
    },
    DropTable {
        name: ObjectName,
        if_exists: bool,
    },
    /// `CREATE [OR REPLACE] VIEW [IF NOT EXISTS] name AS query`.
    CreateView {
        name: ObjectName,
        if_not_exists: bool,
        or_replace: bool,
        query: Box<Query>,
    },
    DropView {
        name: ObjectName,
        if_exists: bool,
    },
    AlterTableSet {
        name: ObjectName,
        options: BTreeMap<String, String>,
    },
    /// `ALTER TABLE name ADD | MODIFY | DROP | RENAME | RESET ...`.
    AlterTable {
        name: ObjectName,
        if_exists: bool,
        change: crate::table_changes::AlterChange,
    },
    Insert {
        table: ObjectName,
        columns: Vec<String>,
        query: Box<Query>,
    },
    Query(Box<Query>),
    /// `EXECUTE STATEMENT SET BEGIN INSERT ...; ... END` (or the SQL
    /// client's `BEGIN STATEMENT SET; ...; END;`): `INSERT`s run as one
    /// statement, each `Insert`.
    StatementSet(Vec<FlinkStatement>),
}

/// A statement plus the `/*+ OPTIONS(...) */` hints found in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub statement: FlinkStatement,
    pub hints: TableHints,
}

fn parser_error(e: ParserError) -> SqlError {
    let msg = e.to_string();
    SqlError::parse(strip_position(&msg), position_in_message(&msg))
}

fn at(tok: &TokenWithSpan) -> Option<(u64, u64)> {
    (tok.span.start.line > 0).then_some((tok.span.start.line, tok.span.start.column))
}

/// Parses one Flink SQL statement.
pub fn parse(sql: &str) -> Result<Parsed, SqlError> {
    let budget = crate::dialect::ParseBudget::start();
    parse_statement(sql).map_err(|e| match e {
        _ if budget.exhausted() => SqlError::parse(
            "the statement has a syntax error inside deeply nested parentheses or calls, and \
             pinpointing it would take the parser too long; check that every '(' is closed and \
             every CAST has its AS type, from the innermost call out",
            Some(too_deeply_nested(sql, 8)),
        ),
        SqlError::User { message, .. } if message == "recursion limit exceeded" => SqlError::parse(
            format!(
                "the statement nests parentheses, subqueries or calls more than \
                     {PARSER_NESTING_LIMIT} levels deep, the most Weir parses; flatten it \
                     (a WITH clause names a subquery once)"
            ),
            Some(too_deeply_nested(sql, PARSER_NESTING_LIMIT)),
        ),
        other => other,
    })
}

/// sqlparser's recursion limit, the nesting it parses.
const PARSER_NESTING_LIMIT: usize = 50;

/// Where `sql` first opens more than `limit` parentheses (outside quotes);
/// the start of the text when it never does.
fn too_deeply_nested(sql: &str, limit: usize) -> (u64, u64) {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for (i, c) in sql.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"' | '`') => quote = Some(c),
            (None, '(') => {
                depth += 1;
                if depth > limit {
                    return crate::error::offset_to_position(sql, i);
                }
            }
            (None, ')') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    (1, 1)
}

/// Refuses a statement with more operators (binary, and the keywords that
/// chain: `IS`, `LIKE`, `::`, `[` ...) than
/// [`crate::limits::MAX_OPERATORS`], before the parser builds its tree: a
/// chain `a + b + c ...` parses without recursion into a tree as deep as
/// it is long, and walking or even dropping a tree of 100,000 levels
/// overflows the planner's stack, which aborts the process.
fn check_operator_count(sql: &str) -> Result<(), SqlError> {
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::tokenizer::Tokenizer;
    let Ok(tokens) = Tokenizer::new(&FlinkDialect, sql).tokenize_with_location() else {
        // The parser reports the same error, with its position.
        return Ok(());
    };
    let mut count = 0usize;
    for t in &tokens {
        let operator = match &t.token {
            Token::Plus
            | Token::Minus
            | Token::Mul
            | Token::Div
            | Token::Mod
            | Token::StringConcat
            | Token::Eq
            | Token::DoubleEq
            | Token::Neq
            | Token::Lt
            | Token::Gt
            | Token::LtEq
            | Token::GtEq
            | Token::Caret
            | Token::Ampersand
            | Token::Pipe
            | Token::DoubleColon
            | Token::LBracket
            | Token::Arrow
            | Token::LongArrow => true,
            // Every infix or postfix keyword chains too (`x IS NULL IS
            // NULL ...`, `a LIKE b LIKE c ...`).
            Token::Word(w) => matches!(
                w.keyword,
                Keyword::AND
                    | Keyword::OR
                    | Keyword::IS
                    | Keyword::LIKE
                    | Keyword::ILIKE
                    | Keyword::SIMILAR
                    | Keyword::RLIKE
                    | Keyword::REGEXP
                    | Keyword::BETWEEN
                    | Keyword::IN
                    | Keyword::COLLATE
                    | Keyword::AT
                    | Keyword::NOT
                    | Keyword::ESCAPE
            ),
            _ => false,
        };
        if operator {
            count += 1;
            if count > crate::limits::MAX_OPERATORS {
                return Err(SqlError::validation(
                    format!(
                        "the statement has more than {} operators (`+`, `=`, `AND`, `IS`, `LIKE`, \
                         `::`, ...), the most Weir plans in one statement; split it (a long \
                         `a OR b OR ...` is an IN list)",
                        crate::limits::MAX_OPERATORS
                    ),
                    at(t),
                ));
            }
        }
    }
    Ok(())
}

fn parse_statement(sql: &str) -> Result<Parsed, SqlError> {
    let (clean, hints) = hints::extract(sql)?;
    let clean = crate::match_recognize::mark_within(&clean)?;
    let (clean, lifted) = crate::match_recognize::lift_subqueries(&clean);
    check_operator_count(&clean)?;
    let dialect = FlinkDialect;
    let parser = Parser::new(&dialect)
        .try_with_sql(&clean)
        .map_err(parser_error)?;
    let mut p = FlinkParser {
        p: parser,
        gt: 0,
        type_depth: 0,
    };
    let mut statement = p.statement()?;
    if !lifted.is_empty() {
        let subs = lifted
            .iter()
            .map(|q| {
                Parser::new(&dialect)
                    .try_with_sql(q)
                    .and_then(|mut p| p.parse_query())
                    .map(|q| *q)
                    .map_err(parser_error)
            })
            .collect::<Result<Vec<Query>, SqlError>>()?;
        restore_lifted(&mut statement, &subs);
    }
    check_statement_depth(&statement)?;
    while p.p.consume_token(&Token::SemiColon) {}
    let next = p.p.peek_token();
    if next.token != Token::EOF {
        return Err(SqlError::parse(
            format!(
                "expected the end of the statement, found '{}'; submit one statement at a time",
                next.token
            ),
            at(&next),
        ));
    }
    Ok(Parsed { statement, hints })
}

/// The subqueries `MATCH_RECOGNIZE` reads, back in `statement`'s queries.
fn restore_lifted(statement: &mut FlinkStatement, subs: &[Query]) {
    use crate::match_recognize::restore_subqueries;
    match statement {
        FlinkStatement::Query(q)
        | FlinkStatement::Insert { query: q, .. }
        | FlinkStatement::CreateView { query: q, .. }
        | FlinkStatement::CreateTable {
            as_query: Some(q), ..
        } => restore_subqueries(q, subs),
        FlinkStatement::Explain(inner) => restore_lifted(inner, subs),
        FlinkStatement::StatementSet(inserts) => {
            for i in inserts {
                restore_lifted(i, subs);
            }
        }
        _ => {}
    }
}

/// Refuses a statement whose expressions nest too deep to plan (see
/// [`crate::limits`]); a table's computed columns are checked when planned.
fn check_statement_depth(statement: &FlinkStatement) -> Result<(), SqlError> {
    match statement {
        FlinkStatement::Query(q) | FlinkStatement::Insert { query: q, .. } => {
            crate::limits::check_depth(q)
        }
        FlinkStatement::CreateTable {
            as_query: Some(q), ..
        }
        | FlinkStatement::CreateView { query: q, .. } => crate::limits::check_depth(q),
        FlinkStatement::Explain(inner) => check_statement_depth(inner),
        FlinkStatement::StatementSet(inserts) => inserts.iter().try_for_each(check_statement_depth),
        _ => Ok(()),
    }
}

/// A Flink type written as text, e.g. `MAP<STRING, ROW<a INT>>`.
pub(crate) fn parse_type(text: &str) -> Result<SqlType, SqlError> {
    let parser = Parser::new(&FlinkDialect)
        .try_with_sql(text)
        .map_err(parser_error)?;
    let mut p = FlinkParser {
        p: parser,
        gt: 0,
        type_depth: 0,
    };
    let t = p.data_type()?;
    let rest = p.p.peek_token();
    if p.gt > 0 || rest.token != Token::EOF {
        return Err(SqlError::parse(
            format!("'{text}' is not one type: '{}' follows it", rest.token),
            None,
        ));
    }
    Ok(t)
}

struct FlinkParser<'a> {
    p: Parser<'a>,
    /// `>` still owed from a `>>` token closing two nested types.
    gt: u32,
    /// How many types the type being read is nested in.
    type_depth: usize,
}

/// The deepest a type may nest (`ARRAY<ARRAY<...>>`, `ROW(a ROW(...))`):
/// far past any schema, and a bound on the parser's recursion.
const MAX_TYPE_DEPTH: usize = 64;

impl FlinkParser<'_> {
    fn peek_word(&self, n: usize) -> Option<String> {
        let mut idx = 0;
        let mut seen = 0;
        loop {
            let t = self.p.peek_nth_token(idx);
            idx += 1;
            match t.token {
                Token::Whitespace(_) => continue,
                Token::Word(w) if w.quote_style.is_none() => {
                    if seen == n {
                        return Some(w.value.to_uppercase());
                    }
                }
                _ => {
                    if seen == n {
                        return None;
                    }
                }
            }
            seen += 1;
        }
    }

    fn is_word(&self, w: &str) -> bool {
        self.peek_word(0).as_deref() == Some(w)
    }

    fn eat_word(&mut self, w: &str) -> bool {
        if self.is_word(w) {
            self.p.next_token();
            true
        } else {
            false
        }
    }

    fn eat_words(&mut self, ws: &[&str]) -> bool {
        if ws
            .iter()
            .enumerate()
            .all(|(i, w)| self.peek_word(i).as_deref() == Some(*w))
        {
            for _ in ws {
                self.p.next_token();
            }
            true
        } else {
            false
        }
    }

    fn expect_word(&mut self, w: &str) -> Result<(), SqlError> {
        if self.eat_word(w) {
            Ok(())
        } else {
            let t = self.p.peek_token();
            Err(SqlError::parse(
                format!("expected {w}, found '{}'", t.token),
                at(&t),
            ))
        }
    }

    fn expect(&mut self, tok: Token) -> Result<(), SqlError> {
        self.p.expect_token(&tok).map(|_| ()).map_err(parser_error)
    }

    /// One or more `item`s separated by commas.
    fn comma_list<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<T, SqlError>,
    ) -> Result<Vec<T>, SqlError> {
        let mut out = vec![item(self)?];
        while self.p.consume_token(&Token::Comma) {
            out.push(item(self)?);
        }
        Ok(out)
    }

    fn ident(&mut self) -> Result<String, SqlError> {
        Ok(self.p.parse_identifier().map_err(parser_error)?.value)
    }

    fn object_name(&mut self) -> Result<ObjectName, SqlError> {
        self.p.parse_object_name(false).map_err(parser_error)
    }

    fn string(&mut self) -> Result<String, SqlError> {
        self.p.parse_literal_string().map_err(parser_error)
    }

    fn uint(&mut self) -> Result<u64, SqlError> {
        self.p.parse_literal_uint().map_err(parser_error)
    }

    fn statement(&mut self) -> Result<FlinkStatement, SqlError> {
        let first = self.p.peek_token();
        match self.peek_word(0).as_deref() {
            Some("SHOW") => self.show(),
            Some("DESCRIBE") | Some("DESC") => {
                self.p.next_token();
                let extended = self.eat_word("EXTENDED");
                Ok(FlinkStatement::Describe {
                    table: self.object_name()?,
                    extended,
                })
            }
            Some("USE") => {
                self.p.next_token();
                if self.eat_word("CATALOG") {
                    Ok(FlinkStatement::UseCatalog(self.ident()?))
                } else {
                    let name = self.object_name()?;
                    Ok(FlinkStatement::UseDatabase(
                        name.0
                            .last()
                            .map(|p| p.to_string().trim_matches('`').to_string())
                            .unwrap_or_default(),
                    ))
                }
            }
            Some("SET") => {
                self.p.next_token();
                if self.p.peek_token().token == Token::EOF
                    || self.p.peek_token().token == Token::SemiColon
                {
                    return Ok(FlinkStatement::Set(None));
                }
                let k = self.string()?;
                self.expect(Token::Eq)?;
                let v = self.string()?;
                Ok(FlinkStatement::Set(Some((k, v))))
            }
            Some("RESET") => {
                self.p.next_token();
                match self.p.peek_token().token {
                    Token::SingleQuotedString(_) => Ok(FlinkStatement::Reset(Some(self.string()?))),
                    _ => Ok(FlinkStatement::Reset(None)),
                }
            }
            Some("EXPLAIN") => {
                self.p.next_token();
                // EXPLAIN PLAN FOR is accepted too.
                self.eat_words(&["PLAN", "FOR"]);
                // So is Flink's `EXPLAIN STATEMENT SET BEGIN ... END`.
                if self.eat_words(&["STATEMENT", "SET", "BEGIN"]) {
                    return Ok(FlinkStatement::Explain(Box::new(self.statement_set()?)));
                }
                Ok(FlinkStatement::Explain(Box::new(self.statement()?)))
            }
            Some("EXECUTE") => {
                self.p.next_token();
                if self.eat_words(&["STATEMENT", "SET", "BEGIN"]) {
                    return self.statement_set();
                }
                if self.peek_word(0).as_deref() == Some("INSERT") {
                    // `EXECUTE INSERT INTO ...` is Flink's spelling of an INSERT.
                    return self.sql_statement();
                }
                let t = self.p.peek_token();
                Err(SqlError::parse(
                    format!("expected STATEMENT SET BEGIN or INSERT after EXECUTE, found '{}'", t.token),
                    at(&t),
                ))
            }
            Some("BEGIN") if self.peek_word(1).as_deref() == Some("STATEMENT") => {
                self.p.next_token();
                if !self.eat_words(&["STATEMENT", "SET"]) {
                    let t = self.p.peek_token();
                    return Err(SqlError::parse(
                        format!("expected BEGIN STATEMENT SET, found '{}'", t.token),
                        at(&t),
                    ));
                }
                self.statement_set()
            }
            Some("CREATE") if self.peek_word(1).as_deref() == Some("TABLE") => {
                self.p.next_token();
                self.p.next_token();
                self.create_table()
            }
            Some("CREATE")
                if self.peek_word(1).as_deref() == Some("VIEW")
                    || (self.peek_word(1).as_deref() == Some("OR")
                        && self.peek_word(2).as_deref() == Some("REPLACE")
                        && self.peek_word(3).as_deref() == Some("VIEW")) =>
            {
                self.p.next_token();
                let or_replace = self.eat_words(&["OR", "REPLACE"]);
                self.p.next_token();
                let if_not_exists = self.eat_words(&["IF", "NOT", "EXISTS"]);
                let name = self.object_name()?;
                if self.p.peek_token().token == Token::LParen {
                    return Err(SqlError::unsupported(
                        "a column list on CREATE VIEW is not supported; name the columns in the query (AS)",
                    ));
                }
                if self.eat_word("COMMENT") {
                    self.string()?;
                }
                if !self.eat_word("AS") {
                    let t = self.p.peek_token();
                    return Err(SqlError::parse(
                        format!("expected AS and the view's query, found '{}'", t.token),
                        at(&t),
                    ));
                }
                let query = self.p.parse_query().map_err(parser_error)?;
                Ok(FlinkStatement::CreateView {
                    name,
                    if_not_exists,
                    or_replace,
                    query,
                })
            }
            Some("DROP") if self.peek_word(1).as_deref() == Some("VIEW") => {
                self.p.next_token();
                self.p.next_token();
                let if_exists = self.eat_words(&["IF", "EXISTS"]);
                Ok(FlinkStatement::DropView {
                    name: self.object_name()?,
                    if_exists,
                })
            }
            Some("CREATE") if self.peek_word(1).as_deref() == Some("TEMPORARY") => Err(
                SqlError::unsupported("CREATE TEMPORARY TABLE is not supported: tables in Weir are Kafka topics; use CREATE TABLE"),
            ),
            Some("DROP") if self.peek_word(1).as_deref() == Some("TABLE") => {
                self.p.next_token();
                self.p.next_token();
                let if_exists = self.eat_words(&["IF", "EXISTS"]);
                Ok(FlinkStatement::DropTable {
                    name: self.object_name()?,
                    if_exists,
                })
            }
            Some("ALTER") if self.peek_word(1).as_deref() == Some("TABLE") => {
                self.p.next_token();
                self.p.next_token();
                let if_exists = self.eat_words(&["IF", "EXISTS"]);
                let name = self.object_name()?;
                if self.eat_word("SET") {
                    let options = self.options()?;
                    return Ok(FlinkStatement::AlterTableSet { name, options });
                }
                let change = self.alter_change()?;
                Ok(FlinkStatement::AlterTable {
                    name,
                    if_exists,
                    change,
                })
            }
            Some("SELECT") | Some("WITH") | Some("VALUES") | Some("INSERT") => self.sql_statement(),
            _ if first.token == Token::LParen => self.sql_statement(),
            _ => Err(SqlError::parse(
                format!(
                    "'{}' does not start a statement Weir knows; expected SELECT, INSERT INTO, EXECUTE STATEMENT SET, CREATE TABLE, CREATE VIEW, DROP TABLE, DROP VIEW, ALTER TABLE, SHOW, DESCRIBE, USE, SET, RESET or EXPLAIN",
                    first.token
                ),
                at(&first),
            )),
        }
    }

    /// The `INSERT`s of a statement set after its `BEGIN`, up to `END`.
    fn statement_set(&mut self) -> Result<FlinkStatement, SqlError> {
        let mut inserts = vec![];
        loop {
            while self.p.consume_token(&Token::SemiColon) {}
            if self.eat_word("END") {
                break;
            }
            let t = self.p.peek_token();
            if t.token == Token::EOF {
                return Err(SqlError::parse(
                    "the statement set has no END; close it with END after its last INSERT",
                    at(&t),
                ));
            }
            if self.peek_word(0).as_deref() != Some("INSERT") {
                return Err(SqlError::parse(
                    format!(
                        "a statement set holds INSERT INTO statements only, found '{}'",
                        t.token
                    ),
                    at(&t),
                ));
            }
            if inserts.len() == crate::limits::MAX_STATEMENT_SET_INSERTS {
                return Err(SqlError::parse(
                    format!(
                        "a statement set holds at most {} INSERTs; split it into several statement sets",
                        crate::limits::MAX_STATEMENT_SET_INSERTS
                    ),
                    at(&t),
                ));
            }
            match self.sql_statement()? {
                insert @ FlinkStatement::Insert { .. } => inserts.push(insert),
                _ => {
                    return Err(SqlError::parse(
                        "a statement set holds INSERT INTO statements only",
                        at(&t),
                    ))
                }
            }
            let next = self.p.peek_token();
            if next.token != Token::SemiColon && self.peek_word(0).is_none_or(|w| w != "END") {
                return Err(SqlError::parse(
                    format!("expected ';' after the INSERT, found '{}'", next.token),
                    at(&next),
                ));
            }
        }
        if inserts.is_empty() {
            return Err(SqlError::parse(
                "the statement set is empty; put one or more INSERT INTO statements between BEGIN and END",
                None,
            ));
        }
        Ok(FlinkStatement::StatementSet(inserts))
    }

    fn show(&mut self) -> Result<FlinkStatement, SqlError> {
        self.p.next_token();
        let kind = if self.eat_word("CATALOGS") {
            ShowKind::Catalogs
        } else if self.eat_word("DATABASES") {
            ShowKind::Databases
        } else if self.eat_word("TABLES") {
            ShowKind::Tables
        } else if self.eat_word("VIEWS") {
            ShowKind::Views
        } else if self.eat_word("FUNCTIONS") {
            ShowKind::Functions
        } else if self.eat_words(&["CURRENT", "CATALOG"]) {
            ShowKind::CurrentCatalog
        } else if self.eat_words(&["CURRENT", "DATABASE"]) {
            ShowKind::CurrentDatabase
        } else if self.eat_words(&["CREATE", "TABLE"]) || self.eat_words(&["CREATE", "VIEW"]) {
            ShowKind::CreateTable(self.object_name()?)
        } else {
            let t = self.p.peek_token();
            return Err(SqlError::parse(
                format!("expected CATALOGS, DATABASES, TABLES, VIEWS, FUNCTIONS, CURRENT CATALOG, CURRENT DATABASE, CREATE TABLE or CREATE VIEW after SHOW, found '{}'", t.token),
                at(&t),
            ));
        };
        Ok(FlinkStatement::Show(kind))
    }

    fn sql_statement(&mut self) -> Result<FlinkStatement, SqlError> {
        let start = self.p.peek_token();
        let stmt = self.p.parse_statement().map_err(parser_error)?;
        match stmt {
            Statement::Query(q) => Ok(FlinkStatement::Query(q)),
            Statement::Insert(ins) => {
                let table = match ins.table {
                    TableObject::TableName(n) => n,
                    other => {
                        return Err(SqlError::parse(
                            format!("INSERT INTO takes a table name, not '{other}'"),
                            at(&start),
                        ))
                    }
                };
                if ins.overwrite {
                    return Err(SqlError::unsupported(
                        "INSERT OVERWRITE is not supported on Kafka tables; use INSERT INTO",
                    ));
                }
                let query = ins.source.ok_or_else(|| {
                    SqlError::parse("INSERT INTO needs a SELECT or VALUES", at(&start))
                })?;
                Ok(FlinkStatement::Insert {
                    table,
                    columns: ins
                        .columns
                        .iter()
                        .map(|c| c.to_string().trim_matches('`').to_string())
                        .collect(),
                    query,
                })
            }
            other => Err(SqlError::unsupported(format!(
                "this statement is not supported: {other}"
            ))),
        }
    }

    fn options(&mut self) -> Result<BTreeMap<String, String>, SqlError> {
        self.expect(Token::LParen)?;
        let mut opts = BTreeMap::new();
        if self.p.consume_token(&Token::RParen) {
            return Ok(opts);
        }
        loop {
            let k = self.string()?;
            self.expect(Token::Eq)?;
            let v = self.string()?;
            opts.insert(k, v);
            if !self.p.consume_token(&Token::Comma) {
                break;
            }
        }
        self.expect(Token::RParen)?;
        Ok(opts)
    }

    fn create_table(&mut self) -> Result<FlinkStatement, SqlError> {
        let if_not_exists = self.eat_words(&["IF", "NOT", "EXISTS"]);
        let name = self.object_name()?;
        let table_name = name
            .0
            .last()
            .map(|p| {
                p.as_ident()
                    .map(|i| i.value.clone())
                    .unwrap_or_else(|| p.to_string())
            })
            .unwrap_or_default();
        let mut def = empty_table(table_name);
        if self.p.consume_token(&Token::LParen) {
            loop {
                self.table_element(&mut def)?;
                if !self.p.consume_token(&Token::Comma) {
                    break;
                }
            }
            self.expect(Token::RParen)?;
        }
        if self.eat_word("COMMENT") {
            let c = self.string()?;
            def.options.insert("comment".into(), c);
        }
        if self.eat_words(&["PARTITIONED", "BY"]) {
            return Err(SqlError::unsupported(
                "PARTITIONED BY is not supported on Kafka tables; use DISTRIBUTED BY HASH(...) INTO n BUCKETS",
            ));
        }
        if self.eat_word("DISTRIBUTED") {
            let mut dist = Distribution {
                columns: vec![],
                buckets: None,
            };
            if self.eat_word("BY") {
                let _ = self.eat_word("HASH");
                self.expect(Token::LParen)?;
                loop {
                    dist.columns.push(self.ident()?);
                    if !self.p.consume_token(&Token::Comma) {
                        break;
                    }
                }
                self.expect(Token::RParen)?;
            }
            if self.eat_word("INTO") {
                let t = self.p.peek_token();
                let n = self.uint()?;
                if n == 0 || n > 10_000 {
                    return Err(SqlError::validation(
                        format!("INTO {n} BUCKETS: the bucket count must be between 1 and 10000"),
                        at(&t),
                    ));
                }
                dist.buckets = Some(n as u32);
                self.expect_word("BUCKETS")?;
            }
            def.distribution = Some(dist);
        }
        if self.eat_word("WITH") {
            def.options.extend(self.options()?);
        }
        if def
            .options
            .get("connector")
            .is_some_and(|c| c != "confluent" && c != "kafka")
        {
            return Err(SqlError::validation(
                format!(
                    "unsupported connector '{}': every Weir table is a Kafka topic; remove 'connector'",
                    def.options["connector"]
                ),
                None,
            ));
        }
        let like = if self.eat_word("LIKE") {
            Some(self.like_clause()?)
        } else {
            None
        };
        let as_query = if self.is_word("AS") {
            let t = self.p.next_token();
            if like.is_some() {
                return Err(SqlError::parse(
                    "CREATE TABLE takes LIKE or AS SELECT, not both",
                    at(&t),
                ));
            }
            Some(self.p.parse_query().map_err(parser_error)?)
        } else {
            None
        };
        if like.is_some() {
            // Checked once merged with the source table.
            return Ok(FlinkStatement::CreateTable {
                name,
                if_not_exists,
                def,
                as_query: None,
                like,
            });
        }
        if def.columns.is_empty() && as_query.is_none() {
            return Err(SqlError::parse(
                "CREATE TABLE needs a column list or AS SELECT",
                None,
            ));
        }
        validate_table(&def)?;
        Ok(FlinkStatement::CreateTable {
            name,
            if_not_exists,
            def,
            as_query,
            like: None,
        })
    }

    /// `LIKE source [( { INCLUDING | EXCLUDING | OVERWRITING } feature, ... )]`.
    fn like_clause(&mut self) -> Result<crate::table_changes::LikeClause, SqlError> {
        use crate::table_changes::{LikeFeature, LikeMode};
        let source = self.object_name()?;
        let mut options = vec![];
        if self.p.consume_token(&Token::LParen) {
            loop {
                let t = self.p.peek_token();
                let mode = if self.eat_word("INCLUDING") {
                    LikeMode::Including
                } else if self.eat_word("EXCLUDING") {
                    LikeMode::Excluding
                } else if self.eat_word("OVERWRITING") {
                    LikeMode::Overwriting
                } else {
                    return Err(SqlError::parse(
                        format!(
                            "expected INCLUDING, EXCLUDING or OVERWRITING, found '{}'",
                            t.token
                        ),
                        at(&t),
                    ));
                };
                let t = self.p.peek_token();
                let feature = match self.peek_word(0).as_deref() {
                    Some("ALL") => LikeFeature::All,
                    Some("CONSTRAINTS") => LikeFeature::Constraints,
                    Some("PARTITIONS") | Some("DISTRIBUTION") => LikeFeature::Distribution,
                    Some("GENERATED") => LikeFeature::Generated,
                    Some("OPTIONS") => LikeFeature::Options,
                    Some("WATERMARKS") => LikeFeature::Watermarks,
                    Some("METADATA") => LikeFeature::Metadata,
                    _ => {
                        return Err(SqlError::parse(
                            format!(
                                "expected ALL, CONSTRAINTS, DISTRIBUTION, PARTITIONS, GENERATED, OPTIONS, WATERMARKS or METADATA, found '{}'",
                                t.token
                            ),
                            at(&t),
                        ))
                    }
                };
                self.p.next_token();
                if mode == LikeMode::Overwriting
                    && matches!(
                        feature,
                        LikeFeature::All | LikeFeature::Constraints | LikeFeature::Distribution
                    )
                {
                    return Err(SqlError::parse(
                        "OVERWRITING applies to GENERATED, OPTIONS, WATERMARKS and METADATA only; use INCLUDING or EXCLUDING",
                        at(&t),
                    ));
                }
                options.push((mode, feature));
                if !self.p.consume_token(&Token::Comma) {
                    break;
                }
            }
            self.expect(Token::RParen)?;
        }
        Ok(crate::table_changes::LikeClause { source, options })
    }

    /// What follows `ALTER TABLE name` other than `SET (...)`.
    fn alter_change(&mut self) -> Result<crate::table_changes::AlterChange, SqlError> {
        use crate::table_changes::{AlterChange, DropTarget};
        let t = self.p.peek_token();
        if self.eat_word("RESET") {
            self.expect(Token::LParen)?;
            let keys = self.comma_list(Self::string)?;
            self.expect(Token::RParen)?;
            return Ok(AlterChange::Reset(keys));
        }
        if self.eat_word("ADD") || self.eat_word("MODIFY") {
            let modify = matches!(&t.token, datafusion::sql::sqlparser::tokenizer::Token::Word(w) if w.value.eq_ignore_ascii_case("MODIFY"));
            let mut elements = empty_table(String::new());
            let mut positions = vec![];
            let list = self.p.consume_token(&Token::LParen);
            loop {
                let before = elements.columns.len();
                self.table_element(&mut elements)?;
                if elements.columns.len() > before {
                    let name = elements.columns[before].name.clone();
                    if self.eat_word("FIRST") {
                        positions.push((name, crate::table_changes::ColumnPosition::First));
                    } else if self.eat_word("AFTER") {
                        let after = self.ident()?;
                        positions.push((name, crate::table_changes::ColumnPosition::After(after)));
                    }
                }
                if !list || !self.p.consume_token(&Token::Comma) {
                    break;
                }
            }
            if list {
                self.expect(Token::RParen)?;
            }
            return Ok(if modify {
                AlterChange::Modify {
                    elements,
                    positions,
                }
            } else {
                AlterChange::Add {
                    elements,
                    positions,
                }
            });
        }
        if self.eat_word("DROP") {
            let target = if self.eat_words(&["PRIMARY", "KEY"]) {
                DropTarget::PrimaryKey
            } else if self.eat_word("WATERMARK") {
                DropTarget::Watermark
            } else if self.eat_word("DISTRIBUTION") {
                DropTarget::Distribution
            } else if self.eat_word("CONSTRAINT") {
                self.ident()?;
                DropTarget::PrimaryKey
            } else if self.p.consume_token(&Token::LParen) {
                let cols = self.comma_list(Self::ident)?;
                self.expect(Token::RParen)?;
                DropTarget::Columns(cols)
            } else {
                DropTarget::Columns(vec![self.ident()?])
            };
            return Ok(AlterChange::Drop(target));
        }
        if self.eat_word("RENAME") {
            let from = self.ident()?;
            let t = self.p.peek_token();
            self.expect_word("TO")?;
            let _ = t;
            let to = self.ident()?;
            return Ok(AlterChange::RenameColumn { from, to });
        }
        Err(SqlError::parse(
            format!(
                "expected SET, RESET, ADD, MODIFY, DROP or RENAME after ALTER TABLE name, found '{}'",
                t.token
            ),
            at(&t),
        ))
    }
}

/// A table of SQL's own named `name` (on the topic of its name) with
/// nothing declared yet.
fn empty_table(name: String) -> TableDef {
    TableDef {
        topic: name.clone(),
        name,
        columns: vec![],
        watermark: None,
        primary_key: vec![],
        distribution: None,
        options: BTreeMap::new(),
        origin: TableOrigin::Managed,
        view: None,
    }
}

/// The checks every table definition passes: declared once, keys and
/// watermark on declared columns, option values Weir knows.
pub(crate) fn validate_table(def: &TableDef) -> Result<(), SqlError> {
    {
        let mut seen = std::collections::HashSet::new();
        for c in &def.columns {
            if !seen.insert(c.name.as_str()) {
                return Err(SqlError::validation(
                    format!("column '{}' is declared twice", c.name),
                    None,
                ));
            }
        }
        let check = |col: &str, what: &str| {
            if seen.contains(col) {
                Ok(())
            } else {
                Err(SqlError::validation(
                    format!("{what} names column '{col}', which the table does not declare"),
                    None,
                ))
            }
        };
        for k in &def.primary_key {
            check(k, "PRIMARY KEY")?;
        }
        if let Some(d) = &def.distribution {
            for k in &d.columns {
                check(k, "DISTRIBUTED BY")?;
            }
        }
        if def.changelog_mode() == "upsert" && def.primary_key.is_empty() {
            return Err(SqlError::validation(
                "'changelog.mode' = 'upsert' needs a PRIMARY KEY (...) NOT ENFORCED: an upsert table is keyed by it",
                None,
            ));
        }
        if let Some(w) = &def.watermark {
            check(&w.column, "WATERMARK FOR")?;
            let col = def.columns.iter().find(|c| c.name == w.column).unwrap();
            // A computed column's type is known once it is planned
            // (`Planner::resolve_computed` checks it then).
            let computed = matches!(col.kind, weir_catalog::ColumnKind::Computed { .. });
            if !computed
                && !matches!(
                    col.data_type,
                    SqlType::Timestamp { .. } | SqlType::TimestampLtz { .. }
                )
            {
                return Err(SqlError::validation(
                    format!(
                        "WATERMARK FOR '{}': the column must be TIMESTAMP(3) or TIMESTAMP_LTZ(3), not {}",
                        w.column, col.data_type
                    ),
                    None,
                ));
            }
        }
        for (k, v) in &def.options {
            let allowed: Option<&[&str]> = match k.as_str() {
                "value.format" | "key.format" => Some(&[
                    "json",
                    "raw",
                    "avro",
                    "json-registry",
                    "avro-registry",
                    "proto-registry",
                ]),
                "changelog.mode" => Some(&["append", "upsert", "retract"]),
                "json.timestamp-format.standard"
                | "value.json.timestamp-format.standard"
                | "key.json.timestamp-format.standard" => Some(&["SQL", "ISO-8601"]),
                "scan.startup.mode" => Some(&[
                    "earliest-offset",
                    "latest-offset",
                    "timestamp",
                    "group-offsets",
                    "specific-offsets",
                ]),
                "error-handling.mode" => Some(&["fail", "ignore", "log"]),
                "late-handling.mode" => Some(&["pass-through", "filter"]),
                "sink.delivery-guarantee" => Some(&["exactly-once", "at-least-once"]),
                _ => None,
            };
            if let Some(allowed) = allowed {
                if !allowed.contains(&v.as_str()) {
                    return Err(SqlError::validation(
                        format!(
                            "'{k}' = '{v}' is not valid; use one of: {}",
                            allowed.join(", ")
                        ),
                        None,
                    ));
                }
            }
        }
        Ok(())
    }
}

impl FlinkParser<'_> {
    fn table_element(&mut self, def: &mut TableDef) -> Result<(), SqlError> {
        if self.eat_word("WATERMARK") {
            self.expect_word("FOR")?;
            let column = self.ident()?;
            self.expect_word("AS")?;
            let expr = self.p.parse_expr().map_err(parser_error)?;
            def.watermark = Some(WatermarkSpec {
                column,
                expr: expr.to_string(),
            });
            return Ok(());
        }
        if self.eat_word("CONSTRAINT") {
            self.ident()?;
        }
        if self.eat_words(&["PRIMARY", "KEY"]) {
            self.expect(Token::LParen)?;
            loop {
                def.primary_key.push(self.ident()?);
                if !self.p.consume_token(&Token::Comma) {
                    break;
                }
            }
            self.expect(Token::RParen)?;
            let t = self.p.peek_token();
            if !self.eat_words(&["NOT", "ENFORCED"]) {
                return Err(SqlError::parse(
                    "Flink supports only PRIMARY KEY (...) NOT ENFORCED: add NOT ENFORCED",
                    at(&t),
                ));
            }
            return Ok(());
        }
        let name = self.ident()?;
        if self.eat_word("AS") {
            let expr: Expr = self.p.parse_expr().map_err(parser_error)?;
            let comment = self.comment()?;
            def.columns.push(ColumnSpec {
                name,
                // Resolved when the table is created, from the expression.
                data_type: SqlType::String,
                nullable: true,
                kind: ColumnKind::Computed {
                    expr: expr.to_string(),
                },
                comment,
            });
            return Ok(());
        }
        let data_type = self.data_type()?;
        if self.gt > 0 {
            let t = self.p.peek_token();
            return Err(SqlError::parse(
                format!("the type of column {name} closes one '>' more than it opens"),
                at(&t),
            ));
        }
        let nullable = self.nullability();
        let mut kind = ColumnKind::Physical;
        if self.eat_word("METADATA") {
            let key = if self.eat_word("FROM") {
                self.string()?
            } else {
                name.clone()
            };
            let virtual_ = self.eat_word("VIRTUAL");
            if ![
                "timestamp",
                "partition",
                "offset",
                "headers",
                "timestamp-type",
                "leader-epoch",
                "topic",
            ]
            .contains(&key.as_str())
            {
                return Err(SqlError::validation(
                    format!("unknown metadata key '{key}'; Kafka tables offer timestamp, partition, offset, headers, timestamp-type, leader-epoch and topic"),
                    None,
                ));
            }
            kind = ColumnKind::Metadata { key, virtual_ };
        }
        if self.eat_words(&["PRIMARY", "KEY"]) {
            self.expect_word("NOT")?;
            self.expect_word("ENFORCED")?;
            def.primary_key = vec![name.clone()];
        }
        let comment = self.comment()?;
        def.columns.push(ColumnSpec {
            name,
            data_type,
            nullable,
            kind,
            comment,
        });
        Ok(())
    }

    fn comment(&mut self) -> Result<Option<String>, SqlError> {
        if self.eat_word("COMMENT") {
            Ok(Some(self.string()?))
        } else {
            Ok(None)
        }
    }

    /// `NOT NULL` (false) or `NULL` (true) after a type; none follows a
    /// nested type whose `>>` closed the type around it too.
    fn nullability(&mut self) -> bool {
        if self.gt > 0 {
            return true;
        }
        if self.eat_words(&["NOT", "NULL"]) {
            false
        } else {
            let _ = self.eat_word("NULL");
            true
        }
    }

    fn open_angle(&mut self) -> Result<(), SqlError> {
        self.expect(Token::Lt)
    }

    fn close_angle(&mut self) -> Result<(), SqlError> {
        if self.gt > 0 {
            self.gt -= 1;
            return Ok(());
        }
        let t = self.p.next_token();
        match t.token {
            Token::Gt => Ok(()),
            Token::ShiftRight => {
                self.gt += 1;
                Ok(())
            }
            ref other => Err(SqlError::parse(
                format!("expected '>', found '{other}'"),
                at(&t),
            )),
        }
    }

    fn paren_u64(&mut self) -> Result<Option<u64>, SqlError> {
        if self.p.consume_token(&Token::LParen) {
            let n = self.uint()?;
            self.expect(Token::RParen)?;
            Ok(Some(n))
        } else {
            Ok(None)
        }
    }

    /// A Flink type, e.g. `ROW<a INT NOT NULL, b ARRAY<STRING>>`.
    fn data_type(&mut self) -> Result<SqlType, SqlError> {
        if self.type_depth >= MAX_TYPE_DEPTH {
            let t = self.p.peek_token();
            return Err(SqlError::validation(
                format!("a type nests more than {MAX_TYPE_DEPTH} levels deep"),
                at(&t),
            ));
        }
        self.type_depth += 1;
        let t = self.one_type();
        self.type_depth -= 1;
        t
    }

    fn one_type(&mut self) -> Result<SqlType, SqlError> {
        let t = self.p.next_token();
        let word = match &t.token {
            Token::Word(w) => w.value.to_uppercase(),
            other => {
                return Err(SqlError::parse(
                    format!("expected a data type, found '{other}'"),
                    at(&t),
                ))
            }
        };
        let precision = |p: Option<u64>, default: u8, max: u8| -> Result<u8, SqlError> {
            let p = p.unwrap_or(default as u64);
            if p > max as u64 {
                Err(SqlError::validation(
                    format!("{word}({p}): precision must be between 0 and {max}"),
                    at(&t),
                ))
            } else {
                Ok(p as u8)
            }
        };
        Ok(match word.as_str() {
            "BOOLEAN" | "BOOL" => SqlType::Boolean,
            "TINYINT" => SqlType::TinyInt,
            "SMALLINT" => SqlType::SmallInt,
            "INT" | "INTEGER" => SqlType::Int,
            "BIGINT" => SqlType::BigInt,
            "FLOAT" | "REAL" => SqlType::Float,
            "DOUBLE" => {
                let _ = self.eat_word("PRECISION");
                SqlType::Double
            }
            "DECIMAL" | "DEC" | "NUMERIC" => {
                let (p, s) = if self.p.consume_token(&Token::LParen) {
                    let p = self.uint()?;
                    let s = if self.p.consume_token(&Token::Comma) {
                        self.uint()?
                    } else {
                        0
                    };
                    self.expect(Token::RParen)?;
                    (p, s)
                } else {
                    (10, 0)
                };
                if !(1..=38).contains(&p) || s > p {
                    return Err(SqlError::validation(
                        format!("DECIMAL({p}, {s}): precision must be 1 to 38 and scale at most the precision"),
                        at(&t),
                    ));
                }
                SqlType::Decimal {
                    precision: p as u8,
                    scale: s as i8,
                }
            }
            "CHAR" | "CHARACTER" => SqlType::Char {
                length: self.paren_u64()?.unwrap_or(1) as u32,
            },
            "VARCHAR" => match self.paren_u64()? {
                Some(n) if n < i32::MAX as u64 => SqlType::Varchar { length: n as u32 },
                _ => SqlType::String,
            },
            "STRING" => SqlType::String,
            "BINARY" => SqlType::Binary {
                length: self.paren_u64()?.unwrap_or(1) as u32,
            },
            "VARBINARY" => match self.paren_u64()? {
                Some(n) if n < i32::MAX as u64 => SqlType::Varbinary { length: n as u32 },
                _ => SqlType::Bytes,
            },
            "BYTES" => SqlType::Bytes,
            "DATE" => SqlType::Date,
            "TIME" => {
                let p = precision(self.paren_u64()?, 0, 9)?;
                let _ = self.eat_words(&["WITHOUT", "TIME", "ZONE"]);
                SqlType::Time { precision: p }
            }
            "TIMESTAMP" => {
                let p = precision(self.paren_u64()?, 6, 9)?;
                if self.eat_words(&["WITH", "LOCAL", "TIME", "ZONE"]) {
                    SqlType::TimestampLtz { precision: p }
                } else {
                    let _ = self.eat_words(&["WITHOUT", "TIME", "ZONE"]);
                    SqlType::Timestamp { precision: p }
                }
            }
            "TIMESTAMP_LTZ" => SqlType::TimestampLtz {
                precision: precision(self.paren_u64()?, 6, 9)?,
            },
            "ARRAY" => {
                self.open_angle()?;
                let element = self.data_type()?;
                let element_nullable = self.nullability();
                self.close_angle()?;
                SqlType::Array {
                    element: Box::new(element),
                    element_nullable,
                }
            }
            "MAP" => {
                self.open_angle()?;
                let key = self.data_type()?;
                self.nullability();
                self.expect(Token::Comma)?;
                let value = self.data_type()?;
                let value_nullable = self.nullability();
                self.close_angle()?;
                SqlType::Map {
                    key: Box::new(key),
                    value: Box::new(value),
                    value_nullable,
                }
            }
            "ROW" => {
                let angle = match self.p.peek_token().token {
                    Token::Lt => {
                        self.open_angle()?;
                        true
                    }
                    _ => {
                        self.expect(Token::LParen)?;
                        false
                    }
                };
                let mut fields = vec![];
                loop {
                    let name = self.ident()?;
                    let data_type = self.data_type()?;
                    let nullable = self.nullability();
                    if self.gt == 0 {
                        let _ = self.comment()?;
                    }
                    fields.push(weir_catalog_row_field(name, data_type, nullable));
                    // After `ARRAY<INT>>` this row's own `>` is read: no
                    // field follows.
                    if self.gt > 0 || !self.p.consume_token(&Token::Comma) {
                        break;
                    }
                }
                if angle {
                    self.close_angle()?;
                } else {
                    self.expect(Token::RParen)?;
                }
                SqlType::Row { fields }
            }
            "MULTISET" | "RAW" | "VARIANT" | "STRUCTURED" => {
                return Err(SqlError::unsupported(format!(
                    "the type {word} is not supported yet"
                )))
            }
            _ => {
                return Err(SqlError::parse(
                    format!("unknown data type '{word}'"),
                    at(&t),
                ))
            }
        })
    }
}

fn weir_catalog_row_field(
    name: String,
    data_type: SqlType,
    nullable: bool,
) -> weir_catalog::RowField {
    weir_catalog::RowField {
        name,
        data_type,
        nullable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(sql: &str) -> TableDef {
        match parse(sql).unwrap().statement {
            FlinkStatement::CreateTable { def, .. } => def,
            other => panic!("not a CREATE TABLE: {other:?}"),
        }
    }

    #[test]
    fn flink_create_table_with_every_clause() {
        let def = create(
            "CREATE TABLE IF NOT EXISTS orders (
                order_id BIGINT NOT NULL,
                customer ROW<name STRING, tags ARRAY<ARRAY<INT>>>,
                attrs MAP<STRING, DECIMAL(10, 2)>,
                ts TIMESTAMP(3),
                ltz TIMESTAMP_LTZ(3),
                total AS price * 2,
                price DECIMAL(10, 2),
                kafka_ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
                part INT METADATA FROM 'partition' VIRTUAL,
                WATERMARK FOR ts AS ts - INTERVAL '5' SECOND,
                PRIMARY KEY (order_id) NOT ENFORCED
            ) DISTRIBUTED BY HASH(order_id) INTO 4 BUCKETS
            WITH ('value.format' = 'json', 'scan.startup.mode' = 'earliest-offset')",
        );
        assert_eq!(def.name, "orders");
        assert_eq!(def.columns.len(), 9);
        assert_eq!(def.primary_key, ["order_id"]);
        assert_eq!(def.partitions(), 4);
        assert_eq!(def.watermark.as_ref().unwrap().column, "ts");
        assert_eq!(def.option("scan.startup.mode"), Some("earliest-offset"));
        assert_eq!(
            def.columns[1].data_type.to_string(),
            "ROW<`name` STRING, `tags` ARRAY<ARRAY<INT>>>"
        );
        assert!(matches!(def.columns[5].kind, ColumnKind::Computed { .. }));
        assert_eq!(
            def.columns[7].kind,
            ColumnKind::Metadata {
                key: "timestamp".into(),
                virtual_: true
            }
        );
        assert!(!def.columns[0].nullable);
    }

    #[test]
    fn a_double_angle_closing_two_types_ends_the_row_it_closes() {
        // `>>` closes ARRAY and ROW: `attrs` is the table's column, and
        // NOT NULL the row column's, not fields of the row.
        let def = create(
            "CREATE TABLE t (p ROW<tags ARRAY<STRING>> NOT NULL, attrs MAP<STRING, ARRAY<INT>>, n INT)",
        );
        let names: Vec<&str> = def.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["p", "attrs", "n"]);
        assert_eq!(
            def.columns[0].data_type.to_string(),
            "ROW<`tags` ARRAY<STRING>>"
        );
        assert!(!def.columns[0].nullable);
        assert_eq!(
            def.columns[1].data_type.to_string(),
            "MAP<STRING, ARRAY<INT>>"
        );
        let err = parse("CREATE TABLE t (a ARRAY<INT>>, b INT)").unwrap_err();
        assert!(err.to_string().contains("closes one '>' more"), "{err}");
    }

    #[test]
    fn the_json_timestamp_standard_is_one_flink_knows() {
        let sql = |v: &str| {
            format!("CREATE TABLE t (ts TIMESTAMP(3)) WITH ('value.json.timestamp-format.standard' = '{v}')")
        };
        let def = create(&sql("ISO-8601"));
        assert_eq!(
            def.option("value.json.timestamp-format.standard"),
            Some("ISO-8601")
        );
        let err = parse(&sql("RFC-3339")).unwrap_err().to_string();
        assert!(err.contains("use one of: SQL, ISO-8601"), "{err}");
    }

    #[test]
    fn parse_errors_carry_line_and_column() {
        let err = parse("SELECT a,\n  FROM t WHERE").unwrap_err();
        let (line, _col) = err.position().expect("a position");
        assert_eq!(line, 2);
        let err = parse("CREATE TABLE t (\n  a INTEGR\n)").unwrap_err();
        assert_eq!(err.position(), Some((2, 5)));
        assert!(err.to_string().contains("INTEGR"), "{err}");
    }

    #[test]
    fn metadata_statements() {
        assert_eq!(
            parse("SET 'sql.local-time-zone' = 'UTC';")
                .unwrap()
                .statement,
            FlinkStatement::Set(Some(("sql.local-time-zone".into(), "UTC".into())))
        );
        assert_eq!(
            parse("show tables").unwrap().statement,
            FlinkStatement::Show(ShowKind::Tables)
        );
        assert_eq!(
            parse("USE CATALOG `my env`").unwrap().statement,
            FlinkStatement::UseCatalog("my env".into())
        );
        assert!(matches!(
            parse("EXPLAIN SELECT 1").unwrap().statement,
            FlinkStatement::Explain(_)
        ));
    }

    #[test]
    fn bad_options_are_rejected_with_the_allowed_values() {
        let err =
            parse("CREATE TABLE t (a INT) WITH ('error-handling.mode' = 'skip')").unwrap_err();
        assert!(err.to_string().contains("fail, ignore, log"), "{err}");
    }
}
