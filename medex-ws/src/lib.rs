//! medex-ws
