//! The handlers, one module per resource. Each handler only translates: request → use case call
//! on [`medex_core::MedEx`] → response.

pub(crate) mod admin;
pub(crate) mod auth;
pub(crate) mod custody;
pub(crate) mod dates;
pub(crate) mod dispatch;
pub(crate) mod drivers;
pub(crate) mod integrations;
pub(crate) mod meta;
pub(crate) mod orders;
pub(crate) mod reports;
pub(crate) mod uploads;
pub(crate) mod vendors;
pub(crate) mod webhooks;
