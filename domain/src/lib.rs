//! Pure orderflow domain model.
#![forbid(unsafe_code)]
