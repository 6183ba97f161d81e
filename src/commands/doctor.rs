//! `audit doctor`: the live checks of [`crate::doctor`], printed as a table or JSON and stored
//! in `api_capabilities` for the ingest.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::{DoctorArgs, GlobalArgs};
use crate::doctor::{BUDGET, Report};
use crate::inflow::RetryPolicy;
use crate::output::{self, Format};

/// Runs `audit doctor`: its exit status, or the error to report.
pub async fn run(global: &GlobalArgs, args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let mut inflow = args.inflow.clone();
    inflow.max_requests = Some(inflow.max_requests.map_or(BUDGET, |m| m.min(BUDGET)));
    let client = super::common::client(&inflow)?;
    // No retry of a 5xx: the answer is reported, not waited out, and the budget stays whole
    // (a 429 is still waited for).
    let client = client.with_retry(RetryPolicy { max_retries: 0, ..client.config().retry });
    let format = match Format::resolve(args.output.format()) {
        Format::Csv => anyhow::bail!("the doctor's report has no CSV form; use --format table or json"),
        f => f,
    };
    let store = super::open_store(global).await?;
    let config = client.config();
    let base_url = shown_url(&config.base_url);
    crate::output::note(&format!(
        "audit doctor: checking company {} at {base_url} with API version {}; at most {} requests, paced under {} a \
         minute and {} an hour.",
        config.company_id,
        config.api_version,
        config.max_requests.unwrap_or(BUDGET),
        config.limits.per_minute,
        config.limits.per_hour
    ));
    let report = crate::doctor::run(&client).await;
    store.record_capabilities(&config.company_id, "doctor", &config.api_version, &report.capabilities()).await?;
    store.close().await;
    let out = crate::output::stdout();
    match format {
        Format::Json => output::write_json(
            out,
            &serde_json::json!({
                "base_url": base_url,
                "company_id": config.company_id,
                "api_version": config.api_version,
                "budget": config.max_requests.unwrap_or(BUDGET),
                "requests": report.requests,
                "exit_status": report.exit_code(),
                "error": report.error,
                "checks": report.checks,
            }),
        )?,
        _ => print_table(out, &report)?,
    }
    if let Some(error) = &report.error {
        crate::output::note(&format!("error: {error}; the checks above are what could be made"));
    }
    Ok(ExitCode::from(report.exit_code()))
}

fn print_table(mut out: impl Write, report: &Report) -> anyhow::Result<()> {
    let mut table = output::table(&["check", "status", "result", "what the ingest does"]);
    // Long answers wrap inside their column, on a terminal or not.
    table.set_content_arrangement(comfy_table::ContentArrangement::Dynamic).set_width(140);
    for c in &report.checks {
        table.add_row(vec![c.label.clone(), c.verdict.label().to_string(), c.result.clone(), c.ingest.clone()]);
    }
    writeln!(out, "{}", crate::output::render(&table))?;
    let verdict = match report.exit_code() {
        0 => "Everything the ingest relies on works.",
        1 => "Something the ingest relies on is MISSING (see the rows above).",
        _ => "The checks could not all be made.",
    };
    writeln!(
        out,
        "{} requests. {verdict} The answers are stored in api_capabilities, where the ingest reads them. \
         To report a problem, send the output of `audit doctor --format json` (it holds no key).",
        report.requests
    )?;
    Ok(())
}

/// The base URL without any user or password in it.
fn shown_url(base_url: &str) -> String {
    match url::Url::parse(base_url) {
        Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string().trim_end_matches('/').to_string()
        }
        _ => base_url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_a_base_url_are_not_shown() {
        assert_eq!(shown_url("https://user:secret@cloudapi.example"), "https://cloudapi.example");
        assert_eq!(shown_url("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
    }
}
