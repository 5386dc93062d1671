//! The `deny` policy.

use serde::{Deserialize, Serialize};

/// `type = "deny"`: refuse every request it is active for (403 `forbidden`), e.g. with a
/// `when` on `client_ip`. No body keys.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DenyConfig {}
