//! End to end: the composed server (sled store, use cases, HTTP and WebSocket on one port) over
//! real sockets, as its clients and its attackers see it.

mod support;

mod crash;
mod custody;
mod delivery;
mod owasp;
mod races;
