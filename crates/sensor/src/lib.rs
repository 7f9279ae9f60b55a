//! Inspection sensors over untrusted bytes.
#![forbid(unsafe_code)]

pub mod sqli;
