//! Human text with bounds: names, free-text reasons, address lines.
//!
//! Lengths count characters (Unicode scalar values), not bytes: a dish name in Chinese gets
//! the same 100 characters as one in English.

use serde::{Deserialize, Serialize};

use crate::refusal::{Refusal, RefusalKind};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("{field} must be {min}..={max} characters, got {got}")]
    Length {
        field: &'static str,
        min: usize,
        max: usize,
        got: usize,
    },
    #[error("{field} must not be blank")]
    Blank { field: &'static str },
    #[error("{field} must not hold control characters")]
    Control { field: &'static str },
}

impl Refusal for TextError {
    fn kind(&self) -> RefusalKind {
        RefusalKind::InvalidArgument
    }
}

fn check(field: &'static str, s: &str, min: usize, max: usize) -> Result<(), TextError> {
    let len = s.chars().count();
    if !(min..=max).contains(&len) {
        return Err(TextError::Length {
            field,
            min,
            max,
            got: len,
        });
    }
    if min > 0 && s.trim().is_empty() {
        return Err(TextError::Blank { field });
    }
    if s.chars().any(char::is_control) {
        return Err(TextError::Control { field });
    }
    Ok(())
}

macro_rules! text {
    ($(#[$meta:meta])* $name:ident, $field:literal, $min:literal..=$max:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: impl Into<String>) -> Result<Self, TextError> {
                let s = s.into();
                check($field, &s, $min, $max)?;
                Ok($name(s))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = TextError;
            fn try_from(s: String) -> Result<Self, TextError> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(t: $name) -> String {
                t.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text!(
    /// A merchant's or a dish's name: 1..=100 characters, not blank.
    Name,
    "name",
    1..=100
);
text!(
    /// Why someone did something (cancel, compensate): at most 200 characters, may be empty.
    Reason,
    "reason",
    0..=200
);
text!(
    /// The text of a delivery address: 1..=200 characters, not blank.
    AddressText,
    "address",
    1..=200
);

impl Reason {
    pub fn none() -> Self {
        Reason(String::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_count_characters_not_bytes() {
        assert!(Name::parse("宫保鸡丁".repeat(25)).is_ok());
        assert_eq!(
            Name::parse("宫".repeat(101)).unwrap_err().to_string(),
            "name must be 1..=100 characters, got 101"
        );
        assert_eq!(
            Name::parse("").unwrap_err().to_string(),
            "name must be 1..=100 characters, got 0"
        );
        assert_eq!(
            Name::parse("   ").unwrap_err(),
            TextError::Blank { field: "name" }
        );
        assert!(Name::parse("a\nb").is_err());
    }

    #[test]
    fn reasons_may_be_empty_but_not_long() {
        assert_eq!(Reason::parse("").unwrap(), Reason::none());
        assert!(Reason::parse("x".repeat(200)).is_ok());
        assert!(Reason::parse("x".repeat(201)).is_err());
        assert!(AddressText::parse("").is_err());
    }
}
