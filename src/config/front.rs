//! `[front_door]`: what every request passes before routing (compiled by `front`).

use crate::units::{HumanDuration, HumanSize};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What every request passes before routing: the canonical path and the request-head limits.
/// Reloadable, except `h2_max_concurrent_streams` and the HTTP/2 header-list size (taken from
/// `max_head_size`), which are set when a connection's HTTP/2 session starts.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FrontDoorConfig {
    /// Merge repeated slashes in the path (nginx and Envoy `merge_slashes`).
    pub merge_slashes: bool,
    /// `%2F` and `%5C` in the path: "reject" (400), "keep" (stay encoded) or "decode" (to `/`).
    pub escaped_slash: SlashActionConfig,
    /// `;` in a path segment: "reject" (400), "keep", or "strip" (`/a;x/b` is `/a/b`).
    pub path_parameters: PathParamsConfig,
    /// The whole request head (request line and fields); beyond it 431.
    pub max_head_size: HumanSize,
    /// Header fields in one request; beyond it 431.
    pub max_headers: usize,
    /// The request line; beyond it 414.
    pub max_request_line: HumanSize,
    /// From the first byte of a request to the end of its head; then 408 and close.
    pub header_timeout: HumanDuration,
    /// A keep-alive connection waiting for its next request is closed after this.
    pub idle_timeout: HumanDuration,
    /// Longest wait for the next piece of a request body.
    pub body_timeout: HumanDuration,
    /// Requests on one HTTP/1 connection before it is closed (nginx `keepalive_requests`).
    pub max_requests_per_connection: u32,
    /// Concurrent streams on one HTTP/2 connection.
    pub h2_max_concurrent_streams: u32,
}

impl Default for FrontDoorConfig {
    fn default() -> Self {
        FrontDoorConfig {
            merge_slashes: true,
            escaped_slash: SlashActionConfig::Reject,
            path_parameters: PathParamsConfig::Reject,
            max_head_size: HumanSize(32 * 1024),
            max_headers: 100,
            max_request_line: HumanSize(8 * 1024),
            header_timeout: HumanDuration(Duration::from_secs(10)),
            idle_timeout: HumanDuration(Duration::from_secs(60)),
            body_timeout: HumanDuration(Duration::from_secs(30)),
            max_requests_per_connection: 1000,
            h2_max_concurrent_streams: 100,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SlashActionConfig {
    Reject,
    Keep,
    Decode,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PathParamsConfig {
    Reject,
    Keep,
    Strip,
}
