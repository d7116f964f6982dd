//! Compiles `orderflow/v1/*.proto` with protox (pure Rust), so the build needs no system `protoc`.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "orderflow/v1/common.proto",
        "orderflow/v1/command_service.proto",
        "orderflow/v1/query_service.proto",
        "orderflow/v1/events.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }

    let descriptors = protox::compile(files, ["."])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    // The descriptor set is embedded too, for gRPC server reflection.
    std::fs::write(
        out_dir.join("orderflow_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
