//! MedEx: last-mile medical delivery, composed into one server.
//!
//! The root package wires the focused crates together: [`medex_core`] (domain and use cases),
//! a store, the HTTP API and the WebSocket API, on one port.

pub use medex_core as core;

mod console;
mod driver_app;
// Public behind the feature only for the separate cargo-fuzz crate in fuzz/; see the module.
mod exposition;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod hashing;
mod listener;
pub mod osrm;
mod scaleout;
pub mod server;
pub mod settings;
#[cfg(test)]
mod tidy;
pub mod tracking_page;
pub mod web;
pub mod webhooks;
