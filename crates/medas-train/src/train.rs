//! The training loop: seeded weights, batches from the sampler's worker thread, loss, optimizer
//! step at the schedule's learning rate; validation Dice every few epochs on whole cases;
//! best and last checkpoints; early stopping; metrics as JSON lines and as events; resume from
//! the last checkpoint with the same result as an uninterrupted run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use medas_nn::optim::{GradientsParams, ModuleOptimizer};
use medas_nn::{ComputeDevice, LossConfig, Network, NetworkConfig, NetworkOutput, OptimizerConfig, ScheduleConfig, Target};
use serde::{Deserialize, Serialize};

use crate::data::{LabelMode, Normalization, Volume};
use crate::sampler::{PatchSampler, SamplerConfig};

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
    #[serde(default = "default_loss")]
    pub loss: LossConfig,
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
}

fn one() -> usize {
    1
}
fn default_loss() -> LossConfig {
    LossConfig::from_json(r#"{"name": "dice_ce"}"#).expect("a valid default")
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
        Ok(())
    }
}

/// One epoch's figures (one line of metrics.jsonl).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub train_loss: f64,
    /// Mean Dice over the validation cases and foreground classes, when validated.
    pub validation_dice: Option<f64>,
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
    pub best_epoch: Option<usize>,
    pub stopped_early: bool,
    pub metrics: Vec<EpochMetrics>,
}

/// Where a run resumes: the state after `epochs_done` epochs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub epochs_done: usize,
    pub best_dice: Option<f64>,
    pub best_epoch: Option<usize>,
    pub validations_without_improvement: usize,
    pub metrics: Vec<EpochMetrics>,
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> TrainError + '_ {
    move |e| TrainError::Io { path: path.to_path_buf(), message: e.to_string() }
}

/// Trains `config.network` on `training` cases, validating on `validation`, writing
/// checkpoints (`last/`, `best/`) and `metrics.jsonl` into `out`. With `resume`, continues
/// from `out/last/` when it exists.
pub fn train(config: &TrainConfig, training: Vec<Volume>, validation: &[Volume], out: &Path, resume: bool, events: &mut dyn FnMut(TrainEvent) -> bool) -> Result<TrainReport, TrainError> {
    config.validate()?;
    check_cases(config, &training, validation)?;
    std::fs::create_dir_all(out).map_err(io_error(out))?;
    let device = config.device.open_training().map_err(config_error)?;
    let classes = config.network.classes();
    let loss = config.loss.build(classes).map_err(config_error)?;
    let mut network = config.network.build_seeded(&device, config.seed).map_err(config_error)?;
    let mut optimizer = config.optimizer.init().map_err(config_error)?;
    let mut state = Checkpoint::default();
    let last = out.join("last");
    if resume && last.join("state.json").is_file() {
        (network, optimizer, state) = load_checkpoint(&last, network, optimizer)?;
    }
    let sampler = Arc::new(PatchSampler::new(Arc::new(training), config.sampler.clone(), config.seed).map_err(TrainError::Config)?);
    let per_epoch = config.iterations_per_epoch;
    let first = (state.epochs_done * per_epoch) as u64;
    let batches = sampler.prefetch(first, (config.epochs.saturating_sub(state.epochs_done) * per_epoch) as u64);
    let started = Instant::now();
    let mut done_here = 0usize;
    let mut stopped_early = false;
    for epoch in state.epochs_done..config.epochs {
        let epoch_start = Instant::now();
        // Dropout draws from the device's generator: seed it per epoch so a resumed run matches.
        device.seed(config.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut total_loss = 0.0;
        for iteration in 0..per_epoch {
            let batch = batches.recv().map_err(|_| TrainError::Failed("the batch worker stopped".into()))?.map_err(TrainError::Failed)?;
            let x = Tensor::<5>::from_data(TensorData::new(batch.image, batch.shape), &device);
            let [b, _, d, h, w] = batch.shape;
            let y = Tensor::<5, Int>::from_data(TensorData::new(batch.label, [b, 1, d, h, w]), &device);
            let logits = segmentation_logits(&network, x)?;
            let value = loss.forward(logits, &Target::Classes(y)).map_err(|e| TrainError::Failed(e.to_string()))?;
            let scalar = value.clone().into_scalar::<f64>();
            if !scalar.is_finite() {
                return Err(TrainError::Failed(format!("the loss became {scalar} in epoch {epoch}, iteration {iteration}; lower the learning rate")));
            }
            total_loss += scalar;
            let step = epoch * per_epoch + iteration;
            let grads = GradientsParams::from_grads(value.backward(), &network);
            network = optimizer.step(config.schedule.lr_at(step), network, grads);
            done_here += 1;
            let remaining = (config.epochs - epoch) * per_epoch - iteration - 1;
            let eta_seconds = started.elapsed().as_secs_f64() / done_here as f64 * remaining as f64;
            if !events(TrainEvent::Iteration { epoch, iteration, of: per_epoch, loss: scalar, eta_seconds }) {
                return Err(TrainError::Cancelled { epoch });
            }
        }
        let validate = (epoch + 1) % config.validate_every == 0 || epoch + 1 == config.epochs;
        let dice = if validate && !validation.is_empty() { Some(validation_dice(&network, validation, config.device, classes)?) } else { None };
        let metrics = EpochMetrics {
            epoch,
            train_loss: total_loss / per_epoch as f64,
            validation_dice: dice,
            learning_rate: config.schedule.lr_at(epoch * per_epoch),
            seconds: epoch_start.elapsed().as_secs_f64(),
        };
        append_metrics(out, &metrics)?;
        state.metrics.push(metrics.clone());
        state.epochs_done = epoch + 1;
        if let Some(dice) = dice {
            if state.best_dice.is_none_or(|best| dice > best) {
                state.best_dice = Some(dice);
                state.best_epoch = Some(epoch);
                state.validations_without_improvement = 0;
                save_model(&out.join("best"), &network)?;
            } else {
                state.validations_without_improvement += 1;
            }
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
    Ok(TrainReport { epochs_run: state.epochs_done, best_dice: state.best_dice, best_epoch: state.best_epoch, stopped_early, metrics: state.metrics })
}

fn check_cases(config: &TrainConfig, training: &[Volume], validation: &[Volume]) -> Result<(), TrainError> {
    if training.is_empty() {
        return Err(TrainError::Config("no training cases".into()));
    }
    if let Some(case) = training.iter().chain(validation).find(|v| v.label.is_none()) {
        return Err(TrainError::Config(format!("case {} has no label", case.id)));
    }
    let channels = training[0].shape[0];
    if let Some(case) = training.iter().chain(validation).find(|v| v.shape[0] != channels) {
        return Err(TrainError::Config(format!("case {} has {} channels, case {} has {channels}", case.id, case.shape[0], training[0].id)));
    }
    if matches!(config.network, NetworkConfig::Classifier(_) | NetworkConfig::Dpn(_)) {
        return Err(TrainError::Config("classifiers are trained with class labels, not label maps (not supported by this trainer yet)".into()));
    }
    Ok(())
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
