use serde::{Deserialize, Serialize};

/// Every error response of the API has this shape:
/// `{"errors": [{"status", "code", "title", "detail", "source"}]}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ErrorBody {
    pub errors: Vec<ErrorItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ErrorItem {
    /// The HTTP status, as a string (`"400"`).
    pub status: String,
    /// A stable machine-readable code (`invalid_sql`, `not_found`, ...).
    pub code: String,
    /// A short summary of the kind of error.
    pub title: String,
    /// What went wrong and what to do about it.
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ErrorSource>,
}

/// Where in the request the error is: a JSON pointer and, for SQL, the
/// 1-based line and column.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ErrorSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u64>,
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.title, e.detail)?;
            if let Some(ErrorSource {
                line: Some(l),
                column: Some(c),
                ..
            }) = &e.source
            {
                write!(f, " (line {l}, column {c})")?;
            }
        }
        Ok(())
    }
}

/// An error with its causes, as one line: "error sending request" alone
/// does not say that a certificate or a connection was refused.
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let s = cause.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = cause.source();
    }
    text
}
