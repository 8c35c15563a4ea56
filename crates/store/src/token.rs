//! Continue tokens for paginated lists, shared by every backend: URL-safe base64 of a small JSON
//! document holding the revision of the first page and the last key already returned. Clients
//! treat the token as opaque; we decode it strictly so a forged or truncated token is
//! [`StoreError::Invalid`], never a panic or a silently wrong page.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// Position of the next page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ContinueToken {
    /// Revision the list is read at (that of its first page).
    pub rev: u64,
    /// Last key returned so far, `<namespace>/<name>` (relative to the resource).
    pub after: String,
}

impl ContinueToken {
    /// The opaque text handed to clients.
    pub fn encode(&self) -> String {
        // Serializing a struct of a number and a string cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Parses a token produced by [`ContinueToken::encode`].
    pub fn decode(text: &str) -> Result<Self, StoreError> {
        let invalid = || StoreError::Invalid {
            what: "continue token",
            value: text.to_owned(),
        };
        let json = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let token: Self = serde_json::from_slice(&json).map_err(|_| invalid())?;
        if token.after.is_empty() {
            return Err(invalid());
        }
        Ok(token)
    }

    /// The token's key as a full encoded key under `range_start` (`<resource>/` or
    /// `<resource>/<namespace>/`), or `Invalid` if it does not belong to that range (a token from
    /// another list).
    pub fn full_key(&self, resource: &str, range_start: &str) -> Result<String, StoreError> {
        let full = format!("{resource}/{}", self.after);
        if !full.starts_with(range_start) || full.len() == range_start.len() {
            return Err(StoreError::Invalid {
                what: "continue token (for another list)",
                value: self.encode(),
            });
        }
        Ok(full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = ContinueToken {
            rev: 42,
            after: "default/crash-7".into(),
        };
        let text = t.encode();
        assert!(!text.contains('=') && !text.contains('/') && !text.contains('+'));
        assert_eq!(ContinueToken::decode(&text).unwrap(), t);
    }

    #[test]
    fn garbage_is_invalid() {
        for bad in [
            "",
            "!!!",
            "eyJyZXYiOjF9",
            &URL_SAFE_NO_PAD.encode(b"{\"rev\":1,\"after\":\"\"}"),
        ] {
            assert!(
                matches!(ContinueToken::decode(bad), Err(StoreError::Invalid { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn token_of_another_namespace_is_rejected() {
        let t = ContinueToken {
            rev: 1,
            after: "ns-a/x".into(),
        };
        assert_eq!(
            t.full_key("coredumps", "coredumps/").unwrap(),
            "coredumps/ns-a/x"
        );
        assert_eq!(
            t.full_key("coredumps", "coredumps/ns-a/").unwrap(),
            "coredumps/ns-a/x"
        );
        assert!(t.full_key("coredumps", "coredumps/ns-b/").is_err());
    }
}
