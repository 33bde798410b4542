//! What flows between tools, and the adapters at the edges of a run (the paper's plug and
//! slot): a path typed by a user becomes the data an input port asks for, and an output is
//! saved in the form its path asks for.

use crate::error::ToolError;
use crate::spec::{PortType, ToolSpec};
use crate::table::Table;
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
    /// Images with names (file names when saved), e.g. the tiles of a slide; in order.
    ImageSet(Vec<NamedImage>),
    Table(Table),
}

/// A member of an image set.
#[derive(Debug, Clone)]
pub struct NamedImage {
    pub name: String,
    pub image: Image,
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
                | (Data::ImageSet(_), PortType::ImageSet)
                | (Data::Table(_), PortType::Table)
        )
    }

    pub fn kind_name(&self) -> &'static str {
        match self {
            Data::Image(_) => "image",
            Data::Scalar(_) => "scalar",
            Data::File(_) => "file",
            Data::ImageSet(_) => "image_set",
            Data::Table(_) => "table",
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
        PortType::ImageSet => read_image_set(path).map(Data::ImageSet).map_err(|reason| failed(spec, format!("input {port:?}: {reason}"))),
        PortType::Table => read_table(path).map(Data::Table).map_err(|reason| failed(spec, format!("input {port:?}: {reason}"))),
        PortType::File if path.exists() => Ok(Data::File(path.to_path_buf())),
        PortType::File => Err(failed(spec, format!("input {port:?}: {} does not exist", path.display()))),
        other => Err(failed(spec, format!("input {port:?}: {} values cannot be read from a path yet", other.name()))),
    }
}

/// Slot: saves output `port` to `path`: images in the format the extension names (a folder
/// becomes a DICOM series), scalars as text (`.json`: `{"port": value}`, `.csv`: a column
/// headed by the port name), files copied, tables as `.csv` or `.json` (by the extension,
/// CSV otherwise), image sets as a folder of `NAME.nrrd` files, or `NAME.EXT` files when the
/// path ends in `*.EXT` (`tiles/*.png`: folder `tiles`, PNG files).
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
        Data::Table(table) => {
            let text = match path.extension().and_then(|e| e.to_str()) {
                Some("json") => format!("{}\n", table.to_json()),
                _ => table.to_csv(),
            };
            std::fs::write(path, text).map_err(|e| save_error(e.to_string()))
        }
        Data::ImageSet(images) => write_image_set(images, path).map_err(save_error),
    }
}

/// Reads every image file of folder `path` (hidden files and files no reader recognises are
/// skipped) in order of file name; a member's name is its file name up to the first dot.
fn read_image_set(path: &Path) -> Result<Vec<NamedImage>, String> {
    let entries = std::fs::read_dir(path).map_err(|e| format!("cannot list folder {}: {e}", path.display()))?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|file| file.is_file() && !file_name(file).starts_with('.') && medas_io::detect(file).is_ok())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("folder {} holds no image files", path.display()));
    }
    files
        .iter()
        .map(|file| {
            let image = medas_io::read(file).map_err(|e| e.to_string())?;
            let name = file_name(file).split('.').next().unwrap_or_default().to_string();
            Ok(NamedImage { name, image })
        })
        .collect()
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn read_table(path: &Path) -> Result<Table, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => Table::from_json(&text),
        _ => Table::from_csv(&text),
    }
}

/// Writes the members of an image set into a folder (see [`save_output`]).
fn write_image_set(images: &[NamedImage], path: &Path) -> Result<(), String> {
    let pattern = file_name(path);
    let (folder, extension) = match pattern.strip_prefix("*.") {
        Some(extension) => (path.parent().unwrap_or(Path::new(".")), extension.to_string()),
        None => (path, "nrrd".to_string()),
    };
    std::fs::create_dir_all(folder).map_err(|e| format!("cannot create folder {}: {e}", folder.display()))?;
    let mut seen = std::collections::BTreeSet::new();
    for member in images {
        if !seen.insert(member.name.as_str()) {
            return Err(format!("two images of the set are named {:?}", member.name));
        }
        let safe: String =
            member.name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        medas_io::write(&member.image, folder.join(format!("{safe}.{extension}"))).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Takes the image set on input `port` out of `inputs`, or names what is missing or wrong.
pub fn take_image_set(inputs: &mut Inputs, tool: &str, port: &str) -> Result<Vec<NamedImage>, ToolError> {
    match inputs.remove(port) {
        Some(Data::ImageSet(images)) => Ok(images),
        Some(other) => Err(ToolError::PortType { tool: tool.into(), port: port.into(), expected: "image_set", got: other.kind_name() }),
        None => Err(ToolError::MissingInput { tool: tool.into(), port: port.into() }),
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
