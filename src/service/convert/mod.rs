//! proto <-> domain, and nowhere else. [`parse`] turns requests into domain values and is
//! where input is validated: every refusal names the field (with its index in lists) and the
//! rule. [`render`] turns domain records into proto messages.

#[doc(hidden)]
pub mod checks;
mod parse;
#[cfg(test)]
mod props;
mod render;

pub use parse::*;
pub use render::*;
