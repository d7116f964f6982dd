//! The `orderflow.v1` gRPC contract, generated from `proto/orderflow/v1/*.proto`.
//!
//! This crate holds generated code and the proto ↔ domain conversions ([`convert`]); nothing
//! else.
#![forbid(unsafe_code)]

pub mod convert;

pub mod v1 {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("orderflow.v1");
}

/// Encoded `FileDescriptorSet` of the contract, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("orderflow_descriptor");
