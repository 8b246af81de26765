//! `weir shell`: an interactive SQL shell, as Flink's SQL client and the
//! managed service's `flink shell` are. Line editing and history (kept in
//! the CLI's configuration directory), statements ended by `;` over as
//! many lines as they take, Tab completion from the live catalog, `SET`,
//! `RESET` and `USE` that hold for the session, and a query's results as a
//! live table (or its raw changelog) with its phase and row count. Ctrl-C
//! stops the query on screen and keeps the shell.

mod complete;
mod split;
mod table;

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use rustyline::completion::Completer;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{CompletionType, Config, Editor, Helper};
use weir_api::{Client, ClientError, CreateStatementRequest, Phase, Statement, StatementSpec};

use crate::client_cmds::{config_dir, Conn};
use table::ResultTable;

/// The label of the shell's own catalog lookups.
const INTERNAL_LABEL: &str = "weir.dev/shell-internal";
/// Flink's SQL client's key for how results are shown.
const RESULT_MODE: &str = "sql-client.execution.result-mode";

#[derive(clap::Args)]
pub struct ShellArgs {
    #[command(flatten)]
    conn: Conn,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    /// The changelog applied: the rows as they are now.
    Table,
    /// Every change as it arrives, with its kind.
    Changelog,
}

struct ShellHelper {
    vocab: complete::Shared,
}

impl Completer for ShellHelper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let vocab = self.vocab.read().unwrap_or_else(|e| e.into_inner());
        Ok(complete::complete(&vocab, line, pos))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {}

impl Validator for ShellHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        Ok(if input_is_complete(ctx.input()) {
            ValidationResult::Valid(None)
        } else {
            ValidationResult::Incomplete
        })
    }
}

impl Helper for ShellHelper {}

/// Enter runs the input when it is empty, a shell command, or ends with a
/// complete statement; otherwise it starts a new line of the statement.
fn input_is_complete(input: &str) -> bool {
    let t = input.trim();
    if t.is_empty() || command_word(t).is_some() {
        return true;
    }
    let (done, rest) = split::split(input);
    !done.is_empty() && split::is_blank(&rest)
}

/// A shell command that needs no `;`.
fn command_word(t: &str) -> Option<&'static str> {
    let w = t.trim_end_matches(';').trim().to_ascii_lowercase();
    match w.as_str() {
        "quit" | "exit" | "\\q" => Some("quit"),
        "help" | "\\h" | "?" => Some("help"),
        "clear" => Some("clear"),
        _ => None,
    }
}

const HELP: &str = "\
Statements end with ';' and may span lines. Tab completes keywords, functions, tables and columns.
  SELECT ...;                  runs the query and shows its rows live; Ctrl-C stops it
  INSERT INTO ...;             starts a statement that keeps running (weir statement ... manages it)
  CREATE / ALTER / DROP ...;   DDL, SHOW ..., DESCRIBE ..., EXPLAIN ...
  SET 'key' = 'value';         a property of every statement this session runs (SET; lists them)
  RESET 'key';  RESET;         forgets one, or all
  USE CATALOG env;  USE db;    the catalog (environment) and database names resolve in
  SET 'sql-client.execution.result-mode' = 'changelog';   every change with its kind (+I -U +U -D)
  SET 'sql-client.execution.result-mode' = 'table';       the rows as they are now (the default)
  help  clear  quit            (Ctrl-D quits too)";

struct Session {
    client: Client,
    pool: Option<String>,
    props: BTreeMap<String, String>,
    mode: Mode,
    vocab: complete::Shared,
    tty: bool,
}

pub async fn run(a: ShellArgs) -> anyhow::Result<()> {
    let client = a.conn.client()?;
    let mut session = Session {
        pool: a.conn.pool(),
        client,
        props: BTreeMap::new(),
        mode: Mode::Table,
        vocab: Default::default(),
        tty: std::io::stdout().is_terminal(),
    };
    session.refresh_vocabulary();
    let config = Config::builder()
        .max_history_size(10_000)?
        .auto_add_history(false)
        .completion_type(CompletionType::List)
        .build();
    let mut rl: Editor<ShellHelper, FileHistory> = Editor::with_config(config)?;
    rl.set_helper(Some(ShellHelper {
        vocab: session.vocab.clone(),
    }));
    let history = config_dir().join("shell_history");
    let _ = rl.load_history(&history);
    if session.tty {
        println!(
            "Weir SQL shell, environment {}. Statements end with ';'. Ctrl-C stops a query, Ctrl-D leaves; help lists commands.",
            session.client.env()
        );
    }
    loop {
        let prompt = "weir> ";
        let read = tokio::task::block_in_place(|| rl.readline(prompt));
        let text = match read {
            Ok(t) => t,
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(rustyline::error::ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        if text.trim().is_empty() {
            continue;
        }
        let _ = rl.add_history_entry(text.as_str());
        if let Some(dir) = history.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = rl.save_history(&history) {
            eprintln!("(history not saved to {}: {e})", history.display());
        }
        if let Some(cmd) = command_word(text.trim()) {
            match cmd {
                "quit" => break,
                "help" => println!("{HELP}"),
                _ => {
                    let _ = rl.clear_screen();
                }
            }
            continue;
        }
        let (statements, rest) = split::split(&text);
        for sql in statements {
            if !session.execute(&sql).await {
                return Ok(());
            }
        }
        if !split::is_blank(&rest) {
            // Only at the end of piped input: what was left had no `;`.
            println!("(ignored, no ';' at its end: {})", rest.trim());
        }
    }
    Ok(())
}

/// A name as written: backquotes off.
fn unquote(s: &str) -> String {
    s.trim().trim_matches('`').trim_matches('\'').to_string()
}

/// `'key' = 'value'` (quotes optional).
fn key_value(s: &str) -> Option<(String, String)> {
    let (k, v) = s.split_once('=')?;
    Some((unquote(k), unquote(v)))
}

impl Session {
    /// Runs one statement or session command; `false` to leave the shell.
    async fn execute(&mut self, sql: &str) -> bool {
        let words: Vec<&str> = sql.split_whitespace().collect();
        let first = words
            .first()
            .map(|w| w.to_ascii_uppercase())
            .unwrap_or_default();
        if command_word(sql) == Some("quit") {
            return false;
        }
        if command_word(sql) == Some("help") {
            println!("{HELP}");
            return true;
        }
        match first.as_str() {
            "SET" => self.set(sql[3..].trim()),
            "RESET" => {
                let key = unquote(&sql[5..]);
                if key.is_empty() {
                    self.props.clear();
                    self.mode = Mode::Table;
                    println!("[INFO] All session properties have been reset.");
                } else {
                    if key == RESULT_MODE {
                        self.mode = Mode::Table;
                    }
                    self.props.remove(&key);
                    println!("[INFO] Session property '{key}' has been reset.");
                }
            }
            "USE" => self.use_(&words[1..]),
            _ => self.statement(sql).await,
        }
        true
    }

    fn set(&mut self, rest: &str) {
        if rest.is_empty() {
            println!(
                "'{RESULT_MODE}' = '{}'",
                match self.mode {
                    Mode::Table => "table",
                    Mode::Changelog => "changelog",
                }
            );
            for (k, v) in &self.props {
                println!("'{k}' = '{v}'");
            }
            return;
        }
        let Some((k, v)) = key_value(rest) else {
            println!("Error: write SET 'key' = 'value'; (SET; lists the session's properties)");
            return;
        };
        if k == RESULT_MODE {
            self.mode = match v.to_ascii_lowercase().as_str() {
                "table" => Mode::Table,
                "changelog" | "tableau" => Mode::Changelog,
                other => {
                    println!("Error: '{RESULT_MODE}' is table or changelog, not '{other}'");
                    return;
                }
            };
        } else {
            self.props.insert(k, v);
            if self.props.contains_key("sql.current-catalog") {
                self.refresh_vocabulary();
            }
        }
        println!("[INFO] Session property has been set.");
    }

    fn use_(&mut self, words: &[&str]) {
        match words {
            [c, name] if c.eq_ignore_ascii_case("CATALOG") => {
                self.props
                    .insert("sql.current-catalog".into(), unquote(name));
                self.props.remove("sql.current-database");
            }
            [name] if !name.eq_ignore_ascii_case("CATALOG") => {
                let name = name.trim_end_matches(';');
                let parts: Vec<&str> = name.splitn(2, '.').collect();
                if let [c, d] = parts[..] {
                    self.props.insert("sql.current-catalog".into(), unquote(c));
                    self.props.insert("sql.current-database".into(), unquote(d));
                } else {
                    self.props
                        .insert("sql.current-database".into(), unquote(name));
                }
            }
            _ => {
                println!(
                    "Error: write USE CATALOG name; or USE database; or USE catalog.database;"
                );
                return;
            }
        }
        println!("[INFO] Using {}.", self.where_());
        self.refresh_vocabulary();
    }

    fn where_(&self) -> String {
        let c = self.props.get("sql.current-catalog");
        let d = self.props.get("sql.current-database");
        match (c, d) {
            (Some(c), Some(d)) => format!("catalog `{c}`, database `{d}`"),
            (Some(c), None) => format!("catalog `{c}` (its default database)"),
            (None, Some(d)) => format!("database `{d}`"),
            (None, None) => "the environment's defaults".into(),
        }
    }

    /// Reloads the names Tab offers, in the background.
    fn refresh_vocabulary(&self) {
        let client = self.client.clone();
        let props = self.props.clone();
        let vocab = self.vocab.clone();
        let generation = {
            let mut v = vocab.write().unwrap_or_else(|e| e.into_inner());
            v.started += 1;
            v.started
        };
        tokio::spawn(async move {
            let functions = client
                .query("SHOW FUNCTIONS", props.clone(), INTERNAL_LABEL)
                .await;
            let columns = client
                .query(
                    "SELECT TABLE_NAME, COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS",
                    props,
                    INTERNAL_LABEL,
                )
                .await;
            let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
            let mut v = vocab.write().unwrap_or_else(|e| e.into_inner());
            if v.generation > generation {
                return;
            }
            v.generation = generation;
            if let Ok(rows) = functions {
                v.functions = rows.iter().filter_map(|r| r.first()).map(text).collect();
            }
            if let Ok(rows) = columns {
                v.columns = rows
                    .iter()
                    .filter(|r| r.len() >= 2)
                    .map(|r| (text(&r[0]), text(&r[1])))
                    .collect();
                let mut tables: Vec<String> = v.columns.iter().map(|(t, _)| t.clone()).collect();
                tables.sort();
                tables.dedup();
                v.tables = tables;
            }
        });
    }

    async fn statement(&mut self, sql: &str) {
        let req = CreateStatementRequest {
            name: None,
            metadata: None,
            spec: StatementSpec {
                statement: sql.to_string(),
                compute_pool_id: self.pool.clone(),
                properties: self.props.clone(),
                ..Default::default()
            },
        };
        let st = match self.client.create_statement(&req).await {
            Ok(st) => st,
            Err(e) => {
                print_error(sql, &e);
                return;
            }
        };
        let name = st.name.clone();
        let started = tokio::select! {
            s = self.wait_started(&name) => s,
            _ = tokio::signal::ctrl_c() => {
                let _ = self.client.delete_statement(&name).await;
                println!("\nCancelled; statement {name} deleted.");
                return;
            }
        };
        let st = match started {
            Ok(st) => st,
            Err(e) => {
                print_error(sql, &e);
                return;
            }
        };
        if st.status.phase == Phase::Failed {
            print_failure(sql, &st.status.detail);
            return;
        }
        let traits = st.status.traits.clone().unwrap_or_default();
        let kind = traits.sql_kind.as_str();
        if ["CREATE", "DROP", "ALTER"]
            .iter()
            .any(|k| kind.starts_with(k))
        {
            self.refresh_vocabulary();
        }
        let columns: Vec<String> = traits
            .schema
            .as_ref()
            .map(|s| s.columns.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default();
        if kind.starts_with("INSERT") || kind.contains("STATEMENT_SET") {
            println!(
                "Statement {name} is {}: it keeps running after this shell (weir statement stop {name} stops it).",
                st.status.phase
            );
        } else if columns.is_empty() {
            let detail = if st.status.detail.is_empty() {
                "OK".to_string()
            } else {
                st.status.detail.clone()
            };
            println!("[INFO] {detail}");
        } else {
            let key = traits
                .upsert_columns
                .map(|k| k.into_iter().map(|i| i as usize).collect());
            self.results(sql, &name, ResultTable::new(columns, key))
                .await;
        }
    }

    /// Polls until the statement leaves `PENDING`, saying so when that
    /// takes a while (a worker is starting).
    async fn wait_started(&self, name: &str) -> Result<Statement, ClientError> {
        let began = Instant::now();
        let mut said = false;
        loop {
            let st = self.client.get_statement(name).await?;
            if st.status.phase != Phase::Pending {
                if said {
                    println!();
                }
                return Ok(st);
            }
            if !said && began.elapsed() > Duration::from_secs(2) {
                print!("Waiting for the statement to start (PENDING{})…", {
                    let d = &st.status.detail;
                    if d.is_empty() {
                        String::new()
                    } else {
                        format!(": {d}")
                    }
                });
                let _ = std::io::stdout().flush();
                said = true;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Shows a query's results until it ends or Ctrl-C; the statement is
    /// deleted afterwards (it was the shell's, to look at).
    async fn results(&mut self, sql: &str, name: &str, mut table: ResultTable) {
        let mut view = View {
            tty: self.tty,
            mode: self.mode,
            drawn: 0,
            phase: Phase::Running,
            last_draw: Instant::now() - Duration::from_secs(1),
            header_done: false,
        };
        let mut next: Option<String> = None;
        let mut checked = Instant::now();
        let stop = tokio::signal::ctrl_c();
        tokio::pin!(stop);
        let outcome: Result<&str, String> = loop {
            let step = async {
                let page = self.client.results(name, next.as_deref()).await?;
                if page.results.data.is_empty() && !page.metadata.next.is_empty() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Ok::<_, ClientError>(page)
            };
            tokio::select! {
                _ = &mut stop => break Ok("Stopped"),
                page = step => {
                    let page = match page {
                        Ok(p) => p,
                        Err(e) => break Err(e.to_string()),
                    };
                    let fresh: Vec<(u8, Vec<serde_json::Value>)> =
                        page.results.data.into_iter().map(|r| (r.op, r.row)).collect();
                    let done = page.metadata.next.is_empty();
                    if checked.elapsed() > Duration::from_secs(1) || done {
                        checked = Instant::now();
                        if let Ok(st) = self.client.get_statement(name).await {
                            view.phase = st.status.phase;
                            if st.status.phase == Phase::Failed {
                                view.draw(&mut table, fresh, true);
                                break Err(st.status.detail);
                            }
                        }
                    }
                    view.draw(&mut table, fresh, done);
                    if done {
                        break Ok("Done");
                    }
                    next = Some(page.metadata.next);
                }
            }
        };
        let _ = self.client.delete_statement(name).await;
        match outcome {
            Ok("Stopped") => {
                view.phase = Phase::Stopped;
                view.draw(&mut table, vec![], true);
                println!("Query stopped; statement {name} deleted.");
            }
            Ok(_) => {}
            Err(detail) => print_failure(sql, &detail),
        }
    }
}

/// The screen of a running query.
struct View {
    tty: bool,
    mode: Mode,
    /// Lines drawn last time (redrawn in place on a terminal).
    drawn: usize,
    phase: Phase,
    last_draw: Instant,
    header_done: bool,
}

impl View {
    /// Applies `changes` and shows them: on a terminal the table is redrawn
    /// in place (at most ten times a second, and at the end); elsewhere it
    /// is printed once, at the end.
    fn draw(
        &mut self,
        table: &mut ResultTable,
        changes: Vec<(u8, Vec<serde_json::Value>)>,
        last: bool,
    ) {
        let (width, height) = terminal_size();
        let width = width.saturating_sub(1).max(20);
        let mut out = String::new();
        let mut lines = Vec::new();
        for (op, row) in changes {
            if self.mode == Mode::Changelog {
                lines.push(table::changelog_line(op, &row, width));
            }
            table.apply(op, row);
        }
        if self.mode == Mode::Table
            && !last
            && (!self.tty || self.last_draw.elapsed() < Duration::from_millis(100))
        {
            // Drawn at the end, or by the next page.
            return;
        }
        if self.tty && self.drawn > 0 {
            // Back to the first line drawn last time, and clear from there.
            out.push_str(&format!("\x1b[{}F\x1b[J", self.drawn));
        }
        self.drawn = 0;
        match self.mode {
            Mode::Changelog => {
                if !self.header_done {
                    out.push_str(&format!("op | {}\n", table.columns.join(" | ")));
                    self.header_done = true;
                }
                for l in lines {
                    out.push_str(&l);
                    out.push('\n');
                }
            }
            Mode::Table => {
                let max_rows = if self.tty {
                    height.saturating_sub(5).max(3)
                } else {
                    usize::MAX
                };
                for l in table.render(width, max_rows) {
                    out.push_str(&l);
                    out.push('\n');
                    self.drawn += 1;
                }
            }
        }
        let dropped = if table.dropped > 0 {
            format!(" (the oldest {} dropped)", table.dropped)
        } else {
            String::new()
        };
        let status = match self.mode {
            Mode::Table => format!(
                "{} · {} rows{dropped} · {} changes",
                self.phase,
                table.len(),
                table.changes
            ),
            Mode::Changelog => format!("{} · {} changes", self.phase, table.changes),
        };
        if last {
            out.push_str(&format!("{status}\n"));
            self.drawn = 0;
        } else if self.tty {
            out.push_str(&format!("{status} · Ctrl-C stops\n"));
            // The changes scroll; only the status line is redrawn.
            self.drawn = if self.mode == Mode::Changelog {
                1
            } else {
                self.drawn + 1
            };
        }
        self.last_draw = Instant::now();
        print!("{out}");
        let _ = std::io::stdout().flush();
    }
}

/// The terminal's columns and rows (80×24 when it is not one).
fn terminal_size() -> (usize, usize) {
    // SAFETY: TIOCGWINSZ fills a winsize; a failed call leaves it zeroed.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    if ok && ws.ws_col > 0 && ws.ws_row > 0 {
        (ws.ws_col as usize, ws.ws_row as usize)
    } else {
        (80, 24)
    }
}

/// Weir's error, with the statement's line and a caret under the column.
fn print_error(sql: &str, e: &ClientError) {
    match e {
        ClientError::Api { body, .. } => {
            for item in &body.errors {
                println!("Error: {}", item.detail);
                if let Some(src) = &item.source {
                    if let (Some(l), Some(c)) = (src.line, src.column) {
                        print_caret(sql, l as usize, c as usize);
                    }
                }
            }
        }
        other => println!("Error: {}", weir_api::with_causes(other)),
    }
}

/// A failed statement's detail, with a caret when it names a line and
/// column (`... (line 2, column 7)`).
fn print_failure(sql: &str, detail: &str) {
    println!("Error: {detail}");
    if let Some((l, c)) = line_and_column(detail) {
        print_caret(sql, l, c);
    }
}

fn line_and_column(detail: &str) -> Option<(usize, usize)> {
    let at = detail.rfind("(line ")?;
    let rest = &detail[at + 6..];
    let (l, rest) = rest.split_once(", column ")?;
    let c = rest.split(|ch: char| !ch.is_ascii_digit()).next()?;
    Some((l.trim().parse().ok()?, c.parse().ok()?))
}

fn print_caret(sql: &str, line: usize, column: usize) {
    let Some(text) = sql.lines().nth(line.saturating_sub(1)) else {
        return;
    };
    let (shown, at) = around(text, column.saturating_sub(1));
    // Tabs keep their width under the caret.
    let pad: String = shown
        .chars()
        .take(at)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    println!("{line:>4} | {shown}");
    println!("     | {pad}^");
}

/// At most 100 characters of `text` around character `at`, with `…` where
/// it is cut, and where `at` is in what is shown.
fn around(text: &str, at: usize) -> (String, usize) {
    const BEFORE: usize = 60;
    const AFTER: usize = 40;
    let chars: Vec<char> = text.chars().collect();
    let from = at.saturating_sub(BEFORE);
    let to = (at + AFTER).min(chars.len());
    let mut shown = String::new();
    let mut caret = at - from;
    if from > 0 {
        shown.push('…');
        caret += 1;
    }
    shown.extend(&chars[from.min(chars.len())..to]);
    if to < chars.len() {
        shown.push('…');
    }
    (shown, caret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enter_runs_commands_and_finished_statements_and_continues_others() {
        assert!(input_is_complete(""));
        assert!(input_is_complete("quit"));
        assert!(input_is_complete("help"));
        assert!(input_is_complete("SELECT 1;"));
        assert!(input_is_complete("SELECT 1; -- done"));
        assert!(!input_is_complete("SELECT 1"));
        assert!(!input_is_complete("SELECT ';'"));
        assert!(!input_is_complete("SELECT 1; SELECT 2"));
    }

    #[test]
    fn a_failure_names_its_line_and_column() {
        assert_eq!(
            line_and_column("table 'x' does not exist (line 2, column 6)"),
            Some((2, 6))
        );
        assert_eq!(line_and_column("no position here"), None);
        assert_eq!(
            key_value("'a.b' = 'c d'"),
            Some(("a.b".into(), "c d".into()))
        );
        assert_eq!(unquote(" `my db` "), "my db");
    }

    #[test]
    fn a_long_line_is_cut_around_the_caret() {
        assert_eq!(around("SELECT nope", 7), ("SELECT nope".to_string(), 7));
        let long = format!("{}X{}", "a".repeat(500), "b".repeat(500));
        let (shown, at) = around(&long, 500);
        assert_eq!(shown.chars().nth(at), Some('X'));
        assert!(shown.starts_with('…') && shown.ends_with('…'), "{shown}");
        assert!(shown.chars().count() <= 102, "{shown}");
    }
}
