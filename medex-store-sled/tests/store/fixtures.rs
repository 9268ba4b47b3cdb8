//! Records for tests: the conformance kit's numbered records (scrambled ids, so that id order has
//! nothing to do with creation times).

pub(crate) use medex_core::conformance::fixtures::fix;
pub(crate) use medex_core::conformance::numbered::{driver, driver_id, order, user, vendor};
