//! The `cors` policy.

use crate::units::HumanDuration;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Exact origins (`https://app.example.com`) or `"*"`.
    pub allow_origins: Vec<String>,
    #[serde(default = "d_cors_methods")]
    pub allow_methods: Vec<String>,
    #[serde(default)]
    pub allow_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default)]
    pub allow_credentials: bool,
    #[serde(default)]
    pub max_age: Option<HumanDuration>,
}

fn d_cors_methods() -> Vec<String> {
    ["GET", "HEAD", "POST"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}
