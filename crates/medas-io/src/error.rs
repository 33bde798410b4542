use medas_image::ImageError;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Everything that can go wrong reading or writing an image. Every variant names the file.
#[derive(Debug, Error)]
pub enum IoError {
    // The cause is shown in the message rather than as an error source, so that `{:#}`
    // chains at the edges do not print it twice.
    #[error("{path}: {cause}")]
    Io { path: PathBuf, cause: std::io::Error },
    #[error("{path}: not a valid {format} file: {reason}")]
    Corrupt { path: PathBuf, format: &'static str, reason: String },
    #[error("{path}: {format} feature not supported: {what}")]
    Unsupported { path: PathBuf, format: &'static str, what: String },
    #[error("{path}: unsupported transfer syntax {uid} ({name})")]
    UnsupportedTransferSyntax { path: PathBuf, uid: String, name: String },
    #[error("{path}: cannot tell the file format (looked at the first bytes and the extension)")]
    UnknownFormat { path: PathBuf },
    #[error("{path}: {format} cannot store this image: {reason}")]
    CannotWrite { path: PathBuf, format: &'static str, reason: String },
    #[error("{path}: {cause}")]
    Image { path: PathBuf, cause: ImageError },
}

impl IoError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_path_buf(), cause: source }
    }
    pub fn corrupt(path: &Path, format: &'static str, reason: impl Into<String>) -> Self {
        Self::Corrupt { path: path.to_path_buf(), format, reason: reason.into() }
    }
    pub fn unsupported(path: &Path, format: &'static str, what: impl Into<String>) -> Self {
        Self::Unsupported { path: path.to_path_buf(), format, what: what.into() }
    }
    pub fn cannot_write(path: &Path, format: &'static str, reason: impl Into<String>) -> Self {
        Self::CannotWrite { path: path.to_path_buf(), format, reason: reason.into() }
    }
    pub fn image(path: &Path, source: ImageError) -> Self {
        Self::Image { path: path.to_path_buf(), cause: source }
    }
}

pub type Result<T, E = IoError> = std::result::Result<T, E>;
