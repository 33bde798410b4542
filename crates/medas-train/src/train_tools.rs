//! The catalog's training tools, one per segmentation network: `network.train_unet`,
//! `network.train_vnet`, `network.train_fcn`, `network.train_res_unet`,
//! `network.train_dp_unet`. One spec builder serves all five (only the defaults differ); a run
//! goes through [`crate::run`], the path `medas train` takes, so the same settings and seed give
//! the same weights as `medas train` with the equivalent config.
//!
//! The dataset is named by a parameter (no input port: a registered dataset version is not data
//! that flows between tools). The run folder is `$MEDAS_DATA/runs/MODEL` (the data folder
//! `medas dataset` and the model store use), not the pipeline's run folder: a pipeline's run
//! folder changes with every run, and a model may only be replaced by a run from the folder it
//! was stored from, so a fixed folder per model name lets a re-run replace its own model (an
//! earlier run's checkpoints and metrics there are removed first).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use medas_nn::ModelStore;
use medas_tools::{Category, Context, Data, Inputs, Outputs, ParamKind, ParamSpec, Params, PortSpec, PortType, Table, Tool, ToolEntry, ToolError, ToolSpec};
use serde_json::{Value, json};

use crate::run::{RunError, RunRequest, check_model_name, check_patch, load_fold, train_loaded};
use crate::train::{EpochMetrics, TrainConfig, TrainError, TrainEvent, TrainReport};

/// What tells the five tools apart: the network and its defaults.
pub struct NetworkTool {
    pub network: &'static str,
    pub title: &'static str,
    about: &'static str,
    spatial: &'static str,
    depth: i64,
    base_channels: i64,
    norm: &'static str,
    /// The V-Net's convolution size; `None` for the others (3).
    kernel: Option<i64>,
    patch: [i64; 3],
    batch_size: i64,
}

pub static NETWORK_TOOLS: [NetworkTool; 5] = [
    NetworkTool {
        network: "unet",
        title: "Train U-Net",
        about: "a U-Net (nnU-Net's plain variant: two 3x3(x3) convolutions per block, instance norm, leaky ReLU, max pooling, transposed-convolution up-sampling, skips by concatenation)",
        spatial: "2d",
        depth: 4,
        base_channels: 32,
        norm: "instance",
        kernel: None,
        patch: [1, 128, 128],
        batch_size: 8,
    },
    NetworkTool {
        network: "vnet",
        title: "Train V-Net",
        about: "a V-Net (Milletari et al. 2016: residual stages of 1, 2, 3, 3, ... convolutions of size `kernel`, strided-convolution down-sampling, batch norm)",
        spatial: "3d",
        depth: 4,
        base_channels: 16,
        norm: "batch",
        kernel: Some(5),
        patch: [64, 64, 64],
        batch_size: 2,
    },
    NetworkTool {
        network: "fcn",
        title: "Train FCN",
        about: "a fully convolutional network (Long et al. 2015: a convolutional encoder whose class scores at every level are up-sampled and summed coarse to fine)",
        spatial: "2d",
        depth: 4,
        base_channels: 32,
        norm: "instance",
        kernel: None,
        patch: [1, 128, 128],
        batch_size: 8,
    },
    NetworkTool {
        network: "res_unet",
        title: "Train Residual U-Net",
        about: "a residual U-Net (each block two convolutions plus a shortcut)",
        spatial: "2d",
        depth: 4,
        base_channels: 32,
        norm: "instance",
        kernel: None,
        patch: [1, 128, 128],
        batch_size: 8,
    },
    NetworkTool {
        network: "dp_unet",
        title: "Train Dual-Path U-Net",
        about: "a dual-path U-Net (each block half residual, half dense, as in Dual Path Networks)",
        spatial: "2d",
        depth: 4,
        base_channels: 32,
        norm: "instance",
        kernel: None,
        patch: [1, 128, 128],
        batch_size: 8,
    },
];

const LOSSES: &[&str] = &["dice_ce", "dice", "cross_entropy", "focal", "dice_bce", "bce", "lovasz_softmax", "lovasz_hinge"];

pub struct TrainNetwork {
    spec: ToolSpec,
    tool: &'static NetworkTool,
}

fn int(name: &str, doc: &str, default: i64, low: f64, high: f64) -> ParamSpec {
    ParamSpec::int(name, doc).default(default).range(low, high)
}

fn dataset_params() -> Vec<ParamSpec> {
    vec![
        ParamSpec::string("dataset", "Registered dataset: NAME (its latest version) or NAME@vN (`medas dataset list`); its cases need label maps."),
        ParamSpec::string("split", "A saved split of that version (`medas dataset split`); empty: a 20% hold-out of the training cases, drawn with `seed`.").default(""),
        int("fold", "The split's fold to train (0-based); 0 for the hold-out.", 0, 0.0, 999.0),
        ParamSpec::string("model", "Name to store the best checkpoint under in the model store (letters, digits, '.', '-', '_'); a model of that name stored by an earlier run of this tool is replaced, any other is an error."),
    ]
}

fn network_params(tool: &NetworkTool) -> Vec<ParamSpec> {
    let mut params = vec![
        ParamSpec::choice("spatial", "2-D (slices or tiles, D = 1) or 3-D convolutions.", &["2d", "3d"]).default(tool.spatial),
        int("depth", "Down-sampling steps; patch sizes (H, W, and D in 3-D) must be multiples of 2^depth.", tool.depth, 1.0, 6.0).tunable(),
        int("base_channels", "Feature channels of the first level (doubling per level).", tool.base_channels, 1.0, 256.0).unit("channels").tunable(),
        ParamSpec::choice("norm", "Normalisation after each convolution (group: groups of 8 channels).", &["batch", "instance", "group", "none"]).default(tool.norm),
        ParamSpec::float("dropout", "Dropout probability (0: none).", ).default(0.0).range(0.0, 0.9).tunable(),
        int("classes", "Classes the network predicts, background included (label values 0 to classes-1).", 2, 2.0, 255.0),
    ];
    if let Some(kernel) = tool.kernel {
        params.push(int("kernel", "Convolution size of the residual stages (odd; the paper's 5, 3 is cheaper).", kernel, 1.0, 7.0).unit("voxels"));
    }
    params
}

fn training_params(tool: &NetworkTool) -> Vec<ParamSpec> {
    vec![
        int("epochs", "Epochs to train (each ends with a validation when due).", 50, 1.0, 10000.0).unit("epochs"),
        int("iterations_per_epoch", "Optimizer steps per epoch.", 100, 1.0, 100000.0).unit("iterations"),
        ParamSpec::list("patch", "Patch size D, H, W in voxels (D = 1 for 2-D); each a multiple of 2^depth (D too in 3-D).", ParamKind::Int { min: Some(1), max: Some(1024) })
            .range(3.0, 3.0)
            .default(json!(tool.patch))
            .unit("voxels"),
        int("batch_size", "Patches per optimizer step.", tool.batch_size, 1.0, 256.0).unit("patches"),
        ParamSpec::float("learning_rate", "Learning rate (constant unless lr_decay says otherwise).").default(0.001).range(1e-7, 1.0).tunable(),
        ParamSpec::choice("lr_decay", "How the learning rate falls over all iterations: constant, poly (nnU-Net's (1 - t/T)^0.9) or cosine (to 0).", &["constant", "poly", "cosine"]).default("constant"),
        ParamSpec::choice("loss", "Loss (medas-nn's losses with their default settings).", LOSSES).default("dice_ce"),
        ParamSpec::choice("optimizer", "Optimizer with its default settings (adamw: weight decay 0.01; sgd: no momentum).", &["adam", "adamw", "sgd"]).default("adam"),
        ParamSpec::choice("normalization", "Intensity normalisation per case and channel: zscore, clip_zscore (clip to clip_low..clip_high, e.g. a CT window, then z-score) or none.", &["zscore", "clip_zscore", "none"]).default("zscore"),
        ParamSpec::float("clip_low", "Lower clip value for clip_zscore, in the image's units (e.g. HU).").default(-1000.0),
        ParamSpec::float("clip_high", "Upper clip value for clip_zscore, in the image's units (e.g. HU).").default(1000.0),
        ParamSpec::choice("labels", "How label values become classes: classes (values are class indices) or foreground (every value above 0 is class 1, e.g. instance masks).", &["classes", "foreground"]).default("classes"),
        int("seed", "Seed of the weights, the patches, the dropout and the hold-out.", 0, 0.0, 9.0e15),
        int("patience", "Stop after this many validations without a better Dice (0: never).", 0, 0.0, 10000.0).unit("validations"),
        int("validate_every", "Validate every this many epochs (and after the last).", 1, 1.0, 10000.0).unit("epochs"),
    ]
}

impl TrainNetwork {
    pub fn new(tool: &'static NetworkTool) -> TrainNetwork {
        let doc = format!(
            "Trains {} on a registered dataset version (one fold of a saved split, or a seeded 20% hold-out) \
             with the training loop of `medas train` (seeded patches with foreground over-sampling, flips and \
             quarter turns; validation Dice on whole cases; best and last checkpoints; early stopping), and \
             stores the best checkpoint in the model store under `model` with the training settings \
             (`network.predict` uses it). The input channels are those of the dataset's cases. The run folder \
             (checkpoints, metrics.jsonl, config.json) is $MEDAS_DATA/runs/MODEL. Not cached: the model store changes.",
            tool.about
        );
        let mut spec = ToolSpec::new(&format!("network.train_{}", tool.network), Category::Network, tool.title, &doc)
            .params(dataset_params())
            .params(network_params(tool))
            .params(training_params(tool))
            .output(PortSpec::new("best_dice", PortType::Scalar, "The best validation Dice (mean over validation cases and foreground classes), as stored in the model's metadata."))
            .output(PortSpec::new("metrics", PortType::Table, "One row per epoch: epoch (1-based), train_loss, validation_dice (empty when not validated), learning_rate, seconds."));
        spec.cacheable = false;
        TrainNetwork { spec, tool }
    }

    /// The training config these parameters stand for (`in_channels` from the dataset).
    pub fn config(&self, params: &Params, in_channels: usize) -> Result<TrainConfig, ToolError> {
        let mut network = json!({
            "name": self.tool.network, "spatial": params.text("spatial")?, "in_channels": in_channels,
            "classes": params.int("classes")?, "depth": params.int("depth")?, "base_channels": params.int("base_channels")?,
            "norm": params.text("norm")?, "dropout": params.float("dropout")?,
        });
        if self.tool.kernel.is_some() {
            network["kernel"] = json!(params.int("kernel")?);
        }
        let normalization = match params.text("normalization")? {
            "clip_zscore" => {
                let (low, high) = (params.float("clip_low")?, params.float("clip_high")?);
                if low >= high {
                    return Err(self.failed(format!("parameter \"clip_high\": must be above clip_low ({low}), got {high}")));
                }
                json!({"kind": "clip_zscore", "low": low, "high": high})
            }
            kind => json!({ "kind": kind }),
        };
        let config = json!({
            "network": network,
            "loss": {"name": params.text("loss")?},
            "optimizer": {"name": params.text("optimizer")?},
            "schedule": {"learning_rate": params.float("learning_rate")?, "total_iterations": 1, "decay": {"name": params.text("lr_decay")?}},
            "sampler": {"patch": params.value("patch").cloned().unwrap_or(Value::Null), "batch_size": params.int("batch_size")?},
            "normalization": normalization,
            "labels": params.text("labels")?,
            "epochs": params.int("epochs")?, "iterations_per_epoch": params.int("iterations_per_epoch")?,
            "validate_every": params.int("validate_every")?, "patience": params.int("patience")?, "seed": params.int("seed")?,
        });
        TrainConfig::from_json(&config.to_string()).map_err(|e| self.failed(e.to_string()))
    }

    fn failed(&self, message: String) -> ToolError {
        ToolError::Failed { tool: self.spec.id.clone(), message }
    }

    /// A run error as the tool reports it, naming the parameter at fault where there is one.
    fn run_error(&self, error: RunError) -> ToolError {
        match error {
            RunError::Train(TrainError::Cancelled { .. }) => ToolError::Cancelled { tool: self.spec.id.clone() },
            RunError::Request { param, message } => self.failed(format!("parameter \"{param}\": {message}")),
            RunError::Model(e) => self.failed(format!("parameter \"model\": {e}")),
            RunError::Train(TrainError::Config(message)) if message.starts_with("patch ") => self.failed(format!("parameter \"patch\": {message}")),
            other => self.failed(other.to_string()),
        }
    }
}

/// Where the tool trains a model `name`: `$MEDAS_DATA/runs/NAME`.
pub fn run_folder(name: &str) -> PathBuf {
    medas_dataset::store::data_dir().join("runs").join(name)
}

/// Removes what an earlier run left in `out` (the tool never resumes).
fn clear_run(out: &Path) -> std::io::Result<()> {
    for folder in ["best", "last", "last.partial"] {
        match std::fs::remove_dir_all(out.join(folder)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    match std::fs::remove_file(out.join("metrics.jsonl")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn metrics_table(metrics: &[EpochMetrics]) -> Table {
    let column = |value: fn(&EpochMetrics) -> f64| metrics.iter().map(value).collect::<Vec<f64>>();
    Table::new()
        .with_numbers("epoch", column(|m| (m.epoch + 1) as f64))
        .and_then(|t| t.with_numbers("train_loss", column(|m| m.train_loss)))
        .and_then(|t| t.with_numbers("validation_dice", column(|m| m.validation_dice.unwrap_or(f64::NAN))))
        .and_then(|t| t.with_numbers("learning_rate", column(|m| m.learning_rate)))
        .and_then(|t| t.with_numbers("seconds", column(|m| m.seconds)))
        .expect("columns of one length")
}

impl TrainNetwork {
    fn train(&self, params: &Params, context: &Context) -> Result<TrainReport, ToolError> {
        let model = params.text("model")?.to_string();
        let store = ModelStore::open_default();
        let out = run_folder(&model);
        let request = RunRequest { dataset: params.text("dataset")?.to_string(), split: params.optional_text("split")?.map(str::to_string), fold: params.int("fold")? as usize, out: out.clone(), resume: false, model: Some(model.clone()) };
        // Settings are checked (and the patch against the network) before any case is read.
        check_patch(&self.config(params, 1)?).map_err(|e| self.run_error(e))?;
        check_model_name(&store, &model, &out).map_err(|e| self.run_error(e))?;
        let probe = self.config(params, 1)?;
        let fold = load_fold(&medas_dataset::store::data_dir(), &request, &probe).map_err(|e| self.run_error(e))?;
        let config = self.config(params, fold.training[0].shape[0])?;
        context.log(&format!("{} training and {} validation cases of {}@v{}; run folder {}", fold.training.len(), fold.validation.len(), fold.name, fold.version, out.display()));
        clear_run(&out).map_err(|e| self.failed(format!("{}: {e}", out.display())))?;
        let total = (config.epochs * config.iterations_per_epoch) as f64;
        let mut events = |event: TrainEvent| {
            match event {
                TrainEvent::Iteration { epoch, iteration, of, .. } => context.progress((epoch * of + iteration + 1) as f64 / total),
                TrainEvent::Epoch(m) => context.log(&format!("epoch {}: loss {:.4}, validation Dice {}", m.epoch + 1, m.train_loss, m.validation_dice.map_or("-".into(), |d| format!("{d:.4}")))),
            }
            !context.is_cancelled()
        };
        let trained = train_loaded(&config, fold, &request, &store, &mut events).map_err(|e| self.run_error(e))?;
        context.log(&format!("stored model {} ({})", trained.model, trained.model_dir.display()));
        Ok(trained.report)
    }
}

impl Tool for TrainNetwork {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn run(&self, _inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError> {
        let report = self.train(params, context)?;
        let best = report.best_dice.ok_or_else(|| self.failed("no validation ran".into()))?;
        Ok(Outputs::from([("best_dice".to_string(), Data::Scalar(best)), ("metrics".to_string(), Data::Table(metrics_table(&report.metrics)))]))
    }
}

medas_tools::inventory::submit! { ToolEntry { build: || Arc::new(TrainNetwork::new(&NETWORK_TOOLS[0])) } }
medas_tools::inventory::submit! { ToolEntry { build: || Arc::new(TrainNetwork::new(&NETWORK_TOOLS[1])) } }
medas_tools::inventory::submit! { ToolEntry { build: || Arc::new(TrainNetwork::new(&NETWORK_TOOLS[2])) } }
medas_tools::inventory::submit! { ToolEntry { build: || Arc::new(TrainNetwork::new(&NETWORK_TOOLS[3])) } }
medas_tools::inventory::submit! { ToolEntry { build: || Arc::new(TrainNetwork::new(&NETWORK_TOOLS[4])) } }

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults(tool: &TrainNetwork) -> Params {
        let given = json!({"dataset": "d", "model": "m"});
        Params::resolve(&tool.spec, given.as_object().unwrap()).unwrap()
    }

    /// Each tool's id names its network, its defaults make a valid config for that network,
    /// and its default patch fits the default depth.
    #[test]
    fn every_tool_builds_its_own_network_from_its_defaults() {
        for entry in &NETWORK_TOOLS {
            let tool = TrainNetwork::new(entry);
            assert_eq!(tool.spec.id, format!("network.train_{}", entry.network));
            let config = tool.config(&defaults(&tool), 3).unwrap();
            assert_eq!(config.network.name(), entry.network);
            assert_eq!(config.network.classes(), 2);
            check_patch(&config).unwrap_or_else(|e| panic!("{}: {e}", tool.spec.id));
        }
    }

    #[test]
    fn clip_settings_reach_the_config_only_for_clip_zscore() {
        let tool = TrainNetwork::new(&NETWORK_TOOLS[1]);
        let given = json!({"dataset": "d", "model": "m", "normalization": "clip_zscore", "clip_low": -150, "clip_high": 250, "kernel": 3});
        let config = tool.config(&Params::resolve(&tool.spec, given.as_object().unwrap()).unwrap(), 1).unwrap();
        assert_eq!(config.normalization, crate::Normalization::ClipZscore { low: -150.0, high: 250.0 });
        assert_eq!(serde_json::to_value(&config.network).unwrap()["kernel"], 3);
    }
}
