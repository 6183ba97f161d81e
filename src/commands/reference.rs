//! `audit completions` and `audit man`: the command line's own reference, generated from the
//! clap definitions so that it cannot drift from them.

use std::io::Write;
use std::process::ExitCode;

/// `audit completions SHELL`: the completion script on stdout.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut out = crate::output::stdout();
    clap_complete::generate(shell, &mut crate::cli::command(), "audit", &mut out);
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `audit man`: the manual page (roff) on stdout.
pub fn man() -> anyhow::Result<ExitCode> {
    let mut out = crate::output::stdout();
    clap_mangen::Man::new(crate::cli::command()).render(&mut out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `audit config`: where settings were looked for, the file read, and what it set.
pub fn config(global: &crate::cli::GlobalArgs) -> anyhow::Result<ExitCode> {
    let loaded = crate::config::load(global.config.as_deref())?;
    let mut out = crate::output::stdout();
    writeln!(out, "Settings files looked for, in order (the first found is read):")?;
    for place in &loaded.looked {
        let state = if loaded.path.as_ref() == Some(place) {
            "read"
        } else if place.is_file() {
            "not read (an earlier one was)"
        } else {
            "not found"
        };
        writeln!(out, "  {}  ({state})", place.display())?;
    }
    let Some(path) = &loaded.path else {
        writeln!(out, "No settings file: flags, environment variables and defaults apply.")?;
        writeln!(out, "An example: contrib/audit.toml.example in audit's repository.")?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    };
    let s = &loaded.settings;
    writeln!(out, "Settings from {} (a flag or environment variable wins over each):", path.display())?;
    let url = s.database_url.as_deref().map(crate::store::url::redact);
    let every = s.every.clone();
    let types = s.types.as_ref().map(|t| t.join(","));
    for (key, value) in [
        ("database_url", url),
        ("company_id", s.company_id.clone()),
        ("max_per_minute", s.max_per_minute.map(|n| n.to_string())),
        ("max_per_hour", s.max_per_hour.map(|n| n.to_string())),
        ("every", every),
        ("types", types),
    ] {
        if let Some(value) = value {
            writeln!(out, "  {key} = {}", crate::output::printable(&value))?;
        }
    }
    writeln!(out, "The API key is never read from it: INFLOW_API_KEY or INFLOW_API_KEY_FILE.")?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    fn script(shell: clap_complete::Shell) -> String {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut crate::cli::command(), "audit", &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_bash_completion_parses_and_completes_the_commands() {
        let bash = script(clap_complete::Shell::Bash);
        let path = std::env::temp_dir().join(format!("audit-completion-{}.bash", std::process::id()));
        std::fs::write(&path, &bash).unwrap();
        let status = std::process::Command::new("bash").arg("-n").arg(&path).status().expect("bash runs");
        std::fs::remove_file(&path).ok();
        assert!(status.success(), "bash -n rejected the completion script");
        for word in ["timeline", "anomalies", "doctor", "--database-url", "--api-key-file"] {
            assert!(bash.contains(word), "{word} missing from the bash completion");
        }
    }

    #[test]
    fn every_shell_gets_a_script_naming_the_commands() {
        for (shell, marker) in [
            (clap_complete::Shell::Zsh, "#compdef audit"),
            (clap_complete::Shell::Fish, "complete -c audit"),
            (clap_complete::Shell::PowerShell, "Register-ArgumentCompleter"),
        ] {
            let text = script(shell);
            assert!(text.contains(marker), "{shell}: no {marker}");
            assert!(text.contains("timeline") && text.contains("reconcile"), "{shell}: commands missing");
        }
    }

    #[test]
    fn the_man_page_is_roff_with_every_command() {
        let mut out = Vec::new();
        clap_mangen::Man::new(crate::cli::command()).render(&mut out).unwrap();
        let page = String::from_utf8(out).unwrap();
        assert!(page.starts_with(".ie") || page.contains(".TH audit 1"), "{}", &page[..200.min(page.len())]);
        assert!(page.contains(".SH NAME") && page.contains(".SH SUBCOMMANDS"), "sections missing");
        for command in ["audit\\-ingest", "audit\\-timeline", "audit\\-doctor"] {
            assert!(page.contains(command), "{command} missing");
        }
    }
}
