//! stophub: the inter-agency emergency stop-payment coordination hub.
//!
//! The architecture map, by who owns what:
//! - [`domain`]: the legal rules, pure (no async, no I/O, `now` is an argument). What a notice
//!   is ([`domain::notice`]), the instruction state machine ([`domain::instruction`]), the time
//!   rules ([`domain::policy`]), following the money ([`domain::funds`], [`domain::graph`]).
//! - [`hub`]: the one orchestrator. A single writer thread applies every transition, commits
//!   it to the [`store`], syncs a whole batch at once (group commit), then replies and wakes.
//! - [`store`]: sled trees, key layouts, value encoding, atomic commit, durable sync.
//! - [`dispatch`]: per-institution delivery streams that replay from the store.
//! - [`watch`]: police watches of a notice. [`timers`]: the one task that fires due timers.
//! - [`service`]: thin tonic handlers per audience, and [`service::convert`], the only place
//!   proto and domain meet (and where input is validated).
//! - [`auth`]: the client certificate -> caller; [`participants`]: the registry;
//!   [`limits`]: per-caller request rates and stream counts.
//! - [`server`]: wiring, TLS, health, reflection, shutdown. [`certs`]: dev certificates.
//! - [`clock`]: the one place the wall clock is read. [`client`]: a TLS client for the CLI,
//!   tests and benchmarks. [`error`]: the one mapping to gRPC status codes.

pub mod audit;
pub mod auth;
pub mod bench;
pub mod blacklist_sync;
pub mod certs;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod dispatch;
pub mod domain;
pub mod error;
pub mod hub;
pub mod limits;
pub mod metrics;
pub mod observe;
pub mod participants;
pub mod proto;
pub mod ratelimit;
pub mod reports;
pub mod server;
pub mod service;
pub mod store;
pub mod timers;
pub mod watch;

#[cfg(test)]
mod props_config;
