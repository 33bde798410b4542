//! The tools, one module per group. Each module declares its tools' specs and work and
//! registers them with `inventory::submit!`. The modules themselves are declared by
//! `build.rs` from the files in this folder, so a new tool is one new file (or an addition to
//! an existing one) and nothing else.

include!(concat!(env!("OUT_DIR"), "/tool_modules.rs"));

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
