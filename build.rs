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

/// The benchmark's reference echo service (`stophub bench`).
const BENCH_PROTO: &str = "proto/stophub/bench/v1/echo.proto";

fn protoc_bin() -> Result<PathBuf, Box<dyn std::error::Error>> {
    Ok(match std::env::var_os("PROTOC") {
        Some(path) => PathBuf::from(path),
        None => protoc_bin_vendored::protoc_bin_path()?,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // tonic-prost-build does not emit this for us.
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-env-changed=PROTOC");

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin()?);
    config.include_file("mod.rs");

    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("stophub_descriptor.bin"))
        .compile_with_config(config, PROTOS, &["proto"])?;

    // The benchmark's echo service: compiled on its own, so it is in neither the hub's
    // module tree nor its reflection descriptor set.
    let mut bench = tonic_prost_build::Config::new();
    bench.protoc_executable(protoc_bin()?);
    tonic_prost_build::configure().compile_with_config(bench, &[BENCH_PROTO], &["proto"])?;
    Ok(())
}
