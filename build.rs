//! Generates the gRPC code for every proto under `proto/` and a descriptor set for reflection.
//!
//! protoc comes from `protoc-bin-vendored`, so a fresh machine needs nothing but cargo; a
//! `PROTOC` in the environment still wins, for platforms the vendored binaries do not cover.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "proto/stophub/common/v1/common.proto",
    "proto/stophub/police/v1/police.proto",
    "proto/stophub/bank/v1/bank.proto",
    "proto/stophub/oversight/v1/oversight.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // tonic-prost-build does not emit this for us.
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-env-changed=PROTOC");

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = tonic_prost_build::Config::new();
    let protoc = match std::env::var_os("PROTOC") {
        Some(path) => PathBuf::from(path),
        None => protoc_bin_vendored::protoc_bin_path()?,
    };
    config.protoc_executable(protoc);
    config.include_file("mod.rs");

    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("stophub_descriptor.bin"))
        .compile_with_config(config, PROTOS, &["proto"])?;
    Ok(())
}
