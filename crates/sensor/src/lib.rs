//! Inspection sensors over untrusted bytes.
#![forbid(unsafe_code)]

pub mod attack;
pub mod cmdi;
pub mod decode;
pub mod dlp;
mod profile;
pub mod sensor;
pub mod sqli;
pub mod traversal;
mod window;
mod wordhash;
pub mod xss;

pub use attack::Attack;
pub use dlp::DlpKind;
pub use sensor::{Context, Finding, OVERSIZE, PatternSpec, Sensor, SensorSpec, SensorStream};

/// Why a sensor could not be built. Inspection itself never fails.
#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    /// A user-defined (or built-in) pattern did not compile.
    #[error("pattern {name:?}: {message}")]
    Pattern { name: String, message: String },
}
