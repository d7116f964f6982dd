//! The HS256 signing secret: long enough to be a key, and never printed.

/// RFC 7518 §3.2: an HS256 key MUST be at least as long as the hash output, 256 bits.
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("jwt secret must be at least {MIN_SECRET_BYTES} bytes, got {0}")]
pub struct WeakSecret(pub usize);

/// The secret every token is signed and checked with. `Debug` shows only its length, so a
/// config dump or a log line never carries it.
#[derive(Clone, PartialEq, Eq)]
pub struct JwtSecret(Vec<u8>);

impl JwtSecret {
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, WeakSecret> {
        let secret = secret.into();
        if secret.len() < MIN_SECRET_BYTES {
            return Err(WeakSecret(secret.len()));
        }
        Ok(JwtSecret(secret))
    }

    /// Only this module's parent reads the bytes, to build the signing and checking keys.
    pub(super) fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::str::FromStr for JwtSecret {
    type Err = WeakSecret;
    /// From `--jwt-secret` / `ORDERFLOW_JWT_SECRET`: the UTF-8 bytes of the string.
    fn from_str(s: &str) -> Result<Self, WeakSecret> {
        JwtSecret::new(s.as_bytes())
    }
}

impl std::fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JwtSecret({} bytes, redacted)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_secrets_are_refused() {
        assert_eq!(JwtSecret::new("x".repeat(31)), Err(WeakSecret(31)));
        assert_eq!(
            "short".parse::<JwtSecret>().unwrap_err().to_string(),
            "jwt secret must be at least 32 bytes, got 5"
        );
        assert!(JwtSecret::new(vec![0u8; 32]).is_ok());
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let secret: JwtSecret = "correct horse battery staple, 32b".parse().unwrap();
        let shown = format!("{secret:?}");
        assert!(!shown.contains("horse"), "{shown}");
        assert_eq!(shown, "JwtSecret(33 bytes, redacted)");
    }
}
