//! Integration tests of the sled store, in one binary: the whole conformance kit (the Store
//! contract, order pages and a model test with `Reopen` steps against the in-memory reference
//! store, racing writers), crash safety, and opening directories that are locked, foreign,
//! damaged or from a newer MedEx.

mod conformance;
mod crash;
mod fixtures;
mod model;
mod open;
mod retention;
