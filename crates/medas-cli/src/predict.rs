//! `medas predict MODEL`: label maps (and probabilities) for images or for the cases of a
//! registered dataset, with a stored model; per-case Dice where a case has a label, as JSON.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use medas_dataset::split;
use medas_dataset::store;
use medas_nn::{ComputeDevice, ModelStore};
use medas_train::predict::{CaseInput, CaseSummary, PredictOptions, Predictor, predict_case_files};

#[derive(Args)]
pub struct PredictArgs {
    /// The stored model (`medas model list`).
    model: String,
    /// Image files (or DICOM series folders), one case each; the output is named after the
    /// file without its extension.
    #[arg(long, num_args = 1.., required_unless_present = "dataset", conflicts_with = "dataset")]
    input: Vec<PathBuf>,
    /// A registered dataset, `NAME` (latest version) or `NAME@vN`: its cases (all of them, a
    /// fold's validation cases with --split, or those named with --cases).
    #[arg(long)]
    dataset: Option<String>,
    /// A saved split of the dataset version: predict the validation cases of --fold.
    #[arg(long, requires = "dataset", conflicts_with = "cases")]
    split: Option<String>,
    /// The fold of --split.
    #[arg(long, default_value_t = 0, requires = "split")]
    fold: usize,
    /// Case ids of the dataset, comma-separated.
    #[arg(long, value_delimiter = ',', requires = "dataset")]
    cases: Vec<String>,
    /// The output folder: `CASE.nrrd` (uint8 labels, the input's geometry),
    /// `CASE_probabilities.nrrd` with --probabilities, `summary.json`.
    #[arg(long)]
    out: PathBuf,
    /// Also write the class probabilities (float32, one vector component per class).
    #[arg(long)]
    probabilities: bool,
    /// Test-time augmentation: average the predictions of every mirror image.
    #[arg(long)]
    tta: bool,
    /// Fraction of a window shared with its neighbour, in [0, 1).
    #[arg(long, default_value_t = 0.5)]
    overlap: f64,
    /// The window size `D,H,W` [default: the model's training patch].
    #[arg(long)]
    patch: Option<String>,
    /// Windows per forward pass.
    #[arg(long, default_value_t = 1)]
    batch_size: usize,
    /// The compute device: `cpu`, or `gpu` / `gpu:N` in builds with `--features gpu` (docs/gpu.md).
    #[arg(long, default_value = "cpu")]
    device: ComputeDevice,
}

pub fn run(args: &PredictArgs) -> Result<()> {
    let device = args.device.open()?;
    let model = ModelStore::open_default().load(&args.model, &device)?;
    let options = PredictOptions { patch: args.patch.as_deref().map(crate::model::parse_patch).transpose()?, overlap: args.overlap, flips: args.tta, batch_size: args.batch_size };
    let predictor = Predictor::new(&args.model, model, &options, device)?;
    let cases = match &args.dataset {
        Some(reference) => dataset_cases(reference, args)?,
        None => input_cases(&args.input)?,
    };
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot make {}", args.out.display()))?;
    let bar = crate::progress::Bar::new("predicting");
    let mut summaries: Vec<CaseSummary> = Vec::new();
    for (n, case) in cases.iter().enumerate() {
        bar.update(n, cases.len());
        let summary = predict_case_files(&predictor, case, &args.out, args.probabilities, &mut |_| true);
        summaries.push(summary.inspect_err(|_| bar.finish())?);
    }
    bar.finish();
    let scored: Vec<f64> = summaries.iter().filter_map(|s| s.mean_dice).collect();
    let mean_dice = (!scored.is_empty()).then(|| scored.iter().sum::<f64>() / scored.len() as f64);
    let summary = serde_json::json!({"model": args.model, "out": args.out, "cases": summaries, "mean_dice": mean_dice});
    let text = serde_json::to_string_pretty(&summary)? + "\n";
    let path = args.out.join("summary.json");
    std::fs::write(&path, &text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(crate::emit(&text)?)
}

/// One case per input path, named after the file without its extension(s).
fn input_cases(inputs: &[PathBuf]) -> Result<Vec<CaseInput>> {
    let mut cases: Vec<CaseInput> = Vec::new();
    for path in inputs {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let stem = name.strip_suffix(".gz").unwrap_or(&name);
        let id = stem.rsplit_once('.').map_or(stem, |(base, _)| base).to_string();
        if id.is_empty() {
            bail!("{}: cannot name an output after this path", path.display());
        }
        if let Some(other) = cases.iter().find(|c| c.id == id) {
            bail!("{} and {} would both be written as {id}.nrrd", other.images[0].display(), path.display());
        }
        cases.push(CaseInput { id, images: vec![path.clone()], label: None });
    }
    Ok(cases)
}

/// The cases of a dataset version that `args` selects.
fn dataset_cases(reference: &str, args: &PredictArgs) -> Result<Vec<CaseInput>> {
    let data = store::data_dir();
    let (name, version) = store::parse_reference(reference)?;
    let manifest = store::load(&data, &name, version)?;
    let wanted: Option<Vec<String>> = match &args.split {
        Some(split_name) => {
            let path = split::split_path(&data, &name, manifest.version, split_name);
            let text = std::fs::read_to_string(&path).with_context(|| format!("no split {split_name} of {name}@v{} ({})", manifest.version, path.display()))?;
            let saved: split::Split = serde_json::from_str(&text).with_context(|| path.display().to_string())?;
            let count = saved.folds.len();
            Some(saved.folds.into_iter().nth(args.fold).with_context(|| format!("split {split_name} has {count} folds; --fold {} is not one", args.fold))?.validation)
        }
        None if !args.cases.is_empty() => Some(args.cases.clone()),
        None => None,
    };
    if let Some(ids) = &wanted
        && let Some(missing) = ids.iter().find(|id| !manifest.cases.iter().any(|c| &c.id == *id))
    {
        bail!("{name}@v{} has no case {missing}", manifest.version);
    }
    Ok(manifest
        .cases
        .iter()
        .filter(|c| wanted.as_ref().is_none_or(|ids| ids.contains(&c.id)))
        .map(|c| CaseInput { id: c.id.clone(), images: c.images.iter().map(|e| e.path.clone()).collect(), label: c.label.as_ref().map(|e| e.path.clone()) })
        .collect())
}
