//! `medas train`: trains a network on a registered dataset version, one fold of a saved split
//! (or a seeded 20% hold-out), with a progress bar, a line per epoch, Ctrl-C to stop and
//! `--resume` to go on. Classifiers (`classifier`, `dpn`) learn the dataset's class labels (one
//! per case); their class names go into the run's `config.json` and `classes.json`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use clap::Args;
use medas_dataset::store;
use medas_nn::{ComputeDevice, ModelStore};
use medas_train::run::{RunError, RunRequest, train_dataset};
use medas_train::{EpochMetrics, TrainConfig, TrainError, TrainEvent};

#[derive(Args)]
pub struct TrainArgs {
    /// The dataset: `NAME` (latest version) or `NAME@vN`.
    dataset: String,
    /// The training config (JSON): network, loss, optimizer, schedule, sampler, epochs, ...
    #[arg(long)]
    config: PathBuf,
    /// A saved split of the dataset version (`medas dataset split`); default: a seeded 20%
    /// hold-out of the training cases (for classifiers stratified by class and grouped by
    /// patient).
    #[arg(long)]
    split: Option<String>,
    /// The fold of the split to train.
    #[arg(long, default_value_t = 0)]
    fold: usize,
    /// The run folder: checkpoints (`best/`, `last/`), `metrics.jsonl`, `config.json`.
    #[arg(long)]
    out: PathBuf,
    /// Go on from `OUT/last/` (the same config and data give the same result as a run that was
    /// never stopped).
    #[arg(long)]
    resume: bool,
    /// Save the best checkpoint in the model store under this name [default: DATASET-RUNFOLDER,
    /// e.g. `nuclei-run1`]; a model from the same run folder is replaced.
    #[arg(long)]
    model: Option<String>,
    /// The compute device, replacing the config's `"device"`: `cpu`, or `gpu` / `gpu:N` in builds
    /// with `--features gpu` (docs/gpu.md).
    #[arg(long)]
    device: Option<ComputeDevice>,
}

pub fn run(args: &TrainArgs) -> Result<()> {
    args.model.as_deref().map(medas_nn::store::validate_name).transpose()?;
    let text = std::fs::read_to_string(&args.config).with_context(|| format!("cannot read {}", args.config.display()))?;
    let mut config = TrainConfig::from_json(&text).with_context(|| format!("{}", args.config.display()))?;
    config.device = args.device.unwrap_or(config.device);
    let request = RunRequest { dataset: args.dataset.clone(), split: args.split.clone(), fold: args.fold, out: args.out.clone(), resume: args.resume, model: args.model.clone() };

    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
    let bar = crate::progress::Bar::new("training");
    let epochs = config.epochs;
    let classifier = config.is_classifier();
    let mut on_event = |event: TrainEvent| {
        match event {
            TrainEvent::Iteration { iteration, of, .. } => bar.update(iteration + 1, of),
            TrainEvent::Epoch(m) => eprintln!("epoch {}/{epochs}  loss {:.4}  {}  lr {:.2e}  {:.1} s", m.epoch + 1, m.train_loss, validation_figures(&m, classifier), m.learning_rate, m.seconds),
        }
        !stop.load(Ordering::SeqCst)
    };
    let trained = train_dataset(&config, &request, &store::data_dir(), &ModelStore::open_default(), &mut |line| eprintln!("{line}"), &mut on_event);
    bar.finish();
    let trained = trained.map_err(|e| match e {
        RunError::Train(TrainError::Cancelled { epoch }) => anyhow::anyhow!("stopped in epoch {}; `medas train ... --resume` goes on from the last finished epoch", epoch + 1),
        other => other.into(),
    })?;
    eprintln!("saved the best checkpoint as model {} ({})", trained.model, trained.model_dir.display());
    let report = trained.report;
    let mut summary = serde_json::json!({
        "epochs_run": report.epochs_run,
        "best_validation_dice": report.best_dice,
        "best_epoch": report.best_epoch.map(|e| e + 1),
        "stopped_early": report.stopped_early,
        "run": args.out,
        "model": trained.model,
    });
    if classifier {
        summary["best_validation_accuracy"] = report.best_accuracy.into();
        summary["best_validation_auc"] = report.best_auc.into();
        summary["classes"] = trained.class_names.into();
    }
    crate::emit(&(serde_json::to_string_pretty(&summary)? + "\n"))?;
    Ok(())
}

/// An epoch's validation figures for its progress line ("-" when it was not validated).
fn validation_figures(m: &EpochMetrics, classifier: bool) -> String {
    let shown = |value: Option<f64>| value.map_or("-".to_string(), |v| format!("{v:.4}"));
    if classifier {
        format!("validation accuracy {}  AUC {}", shown(m.validation_accuracy), shown(m.validation_auc))
    } else {
        format!("validation Dice {}", shown(m.validation_dice))
    }
}
