//! One error type for the crate; every variant names the file, case or dataset it concerns.

use std::path::PathBuf;

/// What went wrong while importing, storing or splitting a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not valid JSON: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("{path}: {message}")]
    BadFile { path: PathBuf, message: String },
    #[error("{path}: missing file, referenced by {by}")]
    MissingFile { path: PathBuf, by: String },
    #[error("{path}: not a {layout} folder: {reason}")]
    WrongLayout { path: PathBuf, layout: &'static str, reason: String },
    #[error("{root}: no layout fits this folder; tried {tried}")]
    NoLayout { root: PathBuf, tried: String },
    #[error("unknown layout {given:?}; known layouts: {known}")]
    UnknownLayout { given: String, known: String },
    #[error("{root}: no cases found ({layout} layout)")]
    NoCases { root: PathBuf, layout: &'static str },
    #[error("case {case:?} appears twice ({first} and {second})")]
    DuplicateCase { case: String, first: PathBuf, second: PathBuf },
    #[error("dataset {name:?} is not registered (data folder {data})")]
    UnknownDataset { name: String, data: PathBuf },
    #[error("dataset {name:?} has no version v{version} (versions: {known})")]
    UnknownVersion { name: String, version: u32, known: String },
    #[error("bad dataset name {name:?}: use letters, digits, '-', '_' or '.', not starting with '.'")]
    BadName { name: String },
    #[error("split {split:?}: {message}")]
    BadSplit { split: String, message: String },
    #[error("split {split:?} of {dataset} already exists with different contents ({path})")]
    SplitExists { split: String, dataset: String, path: PathBuf },
}

impl DatasetError {
    /// An I/O error that names its file.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }

    /// A file whose contents do not fit what the layout expects.
    pub fn bad_file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::BadFile { path: path.into(), message: message.into() }
    }
}

pub type Result<T, E = DatasetError> = std::result::Result<T, E>;
