//! The training loop: seeded weights, batches from the sampler's worker thread, loss, optimizer
//! step at the schedule's learning rate; validation every few epochs on whole cases (Dice for
//! segmentation networks; accuracy and AUC for classifiers, see [`crate::classify`]); best and
//! last checkpoints; early stopping; metrics as JSON lines and as events; resume from the last
//! checkpoint with the same result as an uninterrupted run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use medas_nn::optim::{GradientsParams, ModuleOptimizer};
use medas_nn::{ComputeDevice, Loss, LossConfig, Network, NetworkConfig, NetworkOutput, OptimizerConfig, ScheduleConfig, Target};
use serde::{Deserialize, Serialize};

use crate::classify::{CaseSampler, validate_classifier};
use crate::data::{LabelMode, Normalization, Volume};
use crate::sampler::{Batch, PatchSampler, SamplerConfig};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("training config: {0}")]
    Config(String),
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("training: {0}")]
    Failed(String),
    #[error("training cancelled after epoch {epoch}")]
    Cancelled { epoch: usize },
}

fn config_error(e: impl std::fmt::Display) -> TrainError {
    TrainError::Config(e.to_string())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub network: NetworkConfig,
    /// The loss; default `dice_ce` for segmentation networks, `cross_entropy` for classifiers
    /// (see [`TrainConfig::loss`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<LossConfig>,
    #[serde(default = "default_optimizer")]
    pub optimizer: OptimizerConfig,
    /// Learning rate by iteration; `total_iterations` is set to epochs × iterations_per_epoch.
    #[serde(default = "default_schedule")]
    pub schedule: ScheduleConfig,
    /// Patches, flips/turns and on-the-fly augmentation with catalog tools
    /// (`sampler.augmentations`, see [`SamplerConfig::augmentations`]).
    #[serde(default)]
    pub sampler: SamplerConfig,
    /// How the cases' intensities are normalised when they are loaded.
    #[serde(default)]
    pub normalization: Normalization,
    /// How label values become classes.
    #[serde(default)]
    pub labels: LabelMode,
    pub epochs: usize,
    pub iterations_per_epoch: usize,
    /// Validate after every `validate_every` epochs (and after the last).
    #[serde(default = "one")]
    pub validate_every: usize,
    /// Stop after this many validations without a better Dice (0: never).
    #[serde(default)]
    pub patience: usize,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub device: ComputeDevice,
    /// Classifiers: the class names in index order (filled from the dataset's class labels by
    /// `medas train`; see [`crate::classes`]). Saved with the run for prediction.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub class_names: Vec<String>,
}

fn one() -> usize {
    1
}
fn default_loss(classifier: bool) -> LossConfig {
    let name = if classifier { "cross_entropy" } else { "dice_ce" };
    LossConfig::from_json(&format!(r#"{{"name": "{name}"}}"#)).expect("a valid default")
}
fn default_optimizer() -> OptimizerConfig {
    OptimizerConfig::from_json(r#"{"name": "adam"}"#).expect("a valid default")
}
fn default_schedule() -> ScheduleConfig {
    ScheduleConfig::from_json(r#"{"learning_rate": 0.001, "total_iterations": 1, "decay": {"name": "constant"}}"#).expect("a valid default")
}

impl TrainConfig {
    pub fn from_json(text: &str) -> Result<TrainConfig, TrainError> {
        let mut config: TrainConfig = serde_json::from_str(text).map_err(config_error)?;
        config.schedule.total_iterations = config.epochs * config.iterations_per_epoch;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), TrainError> {
        let positive = [("epochs", self.epochs), ("iterations_per_epoch", self.iterations_per_epoch), ("validate_every", self.validate_every), ("sampler.batch_size", self.sampler.batch_size)];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(TrainError::Config(format!("{name} must be at least 1, got 0")));
        }
        if self.sampler.patch.contains(&0) {
            return Err(TrainError::Config(format!("sampler.patch must be positive, got {:?}", self.sampler.patch)));
        }
        if !(0.0..=1.0).contains(&self.sampler.foreground_fraction) {
            return Err(TrainError::Config(format!("sampler.foreground_fraction must be in [0, 1], got {}", self.sampler.foreground_fraction)));
        }
        self.sampler.check_augmentations().map_err(TrainError::Config)?;
        self.schedule.validate().map_err(config_error)?;
        self.optimizer.init().map_err(config_error)?;
        if !self.class_names.is_empty() && self.class_names.len() != self.network.classes() {
            return Err(TrainError::Config(format!("class_names has {} names, the network predicts {} classes", self.class_names.len(), self.network.classes())));
        }
        Ok(())
    }

    /// Whether the network gives one label per image (`classifier`, `dpn`) rather than a map.
    pub fn is_classifier(&self) -> bool {
        matches!(self.network, NetworkConfig::Classifier(_) | NetworkConfig::Dpn(_))
    }

    /// The configured loss, or the default for the kind of network.
    pub fn loss(&self) -> LossConfig {
        self.loss.clone().unwrap_or_else(|| default_loss(self.is_classifier()))
    }
}

/// One epoch's figures (one line of metrics.jsonl).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub train_loss: f64,
    /// Mean Dice over the validation cases and foreground classes, when validated
    /// (segmentation networks).
    pub validation_dice: Option<f64>,
    /// Share of validation cases classified rightly, when validated (classifiers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_accuracy: Option<f64>,
    /// Validation ROC AUC (two classes: of class 1; more: macro one-vs-rest), when validated
    /// and both a class and its rest occur (classifiers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_auc: Option<f64>,
    pub learning_rate: f64,
    pub seconds: f64,
}

/// What the loop reports while it runs; the callback returns false to stop.
#[derive(Debug, Clone)]
pub enum TrainEvent {
    Iteration { epoch: usize, iteration: usize, of: usize, loss: f64, eta_seconds: f64 },
    Epoch(EpochMetrics),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    pub epochs_run: usize,
    pub best_dice: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_accuracy: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_auc: Option<f64>,
    pub best_epoch: Option<usize>,
    pub stopped_early: bool,
    pub metrics: Vec<EpochMetrics>,
}

/// Where a run resumes: the state after `epochs_done` epochs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub epochs_done: usize,
    pub best_dice: Option<f64>,
    /// Classifiers: the best validation's accuracy and AUC (the best is the highest accuracy,
    /// then AUC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_accuracy: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_auc: Option<f64>,
    /// Classifiers: the class names in index order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub class_names: Vec<String>,
    pub best_epoch: Option<usize>,
    pub validations_without_improvement: usize,
    pub metrics: Vec<EpochMetrics>,
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> TrainError + '_ {
    move |e| TrainError::Io { path: path.to_path_buf(), message: e.to_string() }
}

/// Trains `config.network` on `training` cases, validating on `validation`, writing
/// checkpoints (`last/`, `best/`) and `metrics.jsonl` into `out`. With `resume`, continues
/// from `out/last/` when it exists. Segmentation networks need every case's label map,
/// classifiers every case's class ([`Volume::class`]); a classifier's run folder also gets
/// `classes.json` (the class names in index order) when `config.class_names` is set.
pub fn train(config: &TrainConfig, training: Vec<Volume>, validation: &[Volume], out: &Path, resume: bool, events: &mut dyn FnMut(TrainEvent) -> bool) -> Result<TrainReport, TrainError> {
    config.validate()?;
    check_cases(config, &training, validation)?;
    std::fs::create_dir_all(out).map_err(io_error(out))?;
    let device = config.device.open_training().map_err(config_error)?;
    let loss = config.loss().build(config.network.classes()).map_err(config_error)?;
    let mut network = config.network.build_seeded(&device, config.seed).map_err(config_error)?;
    if config.is_classifier() {
        let [d, h, w] = config.sampler.patch;
        network.check_input([1, training[0].shape[0], d, h, w]).map_err(|e| TrainError::Config(format!("sampler.patch {:?} is the classifier's input size: {e}", config.sampler.patch)))?;
        write_class_names(out, &config.class_names)?;
    }
    let mut optimizer = config.optimizer.init().map_err(config_error)?;
    let mut state = Checkpoint { class_names: config.class_names.clone(), ..Checkpoint::default() };
    let last = out.join("last");
    if resume && last.join("state.json").is_file() {
        (network, optimizer, state) = load_checkpoint(&last, network, optimizer)?;
    }
    let per_epoch = config.iterations_per_epoch;
    let first = (state.epochs_done * per_epoch) as u64;
    let batches = prefetch(config, training, first, (config.epochs.saturating_sub(state.epochs_done) * per_epoch) as u64)?;
    let mut steps = Steps { config, loss, device, batches, started: Instant::now(), done: 0 };
    let mut stopped_early = false;
    for epoch in state.epochs_done..config.epochs {
        let epoch_start = Instant::now();
        let train_loss;
        (network, train_loss) = steps.epoch(network, &mut optimizer, epoch, events)?;
        let validate = (epoch + 1) % config.validate_every == 0 || epoch + 1 == config.epochs;
        let figures = if validate && !validation.is_empty() { validate_network(config, &network, validation)? } else { Validation::default() };
        let metrics = EpochMetrics {
            epoch,
            train_loss,
            validation_dice: figures.dice,
            validation_accuracy: figures.accuracy,
            validation_auc: figures.auc,
            learning_rate: config.schedule.lr_at(epoch * per_epoch),
            seconds: epoch_start.elapsed().as_secs_f64(),
        };
        append_metrics(out, &metrics)?;
        state.metrics.push(metrics.clone());
        state.epochs_done = epoch + 1;
        match record_best(&mut state, &metrics) {
            Some(true) => save_model(&out.join("best"), &network)?,
            Some(false) => state.validations_without_improvement += 1,
            None => {}
        }
        save_checkpoint(&last, &network, &optimizer, &state)?;
        if !events(TrainEvent::Epoch(metrics)) {
            return Err(TrainError::Cancelled { epoch });
        }
        if config.patience > 0 && state.validations_without_improvement >= config.patience {
            stopped_early = true;
            break;
        }
    }
    let Checkpoint { epochs_done, best_dice, best_accuracy, best_auc, best_epoch, metrics, .. } = state;
    Ok(TrainReport { epochs_run: epochs_done, best_dice, best_accuracy, best_auc, best_epoch, stopped_early, metrics })
}

/// Batches `first..first + count` from a worker thread: patches for segmentation networks,
/// whole cases for classifiers.
fn prefetch(config: &TrainConfig, training: Vec<Volume>, first: u64, count: u64) -> Result<Receiver<Result<Batch, String>>, TrainError> {
    Ok(if config.is_classifier() {
        Arc::new(CaseSampler::new(&training, config.sampler.clone(), config.seed)).prefetch(first, count)
    } else {
        Arc::new(PatchSampler::new(Arc::new(training), config.sampler.clone(), config.seed).map_err(TrainError::Config)?).prefetch(first, count)
    })
}

/// The optimisation steps of a run.
struct Steps<'a> {
    config: &'a TrainConfig,
    loss: Loss,
    device: Device,
    batches: Receiver<Result<Batch, String>>,
    started: Instant,
    /// Steps taken by this call of [`train`] (for the time estimate).
    done: usize,
}

impl Steps<'_> {
    /// One epoch's iterations; gives the network after them and the mean loss.
    fn epoch(&mut self, mut network: Network, optimizer: &mut ModuleOptimizer, epoch: usize, events: &mut dyn FnMut(TrainEvent) -> bool) -> Result<(Network, f64), TrainError> {
        let (config, per_epoch) = (self.config, self.config.iterations_per_epoch);
        // Dropout draws from the device's generator: seed it per epoch so a resumed run matches.
        self.device.seed(config.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut total_loss = 0.0;
        for iteration in 0..per_epoch {
            let batch = self.batches.recv().map_err(|_| TrainError::Failed("the batch worker stopped".into()))?.map_err(TrainError::Failed)?;
            let value = self.batch_loss(&network, batch)?;
            let scalar = value.clone().into_scalar::<f64>();
            if !scalar.is_finite() {
                return Err(TrainError::Failed(format!("the loss became {scalar} in epoch {epoch}, iteration {iteration}; lower the learning rate")));
            }
            total_loss += scalar;
            let grads = GradientsParams::from_grads(value.backward(), &network);
            network = optimizer.step(config.schedule.lr_at(epoch * per_epoch + iteration), network, grads);
            self.done += 1;
            let remaining = (config.epochs - epoch) * per_epoch - iteration - 1;
            let eta_seconds = self.started.elapsed().as_secs_f64() / self.done as f64 * remaining as f64;
            if !events(TrainEvent::Iteration { epoch, iteration, of: per_epoch, loss: scalar, eta_seconds }) {
                return Err(TrainError::Cancelled { epoch });
            }
        }
        Ok((network, total_loss / per_epoch as f64))
    }

    /// The loss of the network on one batch: per voxel for label maps, per image for classes.
    fn batch_loss(&self, network: &Network, batch: Batch) -> Result<Tensor<1>, TrainError> {
        let [b, _, d, h, w] = batch.shape;
        let x = Tensor::<5>::from_data(TensorData::new(batch.image, batch.shape), &self.device);
        let failed = |e: medas_nn::LossError| TrainError::Failed(e.to_string());
        match network.forward(x).map_err(|e| TrainError::Failed(e.to_string()))? {
            NetworkOutput::Segmentation(output) => {
                let y = Tensor::<5, Int>::from_data(TensorData::new(batch.label, [b, 1, d, h, w]), &self.device);
                self.loss.forward(output.logits, &Target::Classes(y)).map_err(failed)
            }
            NetworkOutput::Classes(logits) => {
                let y = Tensor::<2, Int>::from_data(TensorData::new(batch.label, [b, 1]), &self.device);
                self.loss.forward(logits, &Target::Classes(y)).map_err(failed)
            }
        }
    }
}

/// One validation's figures: Dice for segmentation networks, accuracy and AUC for classifiers.
#[derive(Default)]
struct Validation {
    dice: Option<f64>,
    accuracy: Option<f64>,
    auc: Option<f64>,
}

fn validate_network(config: &TrainConfig, network: &Network, cases: &[Volume]) -> Result<Validation, TrainError> {
    let classes = config.network.classes();
    if config.is_classifier() {
        let (accuracy, auc) = validate_classifier(network, cases, config.device, config.sampler.patch, classes)?;
        Ok(Validation { accuracy: Some(accuracy), auc, ..Validation::default() })
    } else {
        Ok(Validation { dice: Some(validation_dice(network, cases, config.device, classes)?), ..Validation::default() })
    }
}

/// Takes a validation's figures into the best so far: `Some(true)` when they are better
/// (higher Dice; for classifiers higher accuracy, then higher AUC), `Some(false)` when not,
/// `None` when the epoch was not validated.
fn record_best(state: &mut Checkpoint, metrics: &EpochMetrics) -> Option<bool> {
    let better = match (metrics.validation_accuracy, metrics.validation_dice) {
        (Some(accuracy), _) => {
            let auc_or_least = |auc: Option<f64>| auc.unwrap_or(f64::NEG_INFINITY);
            let better = state.best_accuracy.is_none_or(|best| (accuracy, auc_or_least(metrics.validation_auc)) > (best, auc_or_least(state.best_auc)));
            if better {
                (state.best_accuracy, state.best_auc) = (Some(accuracy), metrics.validation_auc);
            }
            better
        }
        (None, Some(dice)) => {
            let better = state.best_dice.is_none_or(|best| dice > best);
            if better {
                state.best_dice = Some(dice);
            }
            better
        }
        (None, None) => return None,
    };
    if better {
        state.best_epoch = Some(metrics.epoch);
        state.validations_without_improvement = 0;
    }
    Some(better)
}

fn check_cases(config: &TrainConfig, training: &[Volume], validation: &[Volume]) -> Result<(), TrainError> {
    if training.is_empty() {
        return Err(TrainError::Config("no training cases".into()));
    }
    let classifier = config.is_classifier();
    if classifier && let Some(case) = training.iter().chain(validation).find(|v| v.class.is_none()) {
        return Err(TrainError::Config(format!("case {} has no class label (a classifier needs one per case, e.g. the CSV manifest's `label` column)", case.id)));
    }
    if !classifier && let Some(case) = training.iter().chain(validation).find(|v| v.label.is_none()) {
        return Err(TrainError::Config(format!("case {} has no label", case.id)));
    }
    let classes = config.network.classes();
    if let Some(case) = training.iter().chain(validation).find(|v| v.class.is_some_and(|c| c >= classes)) {
        return Err(TrainError::Config(format!("case {} has class {}, the network predicts {classes} classes", case.id, case.class.unwrap_or(0))));
    }
    let channels = training[0].shape[0];
    if let Some(case) = training.iter().chain(validation).find(|v| v.shape[0] != channels) {
        return Err(TrainError::Config(format!("case {} has {} channels, case {} has {channels}", case.id, case.shape[0], training[0].id)));
    }
    Ok(())
}

/// `classes.json`: the class names in index order (nothing when there are none).
fn write_class_names(out: &Path, names: &[String]) -> Result<(), TrainError> {
    if names.is_empty() {
        return Ok(());
    }
    let path = out.join("classes.json");
    std::fs::write(&path, serde_json::to_string_pretty(names).expect("names serialise")).map_err(io_error(&path))
}

fn segmentation_logits(network: &Network, x: Tensor<5>) -> Result<Tensor<5>, TrainError> {
    match network.forward(x).map_err(|e| TrainError::Failed(e.to_string()))? {
        NetworkOutput::Segmentation(output) => Ok(output.logits),
        NetworkOutput::Classes(_) => Err(TrainError::Failed("a classifier gives no label map".into())),
    }
}

/// Mean over cases and foreground classes of the Dice of the arg-max prediction on the whole
/// case (zero-padded to the network's size multiple, cropped back). A class absent from both
/// truth and prediction counts 1.
pub fn validation_dice(network: &Network, cases: &[Volume], device: ComputeDevice, classes: usize) -> Result<f64, TrainError> {
    let model = network.valid();
    let device: Device = device.open().map_err(config_error)?;
    let multiple = model.size_multiple();
    let mut total = 0.0;
    for case in cases {
        let [c, d, h, w] = case.shape;
        let padded = case.spatial().map(|n| n.div_ceil(multiple) * multiple);
        let pd = if d == 1 { 1 } else { padded[0] };
        let (ph, pw) = (padded[1], padded[2]);
        let mut values = vec![0f32; c * pd * ph * pw];
        for ch in 0..c {
            for z in 0..d {
                for y in 0..h {
                    let from = ((ch * d + z) * h + y) * w;
                    let to = ((ch * pd + z) * ph + y) * pw;
                    values[to..to + w].copy_from_slice(&case.image[from..from + w]);
                }
            }
        }
        let x = Tensor::<5>::from_data(TensorData::new(values, [1, c, pd, ph, pw]), &device);
        let logits = segmentation_logits(&model, x)?;
        let predicted: Vec<i64> = logits.argmax(1).into_data().convert::<i64>().try_into_vec().map_err(|e| TrainError::Failed(format!("{e:?}")))?;
        let truth = case.label.as_ref().expect("checked: every case has a label");
        let mut dice_sum = 0.0;
        for class in 1..classes {
            let (mut both, mut ours, mut theirs) = (0usize, 0usize, 0usize);
            for z in 0..d {
                for y in 0..h {
                    for x in 0..w {
                        let p = predicted[(z * ph + y) * pw + x] == class as i64;
                        let t = truth[(z * h + y) * w + x] as usize == class;
                        both += usize::from(p && t);
                        ours += usize::from(p);
                        theirs += usize::from(t);
                    }
                }
            }
            dice_sum += if ours + theirs == 0 { 1.0 } else { 2.0 * both as f64 / (ours + theirs) as f64 };
        }
        total += dice_sum / (classes - 1).max(1) as f64;
    }
    Ok(total / cases.len() as f64)
}

fn append_metrics(out: &Path, metrics: &EpochMetrics) -> Result<(), TrainError> {
    use std::io::Write;
    let path = out.join("metrics.jsonl");
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(io_error(&path))?;
    writeln!(file, "{}", serde_json::to_string(metrics).expect("metrics serialise")).map_err(io_error(&path))
}

fn save_model(folder: &Path, network: &Network) -> Result<(), TrainError> {
    std::fs::create_dir_all(folder).map_err(io_error(folder))?;
    let path = folder.join("model.bpk");
    network.clone().save_file(&path).map_err(|e| TrainError::Io { path, message: e.to_string() })
}

/// Writes the model, the optimizer state and the loop state into a fresh folder, then swaps
/// it in, so a crash never leaves a half-written checkpoint.
fn save_checkpoint(folder: &Path, network: &Network, optimizer: &ModuleOptimizer, state: &Checkpoint) -> Result<(), TrainError> {
    let partial = folder.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    save_model(&partial, network)?;
    let path = partial.join("optimizer.bin");
    optimizer.save(&path).map_err(|e| TrainError::Io { path, message: e.to_string() })?;
    let path = partial.join("state.json");
    std::fs::write(&path, serde_json::to_string_pretty(state).expect("state serialises")).map_err(io_error(&path))?;
    let _ = std::fs::remove_dir_all(folder);
    std::fs::rename(&partial, folder).map_err(io_error(folder))
}

fn load_checkpoint(folder: &Path, network: Network, optimizer: ModuleOptimizer) -> Result<(Network, ModuleOptimizer, Checkpoint), TrainError> {
    let path = folder.join("model.bpk");
    let network = network.try_load_file(&path).map_err(|e| TrainError::Io { path: path.clone(), message: e.to_string() })?;
    let path = folder.join("optimizer.bin");
    let optimizer = optimizer.load(&path).map_err(|e| TrainError::Io { path: path.clone(), message: e.to_string() })?;
    let path = folder.join("state.json");
    let text = std::fs::read_to_string(&path).map_err(io_error(&path))?;
    let state = serde_json::from_str(&text).map_err(|e| TrainError::Io { path, message: e.to_string() })?;
    Ok((network, optimizer, state))
}
