//! JSON text that both databases can store as it is, and the same on both.
//!
//! JSON allows two string escapes that no database text type holds: `\u0000` (Postgres refuses
//! NUL in `text` and `jsonb`; SQLite keeps it but many of its functions stop at it) and a UTF-16
//! surrogate without its partner (`\ud800` alone, which is not a character at all: serde refuses
//! the whole document). One rule, applied before anything is derived or stored, on both backends:
//! such an escape is kept as its own text, by escaping its backslash (`\u0000` becomes `\\u0000`,
//! the six characters `\u0000`). A serial `"AB\u0000C"` is therefore stored as the text
//! `AB\u0000C` on SQLite and Postgres alike, and the document's exact JSON is kept beside it.

use std::borrow::Cow;

/// One escape that had to be kept as text: where it was, and which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptEscape {
    /// The JSON path of the string holding it: `lines[0].quantity.serialNumbers[2]`, or the
    /// object's path and `(a key)` when it is in a property name.
    pub path: String,
    /// The escape as written: `\u0000`, `\ud800`.
    pub escape: String,
}

impl KeptEscape {
    /// What the escape is, for a warning.
    pub fn describe(&self) -> String {
        let what = if self.escape.eq_ignore_ascii_case("\\u0000") { "NUL" } else { "a lone UTF-16 surrogate" };
        format!(
            "{} held {} ({what}), which no database stores as text: kept as the text {}",
            self.path, self.escape, self.escape
        )
    }
}

enum Frame {
    Object { key: Option<String>, expecting_key: bool },
    Array { index: usize },
}

/// Scans a string from `start` (just after its opening quote) to its closing quote: where that
/// is, and the escapes in it that cannot be stored (a NUL, a lone surrogate).
fn scan_string(bytes: &[u8], start: usize) -> (usize, Vec<usize>) {
    let mut j = start;
    let mut bad = Vec::new();
    while j < bytes.len() && bytes[j] != b'"' {
        if bytes[j] != b'\\' {
            j += 1;
            continue;
        }
        if bytes.get(j + 1) != Some(&b'u') {
            j += 2;
            continue;
        }
        let Some(unit) = hex4(bytes, j + 2) else {
            j += 2;
            continue;
        };
        match unit {
            0 => bad.push(j),
            0xD800..=0xDBFF => {
                let pair = bytes.get(j + 6) == Some(&b'\\')
                    && bytes.get(j + 7) == Some(&b'u')
                    && hex4(bytes, j + 8).is_some_and(|low| (0xDC00..=0xDFFF).contains(&low));
                if pair {
                    j += 12;
                    continue;
                }
                bad.push(j);
            }
            0xDC00..=0xDFFF => bad.push(j),
            _ => {}
        }
        j += 6;
    }
    (j, bad)
}

/// The JSON text with every escape that cannot be stored kept as text (see the module docs),
/// and where each was. Borrowed, and no list, in the common case. `raw` must be valid JSON (a
/// parsed `RawValue`); anything else is returned unchanged.
pub fn storable_json(raw: &str) -> (Cow<'_, str>, Vec<KeptEscape>) {
    // Fast path: neither escape can occur without a `\u`.
    if !raw.contains("\\u") {
        return (Cow::Borrowed(raw), Vec::new());
    }
    let bytes = raw.as_bytes();
    let mut stack: Vec<Frame> = Vec::new();
    let mut kept = Vec::new();
    // Byte offsets where a backslash is to be doubled.
    let mut double_at = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => {
                stack.push(Frame::Object { key: None, expecting_key: true });
                i += 1;
            }
            b'[' => {
                stack.push(Frame::Array { index: 0 });
                i += 1;
            }
            b'}' | b']' => {
                stack.pop();
                i += 1;
            }
            b',' => {
                match stack.last_mut() {
                    Some(Frame::Array { index }) => *index += 1,
                    Some(Frame::Object { expecting_key, .. }) => *expecting_key = true,
                    None => {}
                }
                i += 1;
            }
            b':' => {
                if let Some(Frame::Object { expecting_key, .. }) = stack.last_mut() {
                    *expecting_key = false;
                }
                i += 1;
            }
            b'"' => {
                let start = i + 1;
                let (j, bad) = scan_string(bytes, start);
                let is_key = matches!(stack.last(), Some(Frame::Object { expecting_key: true, .. }));
                if !bad.is_empty() {
                    // A key's place is its object's: the object's last key is not part of it.
                    let path = match (is_key, path_of(&stack[..stack.len().saturating_sub(1)])) {
                        (true, object) if object.is_empty() => "a key of the document".to_string(),
                        (true, object) => format!("{object} (a key)"),
                        (false, _) => path_of(&stack),
                    };
                    for &at in &bad {
                        kept.push(KeptEscape { path: path.clone(), escape: raw[at..at + 6].to_string() });
                    }
                    double_at.extend(bad);
                }
                if is_key && let Some(Frame::Object { key, .. }) = stack.last_mut() {
                    *key = Some(raw[start..j.min(bytes.len())].to_string());
                }
                i = j + 1;
            }
            _ => i += 1,
        }
    }
    if double_at.is_empty() {
        return (Cow::Borrowed(raw), Vec::new());
    }
    let mut out = String::with_capacity(raw.len() + double_at.len());
    let mut from = 0;
    for at in double_at {
        out.push_str(&raw[from..at]);
        out.push('\\');
        from = at;
    }
    out.push_str(&raw[from..]);
    (Cow::Owned(out), kept)
}

/// Parses JSON in its storable form: what every reader of inFlow's data uses, so that a NUL or a
/// lone surrogate neither fails the parse nor reaches a database.
pub fn parse_storable<T: serde::de::DeserializeOwned>(raw: &str) -> serde_json::Result<T> {
    serde_json::from_str(&storable_json(raw).0)
}

/// Four hex digits at `at`, as a UTF-16 code unit.
fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = bytes.get(at..at + 4)?;
    let text = std::str::from_utf8(digits).ok()?;
    u32::from_str_radix(text, 16).ok()
}

fn path_of(stack: &[Frame]) -> String {
    let mut path = String::new();
    for frame in stack {
        match frame {
            Frame::Object { key: Some(key), .. } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Frame::Object { key: None, .. } => {}
            Frame::Array { index } => path.push_str(&format!("[{index}]")),
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> serde_json::Value {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn ordinary_json_is_borrowed_untouched() {
        for text in [r#"{"a":"b"}"#, r#"{"a":"\u00e9\n","b":["\ud83d\ude00"]}"#, r#"[1, "\\u0000"]"#] {
            let (out, kept) = storable_json(text);
            assert!(matches!(out, Cow::Borrowed(_)), "{text}");
            assert!(kept.is_empty(), "{text}: {kept:?}");
        }
    }

    #[test]
    fn nul_and_lone_surrogates_are_kept_as_their_text_with_their_paths() {
        let text = r#"{"salesOrderId":"so-1","lines":[{"quantity":{"serialNumbers":["A","AB\u0000C"]}},
            {"description":"x\uD800y","n\u0000k":1,"tail":"\udc00"}],"ok":"\ud83d\ude00"}"#;
        let (out, kept) = storable_json(text);
        let value = parse(&out);
        assert_eq!(value["lines"][0]["quantity"]["serialNumbers"][1], "AB\\u0000C");
        assert_eq!(value["lines"][1]["description"], "x\\uD800y");
        assert_eq!(value["lines"][1]["n\\u0000k"], 1);
        assert_eq!(value["lines"][1]["tail"], "\\udc00");
        assert_eq!(value["ok"], "😀", "a proper surrogate pair is a character");
        let found: Vec<(&str, &str)> = kept.iter().map(|k| (k.path.as_str(), k.escape.as_str())).collect();
        assert_eq!(
            found,
            [
                ("lines[0].quantity.serialNumbers[1]", "\\u0000"),
                ("lines[1].description", "\\uD800"),
                ("lines[1] (a key)", "\\u0000"),
                ("lines[1].tail", "\\udc00"),
            ]
        );
        assert!(kept[0].describe().contains("NUL") && kept[1].describe().contains("surrogate"));
        // The rule is a fixed point: applied again, nothing changes.
        let (again, none) = storable_json(&out);
        assert_eq!(again, out);
        assert!(none.is_empty());
    }

    #[test]
    fn a_high_surrogate_followed_by_another_escape_is_still_lone() {
        let (out, kept) = storable_json(r#"["\ud800\u0041", "\ud800\ud800\udc00"]"#);
        assert_eq!(parse(&out), serde_json::json!(["\\ud800A", "\\ud800\u{10000}"]));
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[1].path, "[1]");
        let (_, kept) = storable_json(r#"{"\u0000":"\u0000"}"#);
        let paths: Vec<&str> = kept.iter().map(|k| k.path.as_str()).collect();
        assert_eq!(paths, ["a key of the document", "\\u0000"]);
    }

    #[test]
    fn escaped_backslashes_are_not_escapes() {
        // `\\u0000` is a backslash and the text u0000: already storable.
        let text = r#"{"a":"\\u0000","b":"\\\u0000"}"#;
        let (out, kept) = storable_json(text);
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert_eq!(kept[0].path, "b");
        assert_eq!(parse(&out)["b"], "\\\\u0000");
    }
}
