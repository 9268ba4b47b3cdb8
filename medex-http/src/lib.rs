//! medex-http
