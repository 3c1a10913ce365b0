//! A string that never shows itself: `Debug`, `Display` and serde serialization all give
//! `<redacted>`, so a password cannot leak into logs, the state API, the printed config or
//! panics by accident. Clones share one buffer (the config's and the REST client's password
//! are the same bytes), whose bytes are overwritten when the last owner drops it.

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret string.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<Buffer>);

/// The one copy of a secret's bytes.
#[derive(PartialEq, Eq)]
struct Buffer(String);

impl Drop for Buffer {
    /// Overwrites the secret's bytes before the memory is freed.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(Arc::new(Buffer(s.into())))
    }

    /// The secret itself, for the few places that must send it.
    pub fn expose(&self) -> &str {
        &self.0.0
    }

    /// True when `given` is the secret, compared in time independent of where they differ.
    pub fn matches(&self, given: &str) -> bool {
        let (a, b) = (self.0.0.as_bytes(), given.as_bytes());
        let mut diff = a.len() ^ b.len();
        for (i, x) in a.iter().enumerate() {
            diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
        }
        diff == 0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_same_secret() {
        let s = Secret::new("token-123");
        assert!(s.matches("token-123"));
        for other in ["token-12", "token-1234", "", "TOKEN-123"] {
            assert!(!s.matches(other), "{other}");
        }
        assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");
    }

    #[test]
    fn clones_share_one_buffer() {
        let a = Secret::new("pw");
        let b = a.clone();
        assert!(std::ptr::eq(a.expose().as_ptr(), b.expose().as_ptr()));
        assert_eq!(a, Secret::new("pw"));
    }
}
