//! Thin tonic handlers, one file per audience: caller from the certificate, convert, one hub
//! call, convert back. Nothing here decides a state.

pub mod bank;
pub mod convert;
pub mod oversight;
pub mod police;
