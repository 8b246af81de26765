//! An identity pool's filter: which tokens of its provider become the
//! pool's principal. The language is the subset of CEL the managed
//! service's examples use, over the token's `claims`:
//!
//! ```text
//! claims.iss == "https://idp.example" && "flink" in claims.groups
//! has(claims.email) && !(claims.sub == 'blocked') || claims["cid"] == 42
//! ```
//!
//! Comparisons are `==` and `!=` against a string, number or boolean;
//! `"x" in claims.list` tests membership; `has(path)` presence; `&&`, `||`,
//! `!` and parentheses combine them. A comparison with a claim the token
//! does not have is an error, and an error anywhere (not absorbed by
//! `false &&` or `true ||`) means the token does not match: a missing claim
//! never grants access.

use serde_json::Value;

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Bool(bool),
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// `path == lit` (`equal`) or `path != lit`.
    Compare {
        path: Vec<String>,
        equal: bool,
        literal: Value,
    },
    /// `lit in path`.
    In {
        literal: Value,
        path: Vec<String>,
    },
    /// `has(path)`.
    Has(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Num(f64),
    Sym(&'static str),
}

/// The longest filter or claim path accepted.
pub const MAX_FILTER_CHARS: usize = 4096;
/// How deeply parentheses and `!` may nest.
const MAX_NESTING: usize = 64;

fn tokens(text: &str) -> Result<Vec<(usize, Token)>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = vec![];
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let at = i + 1;
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push((at, Token::Ident(chars[start..i].iter().collect())));
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            let n = s
                .parse::<f64>()
                .map_err(|_| format!("column {at}: '{s}' is not a number"))?;
            out.push((at, Token::Num(n)));
        } else if c == '"' || c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(format!("column {at}: the string is not closed")),
                    Some(&q) if q == c => break,
                    Some('\\') => {
                        match chars.get(i + 1) {
                            Some('n') => s.push('\n'),
                            Some('t') => s.push('\t'),
                            Some(&e) => s.push(e),
                            None => return Err(format!("column {at}: the string is not closed")),
                        }
                        i += 2;
                        continue;
                    }
                    Some(&ch) => s.push(ch),
                }
                i += 1;
            }
            i += 1;
            out.push((at, Token::Str(s)));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let sym = match two.as_str() {
                "==" => Some("=="),
                "!=" => Some("!="),
                "&&" => Some("&&"),
                "||" => Some("||"),
                _ => None,
            };
            if let Some(s) = sym {
                out.push((at, Token::Sym(s)));
                i += 2;
                continue;
            }
            let sym = match c {
                '!' => "!",
                '(' => "(",
                ')' => ")",
                '.' => ".",
                '[' => "[",
                ']' => "]",
                _ => return Err(format!("column {at}: '{c}' is not part of a filter")),
            };
            out.push((at, Token::Sym(sym)));
            i += 1;
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    at: usize,
    end: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|t| &t.1)
    }
    fn column(&self) -> usize {
        self.tokens.get(self.at).map(|t| t.0).unwrap_or(self.end)
    }
    fn fail<T>(&self, what: &str) -> Result<T, String> {
        let found = match self.peek() {
            None => "the end".to_string(),
            Some(Token::Ident(s)) => format!("'{s}'"),
            Some(Token::Str(s)) => format!("\"{s}\""),
            Some(Token::Num(n)) => format!("{n}"),
            Some(Token::Sym(s)) => format!("'{s}'"),
        };
        Err(format!(
            "column {}: expected {what}, found {found}",
            self.column()
        ))
    }
    fn eat(&mut self, sym: &str) -> bool {
        if matches!(self.peek(), Some(Token::Sym(s)) if *s == sym) {
            self.at += 1;
            true
        } else {
            false
        }
    }
    fn or(&mut self) -> Result<Expr, String> {
        let mut e = self.and()?;
        while self.eat("||") {
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut e = self.unary()?;
        while self.eat("&&") {
            e = Expr::And(Box::new(e), Box::new(self.unary()?));
        }
        Ok(e)
    }
    fn unary(&mut self) -> Result<Expr, String> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return self.fail(&format!("at most {MAX_NESTING} nested '!' and '('"));
        }
        let e = if self.eat("!") {
            Expr::Not(Box::new(self.unary()?))
        } else if self.eat("(") {
            let e = self.or()?;
            if !self.eat(")") {
                return self.fail("')'");
            }
            e
        } else {
            self.primary()?
        };
        self.depth -= 1;
        Ok(e)
    }
    fn literal(&mut self) -> Option<Value> {
        let v = match self.peek()? {
            Token::Str(s) => Value::String(s.clone()),
            Token::Num(n) => serde_json::Number::from_f64(*n).map(Value::Number)?,
            Token::Ident(s) if s == "true" => Value::Bool(true),
            Token::Ident(s) if s == "false" => Value::Bool(false),
            _ => return None,
        };
        self.at += 1;
        Some(v)
    }
    fn primary(&mut self) -> Result<Expr, String> {
        if let Some(Token::Ident(s)) = self.peek() {
            if s == "has" {
                self.at += 1;
                if !self.eat("(") {
                    return self.fail("'(' after has");
                }
                let p = self.path()?;
                if !self.eat(")") {
                    return self.fail("')'");
                }
                return Ok(Expr::Has(p));
            }
            if s == "claims" {
                let path = self.path()?;
                let equal = if self.eat("==") {
                    true
                } else if self.eat("!=") {
                    false
                } else {
                    return self.fail("'==' or '!=' after the claim");
                };
                let Some(literal) = self.literal() else {
                    return self.fail("a string, number, true or false");
                };
                return Ok(Expr::Compare {
                    path,
                    equal,
                    literal,
                });
            }
        }
        let Some(literal) = self.literal() else {
            return self.fail("a comparison with claims.<name>, has(...), '!' or '('");
        };
        match (&literal, self.peek()) {
            (_, Some(Token::Ident(s))) if s == "in" => {
                self.at += 1;
                let path = self.path()?;
                Ok(Expr::In { literal, path })
            }
            (Value::Bool(b), _) => Ok(Expr::Bool(*b)),
            _ => self.fail("'in' after the literal"),
        }
    }
    /// `claims.a.b` or `claims["a"]`: the names after `claims`.
    fn path(&mut self) -> Result<Vec<String>, String> {
        match self.peek() {
            Some(Token::Ident(s)) if s == "claims" => self.at += 1,
            _ => return self.fail("claims"),
        }
        let mut path = vec![];
        loop {
            if self.eat(".") {
                match self.peek() {
                    Some(Token::Ident(s)) => {
                        path.push(s.clone());
                        self.at += 1;
                    }
                    _ => return self.fail("a claim name after '.'"),
                }
            } else if self.eat("[") {
                match self.peek() {
                    Some(Token::Str(s)) => {
                        path.push(s.clone());
                        self.at += 1;
                    }
                    _ => return self.fail("a quoted claim name after '['"),
                }
                if !self.eat("]") {
                    return self.fail("']'");
                }
            } else {
                break;
            }
        }
        if path.is_empty() {
            return self.fail("'.' and a claim name after claims");
        }
        Ok(path)
    }
}

/// Parses a filter; the error names the column.
pub fn parse(text: &str) -> Result<Expr, String> {
    if text.chars().count() > MAX_FILTER_CHARS {
        return Err(format!("a filter is at most {MAX_FILTER_CHARS} characters"));
    }
    let tokens = tokens(text)?;
    if tokens.is_empty() {
        return Err("the filter is empty; `true` admits every token of the provider".into());
    }
    let mut p = Parser {
        tokens,
        at: 0,
        end: text.chars().count() + 1,
        depth: 0,
    };
    let e = p.or()?;
    if p.at < p.tokens.len() {
        return p.fail("'&&', '||' or the end");
    }
    Ok(e)
}

/// Parses a claim path such as `claims.sub` (an identity claim).
pub fn parse_path(text: &str) -> Result<Vec<String>, String> {
    let tokens = tokens(text)?;
    let mut p = Parser {
        tokens,
        at: 0,
        end: text.chars().count() + 1,
        depth: 0,
    };
    let path = p.path()?;
    if p.at < p.tokens.len() {
        return p.fail("the end of the claim path");
    }
    Ok(path)
}

/// The claim at `path`, if the token has it.
pub fn lookup<'a>(claims: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(claims, |v, k| v.get(k))
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

impl Expr {
    /// `Some(result)`, or `None` for an error (a missing claim, `in` on a
    /// claim that is not a list).
    fn eval(&self, claims: &Value) -> Option<bool> {
        match self {
            Expr::Bool(b) => Some(*b),
            Expr::Or(a, b) => match (a.eval(claims), b.eval(claims)) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
            Expr::And(a, b) => match (a.eval(claims), b.eval(claims)) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            Expr::Not(e) => e.eval(claims).map(|b| !b),
            Expr::Compare {
                path,
                equal,
                literal,
            } => lookup(claims, path).map(|v| same(v, literal) == *equal),
            Expr::In { literal, path } => match lookup(claims, path)? {
                Value::Array(items) => Some(items.iter().any(|i| same(i, literal))),
                _ => None,
            },
            Expr::Has(path) => Some(lookup(claims, path).is_some()),
        }
    }

    /// Whether a token with these (verified) claims matches.
    pub fn matches(&self, claims: &Value) -> bool {
        self.eval(claims) == Some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(filter: &str, claims: Value) -> bool {
        parse(filter).unwrap().matches(&claims)
    }

    #[test]
    fn filters_compare_test_membership_and_presence() {
        let c = json!({"sub": "alice", "groups": ["flink", "ops"], "n": 42, "ok": true,
                       "ext": {"team": "data"}, "odd key": "x"});
        assert!(m(r#"claims.sub == "alice""#, c.clone()));
        assert!(!m(r#"claims.sub == 'bob'"#, c.clone()));
        assert!(m(r#"claims.sub != "bob""#, c.clone()));
        assert!(m(
            r#""flink" in claims.groups && claims.n == 42"#,
            c.clone()
        ));
        assert!(!m(r#""admin" in claims.groups"#, c.clone()));
        assert!(m(
            r#"claims.ext.team == "data" && claims.ok == true"#,
            c.clone()
        ));
        assert!(m(r#"claims["odd key"] == "x""#, c.clone()));
        assert!(m(r#"has(claims.ext) && !has(claims.email)"#, c.clone()));
        assert!(m(
            r#"claims.sub == "bob" || (claims.n != 1 && !(claims.ok == false))"#,
            c.clone()
        ));
        assert!(m("true", c.clone()));
        assert!(!m("false", c.clone()));
    }

    #[test]
    fn a_missing_claim_never_grants() {
        let c = json!({"sub": "alice", "groups": "flink"});
        assert!(!m(r#"claims.team != "ops""#, c.clone()));
        assert!(!m(r#"!(claims.team == "ops")"#, c.clone()));
        // `in` wants a list.
        assert!(!m(r#""flink" in claims.groups"#, c.clone()));
        // An error is absorbed only where the answer does not depend on it.
        assert!(m(
            r#"claims.sub == "alice" || claims.team == "x""#,
            c.clone()
        ));
        assert!(!m(
            r#"claims.team == "x" || claims.sub == "bob""#,
            c.clone()
        ));
        assert!(!m(r#"claims.sub == "bob" && claims.team == "x""#, c));
    }

    #[test]
    fn bad_filters_name_their_column() {
        for (f, col) in [
            ("claims.sub = 'a'", "column 12"),
            ("claims.sub == ", "column 15"),
            ("claims.sub == 'a' &&", "column 21"),
            ("(claims.sub == 'a'", "column 19"),
            ("claims.sub == 'a", "column 15"),
            ("'a' in groups", "column 8"),
            ("claims == 'a'", "column 8"),
            ("claims.sub == 'a' $", "column 19"),
        ] {
            let e = parse(f).unwrap_err();
            assert!(e.contains(col), "{f}: {e}");
        }
        assert!(parse("").is_err());
        assert!(parse(&"!".repeat(100)).is_err());
        assert!(parse(&format!("{}true{}", "(".repeat(100), ")".repeat(100))).is_err());
        assert_eq!(parse_path("claims.sub").unwrap(), vec!["sub"]);
        assert!(parse_path("claims.sub == 'a'").is_err());
        assert!(parse_path("sub").is_err());
    }
}
