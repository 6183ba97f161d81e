//! Database URLs: which backend a URL selects, and how to show it without its password.

use std::fmt;
use std::str::FromStr;

/// The database engines `audit` can write to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite: one local file.
    Sqlite,
    /// Postgres: for teams and scale.
    Postgres,
}

impl Backend {
    /// The engine's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "Postgres",
        }
    }
}

/// A database URL whose `Debug` and `Display` never show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    raw: String,
    backend: Backend,
}

/// Why a database URL cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    /// Neither SQLite nor Postgres.
    #[error(
        "unsupported database URL `{url}`: it must start with `sqlite:` (for example \
         `sqlite://audit.db`), `postgres://` or `postgresql://`"
    )]
    UnsupportedScheme {
        /// The URL, its password hidden.
        url: String,
    },
}

impl DatabaseUrl {
    /// Which engine the URL names.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL with its password, for the driver only. Never print or log this.
    pub fn expose(&self) -> &str {
        &self.raw
    }

    /// The URL as it may be printed or logged.
    pub fn redacted(&self) -> String {
        redact(&self.raw)
    }

    /// The file a SQLite URL names; `None` for Postgres, an in-memory database, or a URL the
    /// driver cannot read (which it then reports itself).
    pub fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        if self.backend != Backend::Sqlite {
            return None;
        }
        if self.raw.contains(":memory:") || self.raw.contains("mode=memory") {
            return None;
        }
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(&self.raw).ok()?;
        let path = options.get_filename();
        (!path.as_os_str().is_empty()).then(|| path.to_path_buf())
    }
}

impl FromStr for DatabaseUrl {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let lower = s.to_ascii_lowercase();
        let backend = if lower.starts_with("sqlite:") {
            Backend::Sqlite
        } else if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(UrlError::UnsupportedScheme { url: redact(s) });
        };
        Ok(DatabaseUrl { raw: s.to_string(), backend })
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

/// Replaces the password of `scheme://user:password@host` and of a `password=` query parameter
/// with `***`. Works on strings that are not valid URLs too, since error messages quote those.
pub fn redact(url: &str) -> String {
    // The query first: the user-info step below may hide a stretch that includes the '?'.
    let mut out = redact_query_param(url, "password");
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        // The authority ends at the first '/', '?' or '#'; the password sits before its last '@'.
        // A password with one of those characters left unencoded ends the authority early: then
        // the URL's last '@' before any query parameter (`user=name@server` is common) ends the
        // user info; hiding too much is safe.
        let rest = &out[rest_start..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let at = rest[..authority_end].rfind('@').or_else(|| rest[..rest.find('=').unwrap_or(rest.len())].rfind('@'));
        if let Some(at) = at {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(rest_start + colon + 1..rest_start + at, "***");
            }
        }
    }
    out
}

fn redact_query_param(url: &str, name: &str) -> String {
    let Some(q) = url.find('?') else {
        return url.to_string();
    };
    let (head, query) = url.split_at(q + 1);
    let parts: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case(name) => format!("{k}=***"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{head}{}", parts.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_select_backends() {
        for (url, backend) in [
            ("sqlite://audit.db", Backend::Sqlite),
            ("sqlite:audit.db", Backend::Sqlite),
            ("sqlite::memory:", Backend::Sqlite),
            ("SQLITE:///tmp/a.db", Backend::Sqlite),
            ("postgres://u@h/db", Backend::Postgres),
            ("postgresql://u:p@h:5432/db", Backend::Postgres),
        ] {
            assert_eq!(url.parse::<DatabaseUrl>().unwrap().backend(), backend, "{url}");
        }
    }

    #[test]
    fn other_schemes_are_refused_naming_the_accepted_ones_without_the_password() {
        let err = "mysql://root:hunter2@localhost/db".parse::<DatabaseUrl>().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("mysql://root:***@localhost/db"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
        for accepted in ["sqlite:", "postgres://", "postgresql://"] {
            assert!(msg.contains(accepted), "{msg}");
        }
        assert!("audit.db".parse::<DatabaseUrl>().is_err());
        assert!("".parse::<DatabaseUrl>().is_err());
    }

    #[test]
    fn passwords_are_redacted_everywhere_a_url_is_shown() {
        let url: DatabaseUrl = "postgres://alice:s3cr%40t@db.example:5432/audit?sslmode=require".parse().unwrap();
        let expected = "postgres://alice:***@db.example:5432/audit?sslmode=require";
        assert_eq!(url.redacted(), expected);
        assert_eq!(url.to_string(), expected);
        assert_eq!(format!("{url:?}"), format!("DatabaseUrl({expected})"));
        assert!(url.expose().contains("s3cr%40t"));
    }

    #[test]
    fn sqlite_urls_name_their_file() {
        let file = |u: &str| u.parse::<DatabaseUrl>().unwrap().sqlite_file();
        assert_eq!(file("sqlite://audit.db"), Some("audit.db".into()));
        assert_eq!(file("sqlite:///tmp/a.db?mode=rwc"), Some("/tmp/a.db".into()));
        assert_eq!(file("sqlite::memory:"), None);
        assert_eq!(file("postgres://h/db"), None);
    }

    #[test]
    fn redaction_covers_query_passwords_and_leaves_passwordless_urls_alone() {
        assert_eq!(
            redact("postgres://h/db?user=a&password=pw&sslmode=disable"),
            "postgres://h/db?user=a&password=***&sslmode=disable"
        );
        assert_eq!(redact("postgres://alice@h/db"), "postgres://alice@h/db");
        assert_eq!(redact("sqlite://audit.db"), "sqlite://audit.db");
        // A password containing '@' is still hidden up to the last '@' of the authority.
        assert_eq!(redact("postgres://a:p@ss@h/db"), "postgres://a:***@h/db");
        // So is one with an unencoded '/', '?' or '#' (a base64 password, say).
        for url in
            ["postgres://u:pw/xy@h/db", "postgres://u:pw?xy@h/db", "postgres://u:p#w/xy@h:5432/db?sslmode=disable"]
        {
            let shown = redact(url);
            assert!(!shown.contains("xy"), "{url} shown as {shown}");
            assert!(shown.starts_with("postgres://u:***@h"), "{url} shown as {shown}");
        }
        // An '@' in a query parameter (Azure's `user=name@server`) is not the user info's end.
        assert_eq!(
            redact("postgres://h.example:5432/audit?user=audit@h&password=s3cret"),
            "postgres://h.example:5432/audit?user=audit@h&password=***"
        );
    }
}
