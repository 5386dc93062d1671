//! RFC 6749 §5 answers of the token, introspection and revocation endpoints. The error type
//! lives in `error` beside `GatewayError`; both success and error answers are rendered by
//! `reply` (JSON bodies, `Cache-Control: no-store`, `Pragma: no-cache`, the §5.2 error object
//! with no internals), the one module that makes gateway answers.

pub use crate::error::OAuthError;
pub use crate::reply::oauth_json as json_reply;
