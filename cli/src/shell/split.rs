//! Where statements end: `;` outside strings, quoted identifiers and
//! comments, with a statement set (`BEGIN STATEMENT SET; ...; END;` or
//! `EXECUTE STATEMENT SET BEGIN ...; END;`) kept whole.

/// The complete statements of `buf` (without their `;`) and what follows
/// the last one (an unfinished statement, or blanks).
pub fn split(buf: &str) -> (Vec<String>, String) {
    let mut done = Vec::new();
    let mut start = 0;
    let b = buf.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < b.len() {
                    if b[i] == q {
                        // A doubled quote is an escaped one.
                        if i + 1 < b.len() && b[i + 1] == q {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b';' => {
                let text = buf[start..i].trim();
                if in_statement_set(text) {
                    // The set goes on until its END.
                } else {
                    if !text.is_empty() {
                        done.push(text.to_string());
                    }
                    start = i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    (done, buf[start.min(buf.len())..].to_string())
}

/// Whether `text` (up to a `;`) is a statement set not yet ended.
fn in_statement_set(text: &str) -> bool {
    let words: Vec<String> = text
        .split(|c: char| c.is_whitespace() || c == ';')
        .filter(|w| !w.is_empty())
        .map(|w| w.to_ascii_uppercase())
        .collect();
    let opens = words.starts_with(&["BEGIN".into(), "STATEMENT".into(), "SET".into()])
        || words.starts_with(&["EXECUTE".into(), "STATEMENT".into(), "SET".into()]);
    opens && words.last().map(String::as_str) != Some("END")
}

/// Whether what is left after the statements is only blanks and comments.
pub fn is_blank(rest: &str) -> bool {
    let mut s = rest.trim_start();
    loop {
        if let Some(r) = s.strip_prefix("--") {
            s = r.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if let Some(r) = s.strip_prefix("/*") {
            match r.split_once("*/") {
                Some((_, r)) => s = r.trim_start(),
                None => return false,
            }
        } else {
            return s.is_empty();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semicolons_in_strings_identifiers_and_comments_do_not_end_a_statement() {
        let (done, rest) = split("SELECT ';', `a;b`, \"c;d\" -- x;y\nFROM t; SELECT 2");
        assert_eq!(
            done,
            ["SELECT ';', `a;b`, \"c;d\" -- x;y\nFROM t".to_string()]
        );
        assert_eq!(rest.trim(), "SELECT 2");
        let (done, rest) = split("SELECT 'it''s;'; /* a; */ SELECT 1;\n");
        assert_eq!(done, ["SELECT 'it''s;'", "/* a; */ SELECT 1"]);
        assert!(is_blank(&rest));
    }

    #[test]
    fn a_statement_set_is_one_statement_until_its_end() {
        let text = "BEGIN STATEMENT SET;\nINSERT INTO a SELECT 1;\nINSERT INTO b SELECT 2;\n";
        let (done, rest) = split(text);
        assert!(done.is_empty());
        assert_eq!(rest, text);
        let (done, _) = split(&format!("{text}END;"));
        assert_eq!(done.len(), 1);
        assert!(done[0].ends_with("END"), "{done:?}");
        let (done, _) = split("execute statement set begin insert into a select 1; end;");
        assert_eq!(
            done,
            ["execute statement set begin insert into a select 1; end"]
        );
    }

    #[test]
    fn only_comments_left_is_blank() {
        assert!(is_blank("  -- done\n /* and */ "));
        assert!(!is_blank("SELECT"));
        assert!(!is_blank("/* open"));
    }
}
