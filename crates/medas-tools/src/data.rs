//! What flows between tools, and the adapters at the edges of a run (the paper's plug and
//! slot): a path typed by a user becomes the data an input port asks for, and an output is
//! saved in the form its path asks for.

use crate::error::ToolError;
use crate::spec::{PortType, ToolSpec};
use medas_image::Image;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A value on a port.
#[derive(Debug, Clone)]
pub enum Data {
    /// An image (or, on a label-image port, a label map) with its geometry.
    Image(Image),
    Scalar(f64),
    File(PathBuf),
}

/// Values by input port name.
pub type Inputs = BTreeMap<String, Data>;
/// Values by output port name.
pub type Outputs = BTreeMap<String, Data>;

impl Data {
    /// The port types this value can sit on.
    pub fn fits(&self, port: PortType) -> bool {
        matches!(
            (self, port),
            (Data::Image(_), PortType::Image | PortType::LabelImage)
                | (Data::Scalar(_), PortType::Scalar)
                | (Data::File(_), PortType::File)
        )
    }

    pub fn kind_name(&self) -> &'static str {
        match self {
            Data::Image(_) => "image",
            Data::Scalar(_) => "scalar",
            Data::File(_) => "file",
        }
    }

    /// The image inside, or a port type error naming the tool and port.
    pub fn into_image(self, tool: &str, port: &str) -> Result<Image, ToolError> {
        match self {
            Data::Image(image) => Ok(image),
            other => Err(ToolError::PortType { tool: tool.into(), port: port.into(), expected: "image", got: other.kind_name() }),
        }
    }
}

/// Takes the image on input `port` out of `inputs`, or names what is missing or wrong.
pub fn take_image(inputs: &mut Inputs, tool: &str, port: &str) -> Result<Image, ToolError> {
    let missing = || ToolError::MissingInput { tool: tool.into(), port: port.into() };
    inputs.remove(port).ok_or_else(missing)?.into_image(tool, port)
}

/// Plug: reads `text` (a path, or a number for a scalar port) as the data input `port` of
/// `spec` asks for. Images go through the readers, so any readable format works.
pub fn load_input(spec: &ToolSpec, port: &str, text: &str) -> Result<Data, ToolError> {
    let port_spec =
        spec.input_spec(port).ok_or_else(|| ToolError::UnknownPort { tool: spec.id.clone(), port: port.into() })?;
    let path = Path::new(text);
    match port_spec.port_type {
        PortType::Image | PortType::LabelImage => Ok(Data::Image(medas_io::read(path)?)),
        PortType::Scalar => {
            let number = match text.trim().parse::<f64>() {
                Ok(number) => number,
                Err(_) => std::fs::read_to_string(path)
                    .ok()
                    .and_then(|t| t.trim().parse().ok())
                    .ok_or_else(|| failed(spec, format!("input {port:?}: {text:?} is neither a number nor a file holding one")))?,
            };
            Ok(Data::Scalar(number))
        }
        PortType::File if path.exists() => Ok(Data::File(path.to_path_buf())),
        PortType::File => Err(failed(spec, format!("input {port:?}: {} does not exist", path.display()))),
        other => Err(failed(spec, format!("input {port:?}: {} values cannot be read from a path yet", other.name()))),
    }
}

/// Slot: saves output `port` to `path`: images in the format the extension names (a folder
/// becomes a DICOM series), scalars as text (`.json`: `{"port": value}`, `.csv`: a column
/// headed by the port name), files copied.
pub fn save_output(spec: &ToolSpec, port: &str, data: &Data, path: &Path) -> Result<(), ToolError> {
    let save_error =
        |reason: String| ToolError::Save { tool: spec.id.clone(), port: port.into(), path: path.to_path_buf(), reason };
    match data {
        Data::Image(image) => medas_io::write(image, path).map_err(ToolError::from),
        Data::Scalar(value) => {
            let text = match path.extension().and_then(|e| e.to_str()) {
                Some("json") => format!("{}\n", serde_json::json!({ port: value })),
                Some("csv") => format!("{port}\n{value}\n"),
                _ => format!("{value}\n"),
            };
            std::fs::write(path, text).map_err(|e| save_error(e.to_string()))
        }
        Data::File(source) => std::fs::copy(source, path).map(|_| ()).map_err(|e| save_error(e.to_string())),
    }
}

/// Checks that `inputs` holds every required input of `spec` with a fitting value and nothing
/// else, so a tool's `run` can rely on its ports.
pub(crate) fn check_inputs(spec: &ToolSpec, inputs: &Inputs) -> Result<(), ToolError> {
    if let Some(extra) = inputs.keys().find(|name| spec.input_spec(name).is_none()) {
        return Err(ToolError::UnknownPort { tool: spec.id.clone(), port: extra.clone() });
    }
    for port in &spec.inputs {
        match inputs.get(&port.name) {
            None if port.optional => {}
            None => return Err(ToolError::MissingInput { tool: spec.id.clone(), port: port.name.clone() }),
            Some(data) if !data.fits(port.port_type) => {
                return Err(ToolError::PortType {
                    tool: spec.id.clone(),
                    port: port.name.clone(),
                    expected: port.port_type.name(),
                    got: data.kind_name(),
                });
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Casts images on ports that ask for a voxel type (geometry and metadata kept).
pub(crate) fn cast_to_port_types(spec: &ToolSpec, mut inputs: Inputs) -> Inputs {
    for port in &spec.inputs {
        if let (Some(wanted), Some(Data::Image(image))) = (port.voxel_type, inputs.get_mut(&port.name))
            && image.scalar_type() != wanted
        {
            *image = image.cast(wanted);
        }
    }
    inputs
}

fn failed(spec: &ToolSpec, message: String) -> ToolError {
    ToolError::Failed { tool: spec.id.clone(), message }
}
