//! Input and output tools: reading an image from any supported format and saving one.

use crate::context::Context;
use crate::data::{Data, Inputs, Outputs, take_image};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, ParamSpec, PortSpec, PortType, ToolSpec};
use std::path::Path;
use std::sync::Arc;

/// `io.read_image`: any file or folder the readers know.
pub struct ReadImage(ToolSpec);

impl ReadImage {
    fn new() -> ReadImage {
        ReadImage(
            ToolSpec::new(
                "io.read_image",
                Category::Io,
                "Read image",
                "Reads a medical image with its geometry (spacing, origin, direction) and metadata: \
                 NIfTI, DICOM file or series folder, MetaImage, NRRD, NumPy, PNG/JPEG/TIFF or a folder \
                 of PNG slices, chosen by content and extension. Values are as SimpleITK reads them \
                 (DICOM rescaled to modality units, HU for CT).",
            )
            .param(ParamSpec::path("path", "The image file, or a DICOM series / PNG stack folder."))
            .param(ParamSpec::string("series_uid", "DICOM folder: the Series Instance UID to read (empty: the series with most files).").default(""))
            .output(PortSpec::new("image", PortType::Image, "The image read.")),
        )
    }
}

impl Tool for ReadImage {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, _inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError> {
        let path = Path::new(params.text("path")?);
        let progress = |done: usize, total: usize| context.progress(done as f64 / total.max(1) as f64);
        let options = medas_io::ReadOptions { series_uid: params.optional_text("series_uid")?, progress: Some(&progress) };
        let image = medas_io::read_with(path, &options)?;
        Ok(Outputs::from([("image".to_string(), Data::Image(image))]))
    }
}

/// `io.write_image`: saves an image in the format its path names.
pub struct WriteImage(ToolSpec);

impl WriteImage {
    fn new() -> WriteImage {
        WriteImage(
            ToolSpec::new(
                "io.write_image",
                Category::Io,
                "Write image",
                "Saves an image with its geometry in the format the path's extension names \
                 (.nii/.nii.gz, .mha/.mhd, .nrrd, .npy, .png/.tif, .dcm); a path ending in / \
                 becomes a DICOM series folder. An existing file is replaced atomically. In a \
                 pipeline run, a relative path lands inside the run folder.",
            )
            .writes_files()
            .param(ParamSpec::path("path", "Where to save the image."))
            .input(PortSpec::new("image", PortType::Image, "The image to save."))
            .output(PortSpec::new("file", PortType::File, "The saved file or folder.")),
        )
    }
}

impl Tool for WriteImage {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError> {
        let image = take_image(&mut inputs, &self.0.id, "image")?;
        let path = context.output_path(Path::new(params.text("path")?));
        medas_io::write(&image, &path)?;
        Ok(Outputs::from([("file".to_string(), Data::File(path))]))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(ReadImage::new()) } }
inventory::submit! { ToolEntry { build: || Arc::new(WriteImage::new()) } }
