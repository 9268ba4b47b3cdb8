//! The HTTP API, tested through the router (no socket) and once over a real socket.

mod helpers;

mod access;
mod auth;
mod custody;
mod dispatch;
mod integrations;
mod lifecycle;
mod lists;
mod misc;
mod openapi;
mod statuses;
mod uploads;
mod validation;
mod webhooks;
