//! Integration tests of the sled store, in one binary: the shared Store contract, a model test
//! against the in-memory reference store, races, crash safety, and opening directories that are
//! locked, foreign, damaged or from a newer MedEx.

mod concurrency;
mod conformance;
mod crash;
mod fixtures;
mod lists;
mod model;
mod open;
mod retention;
