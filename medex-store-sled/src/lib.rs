//! medex-store-sled
