use weir_catalog::CatalogError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlErrorKind {
    /// The text is not Flink SQL.
    Parse,
    /// Well-formed, but names something that does not exist or mixes types.
    Validation,
    /// Valid Flink SQL that Weir does not run yet.
    Unsupported,
    /// The named object already exists.
    Conflict,
}

/// An error in a user's SQL, with its position when the text has one.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("{message}")]
    User {
        kind: SqlErrorKind,
        message: String,
        /// 1-based line and column.
        position: Option<(u64, u64)>,
    },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

impl SqlError {
    pub fn parse(message: impl Into<String>, position: Option<(u64, u64)>) -> SqlError {
        SqlError::User {
            kind: SqlErrorKind::Parse,
            message: message.into(),
            position,
        }
    }

    pub fn validation(message: impl Into<String>, position: Option<(u64, u64)>) -> SqlError {
        SqlError::User {
            kind: SqlErrorKind::Validation,
            message: message.into(),
            position,
        }
    }

    pub fn conflict(message: impl Into<String>) -> SqlError {
        SqlError::User {
            kind: SqlErrorKind::Conflict,
            message: message.into(),
            position: None,
        }
    }

    pub fn unsupported(message: impl Into<String>) -> SqlError {
        SqlError::User {
            kind: SqlErrorKind::Unsupported,
            message: message.into(),
            position: None,
        }
    }

    pub fn kind(&self) -> Option<SqlErrorKind> {
        match self {
            SqlError::User { kind, .. } => Some(*kind),
            SqlError::Catalog(_) => None,
        }
    }

    pub fn position(&self) -> Option<(u64, u64)> {
        match self {
            SqlError::User { position, .. } => *position,
            SqlError::Catalog(_) => None,
        }
    }

    /// Fills in `at` as the position when the error has none.
    pub(crate) fn or_at(self, at: Option<(u64, u64)>) -> SqlError {
        match self {
            SqlError::User {
                kind,
                message,
                position: None,
            } => SqlError::User {
                kind,
                message,
                position: at,
            },
            other => other,
        }
    }

    /// Fills in a position when the error has none, by locating `needle` in `sql`.
    pub fn locate_in(self, sql: &str, needle: Option<&str>) -> SqlError {
        match self {
            SqlError::User {
                kind,
                message,
                position: None,
            } => {
                let position = needle.and_then(|n| find_word(sql, n));
                SqlError::User {
                    kind,
                    message,
                    position,
                }
            }
            other => other,
        }
    }
}

/// The 1-based (line, column) of the first whole-word occurrence of `word`.
pub(crate) fn find_word(sql: &str, word: &str) -> Option<(u64, u64)> {
    if word.is_empty() {
        return None;
    }
    let lower = sql.to_lowercase();
    let w = word.to_lowercase();
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    let mut start = 0;
    while let Some(i) = lower[start..].find(&w) {
        let at = start + i;
        let before = lower[..at].chars().next_back();
        let after = lower[at + w.len()..].chars().next();
        if !before.is_some_and(is_word) && !after.is_some_and(is_word) {
            return Some(offset_to_position(sql, at));
        }
        start = at + w.len();
    }
    None
}

pub(crate) fn offset_to_position(sql: &str, offset: usize) -> (u64, u64) {
    let before = &sql[..offset];
    let line = before.matches('\n').count() as u64 + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0) as u64
        + 1;
    (line, column)
}

/// Pulls "Line: X, Column: Y" out of a sqlparser error message.
pub(crate) fn position_in_message(msg: &str) -> Option<(u64, u64)> {
    let i = msg.rfind("Line: ")?;
    let rest = &msg[i + 6..];
    let (line, rest) = rest.split_once(", Column: ")?;
    let col: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    Some((line.trim().parse().ok()?, col.parse().ok()?))
}

/// A sqlparser error message without its " at Line: X, Column: Y" tail.
pub(crate) fn strip_position(msg: &str) -> String {
    let msg = msg.strip_prefix("sql parser error: ").unwrap_or(msg);
    match msg.rfind(" at Line: ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}
