//! One path from a registered dataset to a stored model, shared by `medas train` and the
//! catalog's training tools (`network.train_unet`, ...): the dataset reference (`NAME` or
//! `NAME@vN`) and one fold of a saved split (or a seeded 20% hold-out of the training cases)
//! become training and validation [`Volume`]s ([`load_fold`]); the run trains into its folder
//! and its best checkpoint is stored as a model ([`train_loaded`]). The same config, data and
//! seed give the same weights whichever front end started the run.

use std::path::{Path, PathBuf};

use medas_dataset::split::{self, SplitKind, SplitOptions};
use medas_dataset::store;
use medas_nn::nets::Spatial;
use medas_nn::store::{DatasetRef, ModelStore, StoreError};

use crate::classes::{assign_classes, class_names, manifest_class_labels};
use crate::data::{DataError, Volume, load_manifest_cases};
use crate::export::{ExportError, RUN_CONFIG, default_model_name, export_run, exported_from};
use crate::train::{TrainConfig, TrainError, TrainEvent, TrainReport, train};

/// Share of the training cases a run without a saved split validates on.
pub const HOLDOUT_FRACTION: f64 = 0.2;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The dataset, split or fold asked for cannot be used: `param` names which of the
    /// request's fields (`dataset`, `split`, `fold`), the message says why.
    #[error("{message}")]
    Request { param: &'static str, message: String },
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Train(#[from] TrainError),
    /// The model name is invalid or taken by a model from another run.
    #[error(transparent)]
    Model(#[from] StoreError),
    #[error("storing run {} as model {name} (another name: `medas model import NAME --run {}`): {source}", .run.display(), .run.display())]
    Export { run: PathBuf, name: String, source: ExportError },
    #[error("{}: {message}", .path.display())]
    Io { path: PathBuf, message: String },
}

/// What a run trains on and where it goes.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// `NAME` (latest version) or `NAME@vN` of a registered dataset.
    pub dataset: String,
    /// A saved split of that version; `None`: a hold-out of [`HOLDOUT_FRACTION`] seeded with
    /// the config's seed.
    pub split: Option<String>,
    /// The fold of the split (0 for the hold-out).
    pub fold: usize,
    /// The run folder: `config.json`, checkpoints, `metrics.jsonl`.
    pub out: PathBuf,
    /// Go on from `out/last/`.
    pub resume: bool,
    /// The store name; `None`: [`default_model_name`] of the dataset and run folder.
    pub model: Option<String>,
}

/// The cases of one fold, in tensor order, and the dataset version they came from.
#[derive(Debug, Clone)]
pub struct LoadedFold {
    pub name: String,
    pub version: u32,
    pub training: Vec<Volume>,
    pub validation: Vec<Volume>,
    /// A classifier's class names in index order (the config's, or those of the version's
    /// class labels); empty for segmentation.
    pub class_names: Vec<String>,
}

/// A finished run: the loop's report and the model it was stored as.
#[derive(Debug, Clone)]
pub struct TrainedModel {
    pub report: TrainReport,
    pub model: String,
    pub model_dir: PathBuf,
    pub dataset: String,
    pub version: u32,
    /// A classifier's class names in index order; empty for segmentation.
    pub class_names: Vec<String>,
}

fn request_error(param: &'static str) -> impl Fn(String) -> RunError {
    move |message| RunError::Request { param, message }
}

/// The training and validation case ids of `request`'s fold in the data folder `data`. A
/// classifier's hold-out is stratified by class and grouped by patient.
fn fold_ids(data: &Path, manifest: &medas_dataset::Manifest, request: &RunRequest, config: &TrainConfig) -> Result<split::Fold, RunError> {
    let name = &manifest.name;
    let fold = match &request.split {
        Some(split_name) => {
            let path = split::split_path(data, name, manifest.version, split_name);
            let text = std::fs::read_to_string(&path).map_err(|_| request_error("split")(format!("no split {split_name} of {name}@v{} ({})", manifest.version, path.display())))?;
            let saved: split::Split = serde_json::from_str(&text).map_err(|e| request_error("split")(format!("{}: {e}", path.display())))?;
            let count = saved.folds.len();
            saved.folds.into_iter().nth(request.fold).ok_or_else(|| request_error("fold")(format!("split {split_name} has {count} folds (0 to {}); fold {} is not one", count.saturating_sub(1), request.fold)))?
        }
        None if request.fold != 0 => return Err(request_error("fold")(format!("without a split there is one fold (0, a seeded hold-out); fold {} is not one", request.fold))),
        None => {
            let classifier = config.is_classifier();
            let options = SplitOptions { kind: SplitKind::Holdout { validation_fraction: HOLDOUT_FRACTION }, seed: config.seed, stratify: classifier, group_by_patient: classifier };
            split::split_manifest(manifest, "holdout", options).map_err(|e| request_error("dataset")(e.to_string()))?.folds.remove(0)
        }
    };
    if fold.train.is_empty() || fold.validation.is_empty() {
        let param = if request.split.is_some() { "split" } else { "dataset" };
        return Err(request_error(param)(format!("the fold has {} training and {} validation cases; both must be non-empty", fold.train.len(), fold.validation.len())));
    }
    Ok(fold)
}

/// Loads the cases of `request`'s fold from the data folder `data`, normalised and labelled
/// as `config` says (its network gives the number of classes).
pub fn load_fold(data: &Path, request: &RunRequest, config: &TrainConfig) -> Result<LoadedFold, RunError> {
    let dataset_error = |e: medas_dataset::DatasetError| request_error("dataset")(e.to_string());
    let (name, version) = store::parse_reference(&request.dataset).map_err(dataset_error)?;
    let manifest = store::load(data, &name, version).map_err(dataset_error)?;
    let fold = fold_ids(data, &manifest, request, config)?;
    let classes = config.network.classes();
    let mut training = load_manifest_cases(&manifest, Some(&fold.train), config.normalization, config.labels, classes)?;
    let mut validation = load_manifest_cases(&manifest, Some(&fold.validation), config.normalization, config.labels, classes)?;
    let mut names = config.class_names.clone();
    if config.is_classifier() {
        // The names come from every case of the version, so all folds share one mapping.
        let labels = manifest_class_labels(&manifest);
        if names.is_empty() {
            names = class_names(labels.values().map(String::as_str), classes)?;
        }
        assign_classes(&mut training, &labels, &names)?;
        assign_classes(&mut validation, &labels, &names)?;
    }
    Ok(LoadedFold { name, version: manifest.version, training, validation, class_names: names })
}

/// Refuses a patch the network cannot take (D = 1 in 2-D; sizes multiples of the network's
/// down-sampling factor), before any case is loaded.
pub fn check_patch(config: &TrainConfig) -> Result<(), RunError> {
    let network = config.network.build(&medas_nn::ComputeDevice::Cpu.inference()).map_err(|e| TrainError::Config(e.to_string()))?;
    let multiple = network.size_multiple();
    let [d, h, w] = config.sampler.patch;
    let two_d = config.network.spatial() == Spatial::Two;
    let fits = |n: usize| n > 0 && n.is_multiple_of(multiple);
    let message = if two_d && d != 1 {
        format!("patch {:?} has depth {d}; a 2-D network takes D = 1", config.sampler.patch)
    } else if !(fits(h) && fits(w) && (two_d || fits(d))) {
        let axes = if two_d { "H and W" } else { "D, H and W" };
        format!("patch {:?}: {axes} must be multiples of {multiple} for {} with depth {}", config.sampler.patch, config.network.name(), config.network.depth())
    } else {
        return Ok(());
    };
    Err(RunError::Train(TrainError::Config(message)))
}

/// Makes the run folder `out` and refuses a model name that is invalid or already taken by a
/// model stored from another run folder (one from `out` itself is replaced at the end).
pub fn check_model_name(store: &ModelStore, name: &str, out: &Path) -> Result<(), RunError> {
    let dir = store.model_dir(name)?;
    let io = |e: std::io::Error| RunError::Io { path: out.to_path_buf(), message: e.to_string() };
    std::fs::create_dir_all(out).map_err(io)?;
    let run_folder = std::fs::canonicalize(out).map_err(io)?;
    if dir.is_dir() && !exported_from(store, name, &run_folder) {
        return Err(StoreError::Exists { name: name.to_string(), root: store.root().display().to_string() }.into());
    }
    Ok(())
}

/// Trains on a loaded fold into `request.out` (writing `config.json` there first) and stores
/// the best checkpoint in `store`. A model name already taken by a model from another run is
/// refused before training starts.
pub fn train_loaded(config: &TrainConfig, fold: LoadedFold, request: &RunRequest, store: &ModelStore, events: &mut dyn FnMut(TrainEvent) -> bool) -> Result<TrainedModel, RunError> {
    let out = &request.out;
    let name = request.model.clone().unwrap_or_else(|| default_model_name(&fold.name, out));
    check_model_name(store, &name, out)?;
    let io = |e: std::io::Error| RunError::Io { path: out.clone(), message: e.to_string() };
    let config = TrainConfig { class_names: fold.class_names.clone(), ..config.clone() };
    let text = serde_json::to_string_pretty(&config).expect("a training config serialises");
    std::fs::write(out.join(RUN_CONFIG), text).map_err(io)?;
    let report = train(&config, fold.training, &fold.validation, out, request.resume, events)?;
    let reference = DatasetRef { name: fold.name.clone(), version: format!("v{}", fold.version) };
    let model_dir = export_run(out, store, &name, Some(reference)).map_err(|source| RunError::Export { run: out.clone(), name: name.clone(), source })?;
    Ok(TrainedModel { report, model: name, model_dir, dataset: fold.name, version: fold.version, class_names: config.class_names })
}

/// [`load_fold`] then [`train_loaded`]: `medas train`'s whole path. `log` hears what is loaded.
pub fn train_dataset(config: &TrainConfig, request: &RunRequest, data: &Path, store: &ModelStore, log: &mut dyn FnMut(&str), events: &mut dyn FnMut(TrainEvent) -> bool) -> Result<TrainedModel, RunError> {
    if let Some(name) = &request.model {
        medas_nn::store::validate_name(name)?;
    }
    check_patch(config)?;
    let fold = load_fold(data, request, config)?;
    log(&format!("loaded {} training and {} validation cases of {}@v{}", fold.training.len(), fold.validation.len(), fold.name, fold.version));
    train_loaded(config, fold, request, store, events)
}
