//! `preprocess.cast`: converts voxels to another component type, geometry and metadata kept.
//! (Also the worked example of adding a tool in ARCHITECTURE.md: this file is all it takes.)

use crate::context::Context;
use crate::data::{Data, Inputs, Outputs, take_image};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, ParamSpec, PortSpec, PortType, ToolSpec};
use medas_image::ScalarType;
use std::sync::Arc;

const TYPES: [&str; 10] = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float32", "float64"];

pub struct Cast(ToolSpec);

impl Cast {
    fn new() -> Cast {
        Cast(
            ToolSpec::new(
                "preprocess.cast",
                Category::Preprocess,
                "Cast voxel type",
                "Converts every voxel to another component type, keeping geometry and metadata. \
                 Float to integer rounds to the nearest integer and saturates at the type's limits \
                 (NaN becomes 0), where SimpleITK's Cast truncates and leaves overflow undefined; \
                 integer to float and widening casts are exact, as in SimpleITK.",
            )
            .param(ParamSpec::choice("type", "The new component type (numpy names).", &TYPES).default("float32"))
            .input(PortSpec::new("image", PortType::Image, "The image to convert."))
            .output(PortSpec::new("image", PortType::Image, "The converted image.")),
        )
    }
}

impl Tool for Cast {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, _context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let image = take_image(&mut inputs, id, "image")?;
        let name = params.text("type")?;
        let scalar = ScalarType::parse(name)
            .ok_or_else(|| ToolError::Failed { tool: id.clone(), message: format!("unknown voxel type {name:?}") })?;
        Ok(Outputs::from([("image".to_string(), Data::Image(image.cast(scalar)))]))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(Cast::new()) } }
