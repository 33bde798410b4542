//! Saved models: a network's architecture, weights and metadata in one folder, and a store of
//! such folders by name.
//!
//! A model folder `NAME/` holds
//! - `config.json`: the [`NetworkConfig`] that builds the network (`{"name": "unet", ...}`);
//! - `weights.safetensors`: every float tensor by module path (see [`weights`] for the names);
//! - `metadata.json`: [`ModelMetadata`] (training parameters, metrics, dataset, code version,
//!   creation time, free-form notes).
//!
//! [`ModelStore`] keeps such folders under one root (`$MEDAS_DATA/models`, else
//! `$XDG_DATA_HOME/medas/models`, else `~/.local/share/medas/models`). Saving writes a hidden
//! scratch folder and renames it into place, so a model is either complete or absent.
//! [`pytorch`] imports weights trained with PyTorch.

pub mod pt;
pub mod pytorch;
pub mod weights;

use burn::module::Module;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::nets::{Network, NetworkConfig, NetworkError};
pub use weights::WeightError;

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "weights.safetensors";
pub const METADATA_FILE: &str = "metadata.json";

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    #[error("invalid model name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("model {name:?} already exists in {root}; ask for overwriting to replace it")]
    Exists { name: String, root: String },
    #[error("no model {name:?} in {root}")]
    NotFound { name: String, root: String },
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("{path}: {source}")]
    Weights { path: String, source: WeightError },
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error("the network ({network}) does not fit its config ({config}): {detail}")]
    Mismatch { network: String, config: String, detail: String },
}

fn io_error(path: &Path, error: impl std::fmt::Display) -> StoreError {
    StoreError::Io { path: path.display().to_string(), message: error.to_string() }
}

/// The dataset a model was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetRef {
    pub name: String,
    pub version: String,
}

/// What is known about how a model came to be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelMetadata {
    /// The MEDAS version that wrote the model.
    pub code_version: String,
    /// UTC, RFC 3339 (`2026-11-24T03:35:00Z`).
    pub created: String,
    pub dataset: Option<DatasetRef>,
    /// Training settings as given (optimizer, schedule, loss, epochs, ...).
    pub training: serde_json::Value,
    /// Final metrics by name (`{"dice": 0.91}`).
    pub metrics: BTreeMap<String, f64>,
    /// Anything else.
    pub notes: serde_json::Value,
}

/// Missing fields of a stored `metadata.json` read as empty.
impl Default for ModelMetadata {
    fn default() -> Self {
        ModelMetadata {
            code_version: String::new(),
            created: String::new(),
            dataset: None,
            training: serde_json::Value::Null,
            metrics: BTreeMap::new(),
            notes: serde_json::Value::Null,
        }
    }
}

impl ModelMetadata {
    /// Empty metadata stamped with this code version and the current time.
    pub fn now() -> ModelMetadata {
        ModelMetadata { code_version: env!("CARGO_PKG_VERSION").to_string(), created: utc_now(), ..ModelMetadata::default() }
    }
}

/// The current time as RFC 3339 UTC, to the second.
fn utc_now() -> String {
    let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    // Days since 1970-01-01 to a civil date (Hinnant's algorithm, proleptic Gregorian).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest / 60 % 60, rest % 60)
}

/// A model read back: what builds it, the network with its weights, and its metadata.
#[derive(Debug)]
pub struct LoadedModel {
    pub config: NetworkConfig,
    pub network: Network,
    pub metadata: ModelMetadata,
}

/// One line of [`ModelStore::list`]. A folder that cannot be read still appears, with the
/// reason in `problem`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSummary {
    pub name: String,
    /// The network's name (`unet`, ...), empty when the config cannot be read.
    pub network: String,
    pub created: String,
    /// Bytes of the model's files.
    pub bytes: u64,
    pub metrics: BTreeMap<String, f64>,
    pub problem: Option<String>,
}

/// The default root of the model store: `models/` in the MEDAS data folder.
pub fn default_root() -> PathBuf {
    default_root_from(|key| std::env::var_os(key))
}

/// [`default_root`] with the environment as a lookup (empty values count as unset). Mirrors
/// medas-dataset's `data_dir_from`, whose crate medas-nn does not depend on.
pub fn default_root_from(lookup: impl Fn(&str) -> Option<std::ffi::OsString>) -> PathBuf {
    let env = |key: &str| lookup(key).filter(|v| !v.is_empty()).map(PathBuf::from);
    let data = match (env("MEDAS_DATA"), env("XDG_DATA_HOME")) {
        (Some(dir), _) => dir,
        (None, Some(dir)) => dir.join("medas"),
        (None, None) => env("HOME").unwrap_or_else(|| PathBuf::from(".")).join(".local/share/medas"),
    };
    data.join("models")
}

/// Refuses names that are not a single plain folder name: empty, hidden, `..`, separators,
/// anything but ASCII letters, digits, `.`, `-` and `_`, or longer than 128 characters.
pub fn validate_name(name: &str) -> Result<(), StoreError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.starts_with('.') {
        "it starts with a dot (hidden or a parent folder)"
    } else if name.contains(['/', '\\']) {
        "it contains a path separator"
    } else if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')) {
        "only ASCII letters, digits, '.', '-' and '_' are allowed"
    } else if name.starts_with('-') {
        "it starts with '-'"
    } else if name.len() > 128 {
        "it is longer than 128 characters"
    } else {
        return Ok(());
    };
    Err(StoreError::InvalidName { name: name.to_string(), reason })
}

/// Writes a model folder at `dir` (which must not exist): config, weights, metadata. Checks
/// first that `network` has exactly the tensors `config` builds.
pub fn write_model_dir(dir: &Path, config: &NetworkConfig, network: &Network, metadata: &ModelMetadata) -> Result<(), StoreError> {
    check_matches(config, network)?;
    std::fs::create_dir(dir).map_err(|e| io_error(dir, e))?;
    let config_json = serde_json::to_string_pretty(config).map_err(|e| io_error(&dir.join(CONFIG_FILE), e))?;
    write_file(&dir.join(CONFIG_FILE), config_json.as_bytes())?;
    let weights_path = dir.join(WEIGHTS_FILE);
    weights::save_weights(network, &weights_path).map_err(|source| StoreError::Weights { path: weights_path.display().to_string(), source })?;
    let metadata_json = serde_json::to_string_pretty(metadata).map_err(|e| io_error(&dir.join(METADATA_FILE), e))?;
    write_file(&dir.join(METADATA_FILE), metadata_json.as_bytes())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    std::fs::write(path, bytes).map_err(|e| io_error(path, e))
}

/// The network `config` builds, on the device `network` lives on, must have the same tensor
/// names and shapes (so the saved model loads again).
fn check_matches(config: &NetworkConfig, network: &Network) -> Result<(), StoreError> {
    let device = network.devices().into_iter().next().unwrap_or_default();
    let expected = weights::tensor_names(&config.build(&device)?);
    let actual = weights::tensor_names(network);
    let mismatch = |detail: String| StoreError::Mismatch { network: network.name().to_string(), config: config.name().to_string(), detail };
    for (n, (want, have)) in expected.iter().zip(&actual).enumerate() {
        if want != have {
            return Err(mismatch(format!("tensor {n} is {} {:?}, the config gives {} {:?}", have.0, have.1, want.0, want.1)));
        }
    }
    if expected.len() != actual.len() {
        return Err(mismatch(format!("{} tensors, the config gives {}", actual.len(), expected.len())));
    }
    Ok(())
}

/// Reads a model folder and builds its network on `device` with the stored weights.
pub fn read_model_dir(dir: &Path, device: &Device) -> Result<LoadedModel, StoreError> {
    let config = read_config(dir)?;
    let metadata = read_metadata(dir)?;
    let weights_path = dir.join(WEIGHTS_FILE);
    let bytes = std::fs::read(&weights_path).map_err(|e| io_error(&weights_path, e))?;
    let network = weights::load_weights(config.build(device)?, &bytes).map_err(|source| StoreError::Weights { path: weights_path.display().to_string(), source })?;
    Ok(LoadedModel { config, network, metadata })
}

fn read_config(dir: &Path) -> Result<NetworkConfig, StoreError> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
    NetworkConfig::from_json(&text).map_err(|e| StoreError::Invalid { path: path.display().to_string(), message: e.to_string() })
}

fn read_metadata(dir: &Path) -> Result<ModelMetadata, StoreError> {
    let path = dir.join(METADATA_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
    serde_json::from_str(&text).map_err(|e| StoreError::Invalid { path: path.display().to_string(), message: format!("metadata: {e}") })
}

/// Named model folders under one root folder.
#[derive(Debug, Clone)]
pub struct ModelStore {
    root: PathBuf,
}

impl ModelStore {
    pub fn new(root: impl Into<PathBuf>) -> ModelStore {
        ModelStore { root: root.into() }
    }

    /// The store at [`default_root`].
    pub fn open_default() -> ModelStore {
        ModelStore::new(default_root())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of model `name` (validated; it may not exist).
    pub fn model_dir(&self, name: &str) -> Result<PathBuf, StoreError> {
        validate_name(name)?;
        Ok(self.root.join(name))
    }

    fn root_text(&self) -> String {
        self.root.display().to_string()
    }

    /// Saves a model as `name`. An existing model is replaced only when `overwrite` is set; the
    /// new folder is written aside and renamed into place, so readers never see half a model.
    pub fn save(&self, name: &str, config: &NetworkConfig, network: &Network, metadata: &ModelMetadata, overwrite: bool) -> Result<PathBuf, StoreError> {
        let target = self.model_dir(name)?;
        if target.exists() && !overwrite {
            return Err(StoreError::Exists { name: name.to_string(), root: self.root_text() });
        }
        std::fs::create_dir_all(&self.root).map_err(|e| io_error(&self.root, e))?;
        let scratch = self.root.join(format!(".{name}.saving-{}", unique_suffix()));
        if let Err(error) = write_model_dir(&scratch, config, network, metadata) {
            let _ = std::fs::remove_dir_all(&scratch);
            return Err(error);
        }
        let replaced = self.root.join(format!(".{name}.replaced-{}", unique_suffix()));
        let moved_aside = overwrite && target.exists();
        if moved_aside && let Err(error) = std::fs::rename(&target, &replaced) {
            let _ = std::fs::remove_dir_all(&scratch);
            return Err(io_error(&target, error));
        }
        // Renaming onto an existing folder fails, so a model saved meanwhile is never clobbered.
        if let Err(error) = std::fs::rename(&scratch, &target) {
            let _ = std::fs::remove_dir_all(&scratch);
            if moved_aside {
                let _ = std::fs::rename(&replaced, &target);
            }
            return Err(match target.exists() {
                true => StoreError::Exists { name: name.to_string(), root: self.root_text() },
                false => io_error(&target, error),
            });
        }
        if moved_aside {
            let _ = std::fs::remove_dir_all(&replaced);
        }
        Ok(target)
    }

    /// Loads model `name` with its network built on `device`.
    pub fn load(&self, name: &str, device: &Device) -> Result<LoadedModel, StoreError> {
        read_model_dir(&self.existing(name)?, device)
    }

    /// Removes model `name`.
    pub fn delete(&self, name: &str) -> Result<(), StoreError> {
        let dir = self.existing(name)?;
        std::fs::remove_dir_all(&dir).map_err(|e| io_error(&dir, e))
    }

    fn existing(&self, name: &str) -> Result<PathBuf, StoreError> {
        let dir = self.model_dir(name)?;
        match dir.is_dir() {
            true => Ok(dir),
            false => Err(StoreError::NotFound { name: name.to_string(), root: self.root_text() }),
        }
    }

    /// Every model folder, by name (hidden scratch folders are not models). An absent root is
    /// an empty store.
    pub fn list(&self) -> Result<Vec<ModelSummary>, StoreError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(&self.root, e)),
        };
        let mut models = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error(&self.root, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if validate_name(&name).is_ok() && entry.path().is_dir() {
                models.push(summarize(name, &entry.path()));
            }
        }
        models.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(models)
    }
}

fn summarize(name: String, dir: &Path) -> ModelSummary {
    let bytes = std::fs::read_dir(dir).map_or(0, |entries| entries.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum());
    let mut summary = ModelSummary { name, network: String::new(), created: String::new(), bytes, metrics: BTreeMap::new(), problem: None };
    match read_config(dir) {
        Ok(config) => summary.network = config.name().to_string(),
        Err(e) => summary.problem = Some(e.to_string()),
    }
    match read_metadata(dir) {
        Ok(metadata) => {
            summary.created = metadata.created;
            summary.metrics = metadata.metrics;
        }
        Err(e) => summary.problem = summary.problem.or(Some(e.to_string())),
    }
    summary
}

/// Process id and clock nanoseconds: distinct for concurrent savers.
fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{}-{nanos}", std::process::id())
}
