//! `audit.toml`: the settings a scheduled job would otherwise repeat on every command line
//! (database, company, rate limits, schedule, streams). A flag wins over an environment
//! variable, which wins over the file, which wins over the default. The API key is never read
//! from it: a settings file is copied, shared and committed far more readily than a key file.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clap::ArgMatches;
use clap::parser::ValueSource;
use serde::Deserialize;

use crate::cli::{Cli, Command};

/// The file name looked for in the working folder and in the user's config folder.
pub const FILE_NAME: &str = "audit.toml";

/// The settings a file may hold, all optional.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// As `--database-url`.
    pub database_url: Option<String>,
    /// As `--company-id`.
    pub company_id: Option<String>,
    /// As `--max-per-minute`.
    pub max_per_minute: Option<u32>,
    /// As `--max-per-hour`.
    pub max_per_hour: Option<u32>,
    /// As `audit ingest --every` (a duration such as `1h`).
    pub every: Option<String>,
    /// As `audit ingest --types` (stream names).
    pub types: Option<Vec<String>>,
}

/// The keys [`Settings`] takes, for the message about an unknown one.
const KEYS: &[&str] = &["database_url", "company_id", "max_per_minute", "max_per_hour", "every", "types"];

/// Where settings were looked for, and what was found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Every place looked at, in order.
    pub looked: Vec<PathBuf>,
    /// The file read, if any (the first that exists).
    pub path: Option<PathBuf>,
    /// Its settings (empty without a file).
    pub settings: Settings,
}

/// A settings file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the settings file {path}: {source}; fix it, or name another with --config")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("the settings file {path} is not valid TOML: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// The file holds something that looks like a secret.
    #[error(
        "the settings file {path} holds `{key}`: audit never reads the API key (or any secret) from its settings \
         file; remove that line and set INFLOW_API_KEY, or INFLOW_API_KEY_FILE to a file readable only by you"
    )]
    Secret {
        /// The file.
        path: String,
        /// The offending key.
        key: String,
    },
    /// A key audit does not know (a typo would otherwise be ignored).
    #[error("the settings file {path} has an unknown setting `{key}`; the settings are {}", KEYS.join(", "))]
    Unknown {
        /// The file.
        path: String,
        /// The unknown key.
        key: String,
    },
    /// A known key with a value audit cannot use.
    #[error("the settings file {path} has a bad value for `{key}`: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// The places looked at when no `--config` is given: the working folder, then the user's
/// config folder (`$XDG_CONFIG_HOME/audit`, else `~/.config/audit`).
pub fn search_path() -> Vec<PathBuf> {
    let mut places = vec![PathBuf::from(FILE_NAME)];
    let xdg = std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from).filter(|p| p.is_absolute());
    let home = std::env::var_os("HOME").map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(dir) = xdg.or_else(|| home.map(|h| h.join(".config"))) {
        places.push(dir.join("audit").join(FILE_NAME));
    }
    places
}

/// Reads the settings: from `explicit` (which must exist), or the first file of
/// [`search_path`] that exists, or none.
pub fn load(explicit: Option<&Path>) -> Result<Loaded, ConfigError> {
    let looked = match explicit {
        Some(path) => vec![path.to_path_buf()],
        None => search_path(),
    };
    let found = match explicit {
        Some(path) => Some(path.to_path_buf()),
        None => looked.iter().find(|p| p.is_file()).cloned(),
    };
    let Some(path) = found else { return Ok(Loaded { looked, path: None, settings: Settings::default() }) };
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read { path: shown.clone(), source })?;
    let settings = parse(&text, &shown)?;
    Ok(Loaded { looked, path: Some(path), settings })
}

/// A key that names a secret, at any depth.
fn secret_key(table: &toml::Table) -> Option<String> {
    const WORDS: &[&str] = &["key", "secret", "token", "password"];
    for (name, value) in table {
        let lower = name.to_ascii_lowercase();
        if WORDS.iter().any(|w| lower.contains(w)) {
            return Some(name.clone());
        }
        if let toml::Value::Table(inner) = value
            && let Some(found) = secret_key(inner)
        {
            return Some(format!("{name}.{found}"));
        }
    }
    None
}

/// The settings of a file's text; `path` names it in messages.
pub fn parse(text: &str, path: &str) -> Result<Settings, ConfigError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Parse { path: path.into(), message: e.message().into() })?;
    // Checked before anything else, so that a key is refused even beside an unknown setting.
    if let Some(key) = secret_key(&table) {
        return Err(ConfigError::Secret { path: path.into(), key });
    }
    if let Some(key) = table.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(ConfigError::Unknown { path: path.into(), key: key.clone() });
    }
    let settings: Settings = table.clone().try_into().map_err(|e: toml::de::Error| {
        // The message names the type, not the key: the key is the entry that fails alone.
        let alone = |(k, v): &(&String, &toml::Value)| {
            toml::Table::from_iter([((*k).clone(), (*v).clone())]).try_into::<Settings>().is_err()
        };
        let key = table.iter().find(alone).map_or_else(|| "?".to_string(), |(k, _)| k.clone());
        ConfigError::Invalid { path: path.into(), key, message: e.message().into() }
    })?;
    let invalid = |key: &str, message: String| ConfigError::Invalid { path: path.into(), key: key.into(), message };
    for (key, value) in [("max_per_minute", settings.max_per_minute), ("max_per_hour", settings.max_per_hour)] {
        if value == Some(0) {
            return Err(invalid(key, "must be at least 1".into()));
        }
    }
    if let Some(every) = &settings.every {
        crate::cli::parse_duration(every).map_err(|m| invalid("every", m))?;
    }
    for stream in settings.types.iter().flatten() {
        crate::cli::parse_stream(stream).map_err(|m| invalid("types", m))?;
    }
    if let Some(url) = &settings.database_url {
        url.parse::<crate::store::DatabaseUrl>().map_err(|e| invalid("database_url", e.to_string()))?;
    }
    Ok(settings)
}

/// The file the company id came from, when it came from one (for messages about a filter).
static COMPANY_FROM: OnceLock<(String, PathBuf)> = OnceLock::new();

/// `company_id in PATH` when `company` is the settings file's company.
pub fn company_source(company: &str) -> Option<String> {
    COMPANY_FROM.get().filter(|(c, _)| c == company).map(|(_, p)| format!("company_id in {}", p.display()))
}

/// Whether the user left `id` to its default: neither a flag nor an environment variable set it.
fn unset(matches: &ArgMatches, id: &str) -> bool {
    !matches!(matches.value_source(id), Some(ValueSource::CommandLine | ValueSource::EnvVariable))
}

/// Fills what the command line and the environment left unset from the settings file.
pub fn apply(cli: &mut Cli, matches: &ArgMatches, loaded: &Loaded) -> Result<(), ConfigError> {
    let s = &loaded.settings;
    let Some(path) = &loaded.path else { return Ok(()) };
    if let Some(url) = &s.database_url
        && unset(matches, "database_url")
    {
        cli.global.database_url.clone_from(url);
    }
    let Some((_, sub)) = matches.subcommand() else { return Ok(()) };
    let mut company = None;
    let mut inflow = None;
    match &mut cli.command {
        Command::Ingest(args) => {
            if let Some(every) = &s.every
                && unset(sub, "every")
                && !args.once
            {
                args.every = crate::cli::parse_duration(every).ok();
            }
            if let Some(types) = &s.types
                && unset(sub, "types")
            {
                args.types = types.iter().filter_map(|t| crate::cli::parse_stream(t).ok()).collect();
            }
            inflow = Some(&mut args.inflow);
        }
        Command::Doctor(args) => inflow = Some(&mut args.inflow),
        Command::Snapshot(args) => inflow = Some(&mut args.inflow),
        Command::Timeline(args) => company = Some(&mut args.company.company_id),
        Command::Status(args) => company = Some(&mut args.company.company_id),
        Command::Rebuild(args) => company = Some(&mut args.company.company_id),
        Command::Lookup(args) => company = Some(&mut args.company.company_id),
        Command::Reconcile(args) => company = Some(&mut args.company.company_id),
        Command::Anomalies(args) => company = Some(&mut args.company.company_id),
        Command::Serve(args) => company = Some(&mut args.company_id),
        _ => {}
    }
    if let Some(inflow) = inflow {
        if let Some(n) = s.max_per_minute
            && unset(sub, "max_per_minute")
        {
            inflow.max_per_minute = n;
        }
        if let Some(n) = s.max_per_hour
            && unset(sub, "max_per_hour")
        {
            inflow.max_per_hour = n;
        }
        company = Some(&mut inflow.company_id);
    }
    if let (Some(field), Some(id)) = (company, &s.company_id)
        && unset(sub, "company_id")
    {
        *field = Some(id.clone());
        let _ = COMPANY_FROM.set((id.clone(), path.clone()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_is_read() {
        let s = parse(
            "database_url = \"sqlite://x.db\"\ncompany_id = \"c1\"\nmax_per_minute = 30\nmax_per_hour = 500\n\
             every = \"1h\"\ntypes = [\"sales-orders\", \"stock-transfers\"]\n",
            "audit.toml",
        )
        .unwrap();
        assert_eq!(s.database_url.as_deref(), Some("sqlite://x.db"));
        assert_eq!(s.company_id.as_deref(), Some("c1"));
        assert_eq!((s.max_per_minute, s.max_per_hour), (Some(30), Some(500)));
        assert_eq!(s.every.as_deref(), Some("1h"));
        assert_eq!(s.types.unwrap().len(), 2);
        assert_eq!(parse("", "audit.toml").unwrap(), Settings::default());
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let s = parse(include_str!("../contrib/audit.toml.example"), "audit.toml.example").unwrap();
        assert_eq!((s.max_per_minute, s.max_per_hour), (Some(40), Some(600)));
        assert!(s.database_url.is_some() && s.company_id.is_some());
    }

    #[test]
    fn a_key_is_refused_wherever_it_is_and_never_shown() {
        for text in
            ["api_key = \"sk_live_123\"", "INFLOW_API_KEY = \"sk_live_123\"", "[inflow]\napi_key = \"sk_live_123\""]
        {
            let err = parse(text, "a.toml").unwrap_err().to_string();
            assert!(err.contains("INFLOW_API_KEY") && err.contains("INFLOW_API_KEY_FILE"), "{err}");
            assert!(!err.contains("sk_live_123"), "{err}");
        }
        let err = parse("token = \"x\"", "a.toml").unwrap_err();
        assert!(matches!(err, ConfigError::Secret { .. }), "{err}");
    }

    #[test]
    fn unknown_and_bad_settings_are_named() {
        let err = parse("databse_url = \"sqlite://x.db\"", "a.toml").unwrap_err().to_string();
        assert!(err.contains("unknown setting `databse_url`") && err.contains("database_url"), "{err}");
        let err = parse("max_per_minute = 0", "a.toml").unwrap_err().to_string();
        assert!(err.contains("`max_per_minute`") && err.contains("at least 1"), "{err}");
        let err = parse("max_per_minute = \"many\"", "a.toml").unwrap_err().to_string();
        assert!(err.contains("bad value for `max_per_minute`") && err.contains("a.toml"), "{err}");
        let err = parse("company_id = \"c\"\ntypes = \"sales-orders\"", "a.toml").unwrap_err().to_string();
        assert!(err.contains("bad value for `types`"), "{err}");
        let err = parse("every = \"soon\"", "a.toml").unwrap_err().to_string();
        assert!(err.contains("`every`") && err.contains("soon"), "{err}");
        let err = parse("types = [\"sales\"]", "a.toml").unwrap_err().to_string();
        assert!(err.contains("`types`") && err.contains("unknown stream"), "{err}");
        let err = parse("database_url = \"mysql://x\"", "a.toml").unwrap_err().to_string();
        assert!(err.contains("`database_url`"), "{err}");
        let err = parse("database_url = ", "a.toml").unwrap_err().to_string();
        assert!(err.contains("not valid TOML"), "{err}");
    }

    fn cli(args: &[&str], loaded: &Loaded) -> Cli {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Cli::command().try_get_matches_from(args).unwrap();
        let mut cli = Cli::from_arg_matches(&matches).unwrap();
        apply(&mut cli, &matches, loaded).unwrap();
        cli
    }

    /// Flag over file over default. (The environment's place, between the two, is shown by
    /// tests/cli.rs, which sets variables in a child process only.)
    #[test]
    fn a_flag_wins_over_the_file_which_wins_over_the_default() {
        let loaded = Loaded {
            looked: vec![],
            path: Some("audit.toml".into()),
            settings: parse("database_url = \"sqlite://file.db\"\nmax_per_minute = 20\nevery = \"1h\"", "audit.toml")
                .unwrap(),
        };
        let Cli { global, command } = cli(&["audit", "ingest"], &loaded);
        assert_eq!(global.database_url, "sqlite://file.db");
        let Command::Ingest(args) = command else { panic!() };
        assert_eq!(args.inflow.max_per_minute, 20);
        assert_eq!(args.inflow.max_per_hour, 1000, "default kept");
        assert_eq!(args.every, Some(std::time::Duration::from_secs(3600)));

        let Command::Ingest(args) = cli(&["audit", "ingest", "--once"], &loaded).command else { panic!() };
        assert_eq!(args.every, None, "--once overrides the file's every");

        let Cli { global, command } =
            cli(&["audit", "--database-url", "sqlite://flag.db", "ingest", "--max-per-minute", "5"], &loaded);
        assert_eq!(global.database_url, "sqlite://flag.db");
        let Command::Ingest(args) = command else { panic!() };
        assert_eq!(args.inflow.max_per_minute, 5);

        let none = Loaded::default();
        let Cli { global, .. } = cli(&["audit", "status"], &none);
        assert_eq!(global.database_url, "sqlite://audit.db");
    }

    #[test]
    fn an_explicit_file_must_exist_and_the_search_ends_at_the_first_found() {
        let err = load(Some(Path::new("/nonexistent/audit.toml"))).unwrap_err().to_string();
        assert!(err.contains("cannot read the settings file /nonexistent/audit.toml"), "{err}");
        let places = search_path();
        assert_eq!(places[0], PathBuf::from("audit.toml"));
        assert!(places.iter().skip(1).all(|p| p.ends_with("audit/audit.toml")), "{places:?}");
    }
}
