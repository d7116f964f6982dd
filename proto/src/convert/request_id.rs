//! The client's idempotency key, carried by every command request.

/// Bounds of a request id, in characters.
const MAX_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestIdError {
    #[error("must be 1..={MAX_LEN} characters, got {0}")]
    Length(usize),
    #[error("must not hold control characters")]
    Control,
}

/// A request id: 1..=64 characters, none of them a control character (so it prints safely in
/// logs and audit views). Any other character is the client's choice: uuids, ulids, or
/// `checkout-42/retry` all work. It always fits the event store's command id (1..=128).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(String);

impl RequestId {
    pub fn parse(s: impl Into<String>) -> Result<Self, RequestIdError> {
        let s = s.into();
        let len = s.chars().count();
        if !(1..=MAX_LEN).contains(&len) {
            return Err(RequestIdError::Length(len));
        }
        if s.chars().any(char::is_control) {
            return Err(RequestIdError::Control);
        }
        Ok(RequestId(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<RequestId> for String {
    fn from(id: RequestId) -> String {
        id.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_1_to_64_characters() {
        assert!(RequestId::parse("r").is_ok());
        assert!(RequestId::parse("订".repeat(64)).is_ok());
        assert_eq!(RequestId::parse(""), Err(RequestIdError::Length(0)));
        assert_eq!(
            RequestId::parse("x".repeat(65)),
            Err(RequestIdError::Length(65))
        );
        assert_eq!(
            RequestId::parse("").unwrap_err().to_string(),
            "must be 1..=64 characters, got 0"
        );
    }

    #[test]
    fn request_ids_refuse_control_characters() {
        assert_eq!(RequestId::parse("a\nb"), Err(RequestIdError::Control));
        assert_eq!(RequestId::parse("a\u{7f}"), Err(RequestIdError::Control));
        assert!(RequestId::parse("checkout-42/retry 2").is_ok());
    }
}
