//! Everything that speaks to inFlow Cloud.

pub mod model;
