//! MedEx: last-mile medical delivery.
pub use medex_core as core;
