//! Everything that speaks to inFlow Cloud: the HTTP client, its pacing, list walking, and the
//! lenient shapes of the documents.

pub mod client;
pub mod model;
pub mod newest;
pub mod pacer;
pub mod walk;

pub use client::{ApiKey, Client, ClientConfig, ClientError, RetryPolicy};
pub use pacer::RateLimits;

/// The API version `audit` is written against; sent in every `Accept` header.
pub const DEFAULT_API_VERSION: &str = "2025-06-24";

/// inFlow Cloud's API address.
pub const DEFAULT_BASE_URL: &str = "https://cloudapi.inflowinventory.com";
