//! `medas train`: trains a network on a registered dataset version, one fold of a saved split
//! (or a seeded 20% hold-out), with a progress bar, a line per epoch, Ctrl-C to stop and
//! `--resume` to go on. Classifiers (`classifier`, `dpn`) learn the dataset's class labels (one
//! per case); their class names go into the run's `config.json` and `classes.json`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use clap::Args;
use medas_dataset::split::{self, SplitKind, SplitOptions};
use medas_dataset::store;
use medas_train::classes::{assign_classes, class_names, manifest_class_labels};
use medas_train::data::load_manifest_cases;
use medas_nn::ComputeDevice;
use medas_train::{EpochMetrics, TrainConfig, TrainEvent, train};

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
    let data = store::data_dir();
    let (name, version) = store::parse_reference(&args.dataset)?;
    let manifest = store::load(&data, &name, version)?;
    let fold = match &args.split {
        Some(split_name) => {
            let path = split::split_path(&data, &name, manifest.version, split_name);
            let text = std::fs::read_to_string(&path).with_context(|| format!("no split {split_name} of {name}@v{} ({})", manifest.version, path.display()))?;
            let saved: split::Split = serde_json::from_str(&text).with_context(|| path.display().to_string())?;
            let count = saved.folds.len();
            saved.folds.into_iter().nth(args.fold).with_context(|| format!("split {split_name} has {count} folds; --fold {} is not one", args.fold))?
        }
        None => {
            let classifier = config.is_classifier();
            let options = SplitOptions { kind: SplitKind::Holdout { validation_fraction: 0.2 }, seed: config.seed, stratify: classifier, group_by_patient: classifier };
            split::split_manifest(&manifest, "holdout", options)?.folds.remove(0)
        }
    };
    if fold.train.is_empty() || fold.validation.is_empty() {
        bail!("the fold has {} training and {} validation cases; both must be non-empty", fold.train.len(), fold.validation.len());
    }
    let classes = config.network.classes();
    eprintln!("loading {} training and {} validation cases of {name}@v{}", fold.train.len(), fold.validation.len(), manifest.version);
    let mut training = load_manifest_cases(&manifest, Some(&fold.train), config.normalization, config.labels, classes)?;
    let mut validation = load_manifest_cases(&manifest, Some(&fold.validation), config.normalization, config.labels, classes)?;
    if config.is_classifier() {
        // The names come from every case of the version, so all folds share one mapping.
        let labels = manifest_class_labels(&manifest);
        if config.class_names.is_empty() {
            config.class_names = class_names(labels.values().map(String::as_str), classes)?;
        }
        assign_classes(&mut training, &labels, &config.class_names)?;
        assign_classes(&mut validation, &labels, &config.class_names)?;
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot make {}", args.out.display()))?;
    std::fs::write(args.out.join("config.json"), serde_json::to_string_pretty(&config)?)?;

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
    let report = train(&config, training, &validation, &args.out, args.resume, &mut on_event);
    bar.finish();
    let report = report.map_err(|e| match e {
        medas_train::TrainError::Cancelled { epoch } => anyhow::anyhow!("stopped in epoch {}; `medas train ... --resume` goes on from the last finished epoch", epoch + 1),
        other => other.into(),
    })?;
    let model = crate::model::save_trained(&args.out, args.model.as_deref(), &name, manifest.version)?;
    let mut summary = serde_json::json!({
        "epochs_run": report.epochs_run,
        "best_validation_dice": report.best_dice,
        "best_epoch": report.best_epoch.map(|e| e + 1),
        "stopped_early": report.stopped_early,
        "run": args.out,
        "model": model,
    });
    if classifier {
        summary["best_validation_accuracy"] = report.best_accuracy.into();
        summary["best_validation_auc"] = report.best_auc.into();
        summary["classes"] = config.class_names.clone().into();
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
