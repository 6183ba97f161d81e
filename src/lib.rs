//! `audit` turns an inFlow Inventory company's transactions into a serial-number audit trail.
//!
//! A map of the crate:
//! - [`cli`]: every clap definition (flags, environment variables, help text).
//! - [`commands`]: one module per subcommand, each with a `run` function.
//! - [`inflow`]: the inFlow Cloud API client and the lenient shapes of its documents.
//! - [`mapping`]: pure functions from one document to its serial events.
//! - [`store`]: SQLite and Postgres behind one interface, and their migrations.
//! - [`simulator`]: a local inFlow API for tests, benchmarks and the demo.

pub mod cli;
pub mod commands;
pub mod inflow;
pub mod mapping;
pub mod simulator;
pub mod store;
