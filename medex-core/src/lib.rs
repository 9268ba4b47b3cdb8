//! MedEx core: the domain of last-mile medical delivery, with no IO.

pub mod auth;
pub mod clock;
pub mod config;
pub mod error;
pub mod events;
pub mod lifecycle;
pub mod model;
pub mod permissions;
pub mod routing;
pub mod store;
