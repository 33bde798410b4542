//! The tools, one module per group. Each module declares its tools' specs and work and
//! registers them; nothing else needs to change when a tool is added.

pub mod cast;
pub mod interpolate;
pub mod intensity;
pub mod io;
pub mod resample;
pub mod threshold;

use crate::error::ToolError;
use medas_image::{Metadata, keys};

/// A parameter value the spec's type and range let through but the tool cannot use (a width of
/// 0, bounds in the wrong order), named the way [`ToolError::Param`] names parameters.
pub(crate) fn bad_param(tool: &str, param: &str, message: impl std::fmt::Display) -> ToolError {
    ToolError::Failed { tool: tool.into(), message: format!("parameter {param:?} {message}") }
}

/// The metadata of an image whose values a tool has replaced by values of another kind
/// (display fractions, labels): the unit and the display windows no longer describe them.
pub(crate) fn metadata_for_new_values(metadata: &Metadata) -> Metadata {
    let mut metadata = metadata.clone();
    metadata.remove(keys::VALUE_UNIT);
    metadata.remove(keys::WINDOWS);
    metadata
}
