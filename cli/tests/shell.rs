//! `weir shell` as a person uses it: the real binary in a pseudo-terminal
//! (a tmux pane), keys typed, the screen read back. A query's table
//! updates live as records arrive, Ctrl-C stops it and keeps the shell,
//! Tab completes from the live catalog, errors point at their column, and
//! history survives a restart.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{produce_records, temp_dir, unique, Dev, WEIR};

/// A tmux server of its own, with one pane running `weir shell`.
struct Pane {
    socket: String,
}

impl Pane {
    fn start(dev: &Dev, config_dir: &std::path::Path) -> Pane {
        let socket = unique("weir-shell-test");
        let mut cmd = Command::new("tmux");
        cmd.args(["-L", &socket, "-f", "/dev/null", "new-session", "-d"])
            .args(["-s", "t", "-x", "160", "-y", "50"]);
        for (k, v) in &dev.env {
            cmd.args(["-e", &format!("{k}={v}")]);
        }
        cmd.args(["-e", &format!("WEIR_CONFIG_DIR={}", config_dir.display())])
            .args(["-e", "RUST_BACKTRACE=0"])
            .arg(format!("{WEIR} shell"));
        let out = cmd.output().expect("tmux runs (infra/test.sh installs it)");
        assert!(
            out.status.success(),
            "tmux: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pane = Pane { socket };
        pane.wait_for("the prompt", |s| s.contains("weir>"));
        pane
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Types `text` as keys (no Enter).
    fn type_text(&self, text: &str) {
        // An argument that ends with ';' ends a tmux command: escape it.
        let text = match text.strip_suffix(';') {
            Some(t) => format!("{t}\\;"),
            None => text.to_string(),
        };
        self.tmux(&["send-keys", "-t", "t", "-l", &text]);
    }

    fn key(&self, key: &str) {
        self.tmux(&["send-keys", "-t", "t", key]);
    }

    /// Types a line and Enter.
    fn line(&self, text: &str) {
        self.type_text(text);
        self.key("Enter");
    }

    /// The pane's text, scrollback included.
    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "t", "-S", "-"])
    }

    /// The last non-empty line on screen (where the cursor's input is).
    fn last_line(&self) -> String {
        self.screen()
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default()
            .to_string()
    }

    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "never saw {what}:\n{s}");
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// Whether the pane's process still runs.
    fn alive(&self) -> bool {
        self.tmux(&["list-panes", "-t", "t", "-F", "#{pane_dead}"])
            .trim()
            .starts_with('0')
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
    }
}

fn count_after(screen: &str, marker: &str) -> usize {
    screen.matches(marker).count()
}

#[test]
fn a_live_table_updates_as_records_arrive_and_ctrl_c_stops_it_but_keeps_the_shell() {
    let dir = temp_dir();
    let dev = Dev::start(&dir.join("dev"));
    let pane = Pane::start(&dev, &dir.join("config"));
    let topic = unique("shell_orders");
    pane.line(&format!("CREATE TABLE {topic} (id BIGINT, amount DOUBLE);"));
    pane.wait_for("the table made", |s| s.contains("OK"));
    // SET sticks for the session: the next statement carries it.
    pane.line("SET 'sql.local-time-zone' = 'Asia/Tokyo';");
    pane.wait_for("SET confirmed", |s| {
        s.contains("Session property has been set")
    });
    // A statement over two lines runs at its ';'.
    pane.line("SELECT id, amount");
    std::thread::sleep(Duration::from_millis(300));
    assert!(!pane.screen().contains("RUNNING ·"), "ran before its ';'");
    pane.line(&format!("FROM {topic};"));
    pane.wait_for("the live table", |s| s.contains("RUNNING · 0 rows"));
    let listed = dev.json(&["statement", "list"]);
    let select = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["spec"]["statement"]
                .as_str()
                .unwrap_or_default()
                .starts_with("SELECT id")
        })
        .unwrap_or_else(|| panic!("the shell's query is not listed: {listed}"))
        .clone();
    assert_eq!(
        select["spec"]["properties"]["sql.local-time-zone"], "Asia/Tokyo",
        "{select}"
    );
    produce_records(&support::broker(), &topic, 0..5, None);
    pane.wait_for("5 rows", |s| s.contains("RUNNING · 5 rows"));
    produce_records(&support::broker(), &topic, 5..12, None);
    let screen = pane.wait_for("12 rows", |s| s.contains("RUNNING · 12 rows"));
    // Redrawn in place: one header, not one per update.
    assert_eq!(count_after(&screen, " id | amount"), 1, "{screen}");
    pane.key("C-c");
    pane.wait_for("the query stopped", |s| s.contains("Query stopped"));
    assert!(pane.alive(), "Ctrl-C ended the shell");
    let name = select["name"].as_str().unwrap();
    let listed = dev.json(&["statement", "list"]);
    assert!(!listed.to_string().contains(name), "{listed}");
    // The shell goes on: the raw changelog, switched on by SET.
    pane.line("SET 'sql-client.execution.result-mode' = 'changelog';");
    pane.line(&format!("SELECT id FROM {topic} WHERE id < 3;"));
    let screen = pane.wait_for("the changelog", |s| s.matches("+I | ").count() >= 3);
    assert!(screen.contains("op | id"), "{screen}");
    pane.key("C-c");
    pane.wait_for("the second query stopped", |s| {
        s.matches("Query stopped").count() == 2
    });
    pane.line("quit");
    let deadline = Instant::now() + Duration::from_secs(10);
    while pane.alive() {
        assert!(Instant::now() < deadline, "quit did not leave the shell");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn tab_completes_from_the_catalog_errors_point_at_their_column_and_history_survives_a_restart() {
    let dir = temp_dir();
    let dev = Dev::start(&dir.join("dev"));
    let config = dir.join("config");
    let pane = Pane::start(&dev, &config);
    let topic = unique("shell_zoo");
    pane.line(&format!(
        "CREATE TABLE {topic} (zebra_count BIGINT, name STRING);"
    ));
    pane.wait_for("the table made", |s| s.contains("OK"));
    // The catalog is reloaded after DDL, in the background: try until the
    // new column completes.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        pane.type_text("SELECT zebra_c");
        pane.key("Tab");
        std::thread::sleep(Duration::from_millis(300));
        if pane.last_line().ends_with("SELECT zebra_count") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never completed: {}",
            pane.screen()
        );
        pane.key("C-u");
        std::thread::sleep(Duration::from_millis(500));
    }
    // Tables and keywords complete too.
    // (Other tests' tables share the prefix: type enough to be unique.)
    pane.type_text(&format!(" FROM {}", &topic[..topic.len() - 3]));
    pane.key("Tab");
    pane.wait_for("the table completed", |s| {
        s.lines()
            .any(|l| l.ends_with(&format!("SELECT zebra_count FROM {topic}")))
    });
    pane.key("C-u");
    pane.type_text("sel");
    pane.key("Tab");
    pane.wait_for("a keyword completed", |s| {
        s.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .is_some_and(|l| l.ends_with("weir> select"))
    });
    pane.key("C-u");
    // An error shows its line and a caret under the column.
    pane.line(&format!("SELECT name,\n  nope FROM {topic};"));
    let screen = pane.wait_for("the error", |s| s.contains("     | "));
    let caret = screen
        .lines()
        .find(|l| l.starts_with("     | ") && l.trim_end().ends_with('^'))
        .unwrap_or_else(|| panic!("no caret:\n{screen}"));
    let source = screen
        .lines()
        .find(|l| l.starts_with("   2 | "))
        .unwrap_or_else(|| panic!("no source line:\n{screen}"));
    let col = caret.find('^').unwrap();
    assert_eq!(&source[col..col + 4], "nope", "{screen}");
    // USE holds for the session.
    pane.line("USE `some_db`;");
    // Wait for the answer before typing on: keys sent while the shell is
    // busy can be lost on a loaded machine.
    pane.wait_for("USE's answer", |s| {
        s.contains("[INFO] Using database `some_db`.")
    });
    pane.line("SET;");
    pane.wait_for("the session's database", |s| {
        s.contains("'sql.current-database' = 'some_db'")
    });
    // Leave, come back: the history is there.
    pane.key("C-d");
    let deadline = Instant::now() + Duration::from_secs(10);
    while pane.alive() {
        assert!(Instant::now() < deadline, "Ctrl-D did not leave the shell");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(pane);
    let pane = Pane::start(&dev, &config);
    pane.key("Up");
    pane.wait_for("the last statement recalled", |s| s.contains("weir> SET;"));
    pane.key("Up");
    pane.key("Up");
    pane.wait_for("an older one, over its two lines", |s| {
        s.lines()
            .any(|l| l.contains(&format!("nope FROM {topic};")))
    });
}
