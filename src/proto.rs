//! The generated gRPC code, behind one module name.
#![allow(clippy::all, missing_docs)]

tonic::include_proto!("mod");

/// The encoded descriptor set of every stophub proto, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("stophub_descriptor");
