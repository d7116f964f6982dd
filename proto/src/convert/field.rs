//! The one error of the proto → domain boundary: which field, and what is wrong with it.

use std::fmt::Display;

/// A request field that does not hold to the contract.
///
/// `field` is the path of the field in the request as the client wrote it: proto field names
/// joined by `.`, repeated fields indexed from 0 (`lines[3].quantity`,
/// `delivery_address.location.lat`). `reason` says what is wrong, lowercase, and when it comes
/// from a domain value type it is that type's own message (`quantity must be 1..=999, got 0`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Display) -> Self {
        FieldError {
            field: field.into(),
            reason: reason.to_string(),
        }
    }

    /// A message field that proto3 lets a client leave out, but the contract requires.
    pub fn required(field: impl Into<String>) -> Self {
        FieldError::new(field, "is required")
    }
}

/// Names the field a domain parse error belongs to.
pub(crate) trait FieldResult<T> {
    /// The field path is known up front (a top-level field).
    fn field(self, path: &str) -> Result<T, FieldError>;
    /// The field path is built only when there is an error (an indexed or nested field).
    fn field_with(self, path: impl FnOnce() -> String) -> Result<T, FieldError>;
}

impl<T, E: Display> FieldResult<T> for Result<T, E> {
    fn field(self, path: &str) -> Result<T, FieldError> {
        self.map_err(|e| FieldError::new(path, e))
    }

    fn field_with(self, path: impl FnOnce() -> String) -> Result<T, FieldError> {
        self.map_err(|e| FieldError::new(path(), e))
    }
}

/// A message field the contract requires.
pub(crate) fn required<'a, T>(value: &'a Option<T>, path: &str) -> Result<&'a T, FieldError> {
    value.as_ref().ok_or_else(|| FieldError::required(path))
}

/// Joins a parent path and a child field: `join("delivery_address", "text")`.
pub(crate) fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_owned()
    } else {
        format!("{parent}.{child}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_errors_display_the_path_then_the_reason() {
        let e = FieldError::new("lines[3].quantity", "quantity must be 1..=999, got 0");
        assert_eq!(
            e.to_string(),
            "lines[3].quantity: quantity must be 1..=999, got 0"
        );
        assert_eq!(
            FieldError::required("delivery_address").to_string(),
            "delivery_address: is required"
        );
    }

    #[test]
    fn paths_join_with_dots() {
        assert_eq!(join("", "lat"), "lat");
        assert_eq!(
            join("delivery_address.location", "lat"),
            "delivery_address.location.lat"
        );
    }
}
