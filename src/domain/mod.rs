//! The legal domain, pure: no async, no tonic, no sled, no clock read (`now` is an argument).

pub mod blacklist;
pub mod funds;
pub mod graph;
pub mod ids;
pub mod instruction;
#[doc(hidden)]
pub mod instruction_model;
pub mod notice;
pub mod policy;
