//! orderflow adapters.
#![forbid(unsafe_code)]
