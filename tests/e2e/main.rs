//! End to end: the composed server (store, use cases, HTTP and WebSocket on one port) over real
//! sockets, as its clients and its attackers see it. The store is sled, or PostgreSQL when
//! `MEDEX_E2E_DATABASE_URL` names a server (`.ci/run` runs this binary both ways).

mod support;

mod crash;
mod custody;
mod delivery;
mod dispatch;
mod faults;
mod owasp;
mod races;
mod scaleout;
mod webhooks;
