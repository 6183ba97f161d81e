//! `audit` turns an inFlow Inventory company's transactions into a serial-number audit trail.
//!
//! A map of the crate:
//! - [`cli`]: every clap definition (flags, environment variables, help text).
//! - [`commands`]: one module per subcommand, each with a `run` function; [`config`]: the
//!   settings file, `audit.toml`.
//! - [`inflow`]: the inFlow Cloud API client and the lenient shapes of its documents.
//! - [`mapping`]: pure functions from one document to its serial events.
//! - [`anomalies`], [`reconcile`], [`timeline`]: what the read commands tell about the events.
//! - [`sync`]: the engine: ingest, rebuild and snapshot runs; [`doctor`]: the live checks of an
//!   account.
//! - [`store`]: SQLite and Postgres behind one interface, and their migrations.
//! - [`stop`]: stopping a run from outside (signals, a lost lock).
//! - [`web`]: `audit serve`'s pages over the same read functions as the commands.
//! - [`output`]: stdout and stderr for the commands; [`testing`]: crash points for the tests.
//!
//! The inFlow simulator that tests, benchmarks and `audit demo` use is the `inflow-simulator`
//! crate (`simulator/`).

pub mod anomalies;
pub mod cli;
pub mod commands;
pub mod config;
pub mod doctor;
pub mod inflow;
pub mod mapping;
pub mod output;
pub mod reconcile;
pub mod stop;
pub mod store;
pub mod sync;
pub mod testing;
pub mod timeline;
pub mod web;

/// An error and its causes on one line, skipping a cause whose text its parent already quotes
/// (sqlx and io errors often repeat their source in their own message).
pub fn error_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = String::new();
    let mut parent = String::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(cause) = next {
        let text = cause.to_string();
        if !parent.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        parent = text;
        next = cause.source();
    }
    out
}
