use std::path::PathBuf;

/// Why a synthetic dataset could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// An option is out of range; the message names the allowed range and the value given.
    #[error("bad option `{option}`: {message}")]
    BadOption { option: &'static str, message: String },
    /// The kind name is not one of [`crate::Kind::ALL`].
    #[error("unknown dataset kind `{given}`; the kinds are: {known}")]
    UnknownKind { given: String, known: String },
    /// The output folder cannot be used (a file, or not empty without `overwrite`).
    #[error("output folder {}: {message}", path.display())]
    OutputFolder { path: PathBuf, message: String },
    /// Creating a folder or writing a text file failed.
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    /// Writing an image failed (the error names the file).
    #[error(transparent)]
    Image(#[from] medas_io::IoError),
    /// The geometry or voxel buffer was refused by the image model.
    #[error("internal image error: {0}")]
    Model(#[from] medas_image::ImageError),
}

pub(crate) fn bad_option(option: &'static str, message: impl Into<String>) -> SynthError {
    SynthError::BadOption { option, message: message.into() }
}
