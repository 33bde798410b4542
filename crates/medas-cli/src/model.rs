//! `medas model list|show|delete|import`: the model store in the MEDAS data folder
//! (`$MEDAS_DATA/models`, else `$XDG_DATA_HOME/medas/models`, else
//! `~/.local/share/medas/models`). `medas train` stores its run's best checkpoint there through
//! `medas_train::run`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use medas_nn::store::{ModelMetadata, ModelStore, weights};
use medas_nn::{ComputeDevice, NetworkConfig};
use medas_train::{LabelMode, Normalization};

#[derive(Subcommand)]
pub enum ModelCommand {
    /// The stored models: name, network, creation time, size, metrics.
    List {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// One model's network config and metadata (training settings, metrics, dataset), as JSON.
    Show { name: String },
    /// Remove a model (no question asked).
    Delete { name: String },
    /// Store weights trained elsewhere (`--config` + `--weights`), or a training run's best
    /// checkpoint (`--run`), as a model.
    Import(ImportArgs),
}

#[derive(Args)]
pub struct ImportArgs {
    /// The name to store the model under (letters, digits, '.', '-', '_').
    name: String,
    /// The network config (JSON, as in a training config's "network").
    #[arg(long, required_unless_present = "run")]
    config: Option<PathBuf>,
    /// The weights: safetensors with MEDAS module-path names, or with `--pytorch` a PyTorch
    /// U-Net `state_dict` saved as safetensors.
    #[arg(long, required_unless_present = "run")]
    weights: Option<PathBuf>,
    /// Instead of --config and --weights: the best checkpoint of a `medas train` run folder
    /// (what `medas train` stores by itself at the end).
    #[arg(long, conflicts_with_all = ["config", "weights", "pytorch", "normalization", "labels", "patch"])]
    run: Option<PathBuf>,
    /// The weights use PyTorch's names (plain U-Net only).
    #[arg(long)]
    pytorch: bool,
    /// How inputs are normalised for this model, as JSON: `{"kind": "zscore"}` (default),
    /// `{"kind": "clip_zscore", "low": -100, "high": 300}` or `{"kind": "none"}`.
    #[arg(long)]
    normalization: Option<String>,
    /// How label values become classes when predictions are scored: `classes` (default) or
    /// `foreground`.
    #[arg(long)]
    labels: Option<String>,
    /// The window size for prediction, `D,H,W` (`1,H,W` for a 2-D network).
    #[arg(long)]
    patch: Option<String>,
    /// Replace a model of the same name.
    #[arg(long)]
    overwrite: bool,
}

pub fn run(command: &ModelCommand) -> Result<()> {
    let store = ModelStore::open_default();
    match command {
        ModelCommand::List { json } => list(&store, *json),
        ModelCommand::Show { name } => show(&store, name),
        ModelCommand::Delete { name } => {
            store.delete(name)?;
            eprintln!("deleted model {name}");
            Ok(())
        }
        ModelCommand::Import(args) => import(&store, args),
    }
}

fn list(store: &ModelStore, json: bool) -> Result<()> {
    let models = store.list()?;
    if json {
        let rows: Vec<serde_json::Value> = models
            .iter()
            .map(|m| serde_json::json!({"name": m.name, "network": m.network, "created": m.created, "bytes": m.bytes, "metrics": m.metrics, "problem": m.problem}))
            .collect();
        return Ok(crate::emit(&(serde_json::to_string_pretty(&rows)? + "\n"))?);
    }
    if models.is_empty() {
        return Ok(crate::emit(&format!("no models in {}\n", crate::shown(store.root())))?);
    }
    let rows: Vec<Vec<String>> = models
        .iter()
        .map(|m| {
            let metrics: Vec<String> = m.metrics.iter().map(|(k, v)| if v.fract() == 0.0 { format!("{k}={v}") } else { format!("{k}={v:.4}") }).collect();
            let note = m.problem.as_ref().map_or(String::new(), |p| format!("unreadable: {p}"));
            vec![m.name.clone(), m.network.clone(), m.created.clone(), size_text(m.bytes), metrics.join(" "), note]
        })
        .collect();
    Ok(crate::emit(&crate::dataset::table(&["model", "network", "created", "size", "metrics", ""], &rows))?)
}

fn size_text(bytes: u64) -> String {
    match bytes {
        0..1_000_000 => format!("{:.1} kB", bytes as f64 / 1e3),
        _ => format!("{:.1} MB", bytes as f64 / 1e6),
    }
}

fn show(store: &ModelStore, name: &str) -> Result<()> {
    let model = store.load(name, &ComputeDevice::Cpu.inference())?;
    let shown = serde_json::json!({"name": name, "path": store.model_dir(name)?, "config": model.config, "metadata": model.metadata});
    Ok(crate::emit(&(serde_json::to_string_pretty(&shown)? + "\n"))?)
}

fn import(store: &ModelStore, args: &ImportArgs) -> Result<()> {
    let (Some(config_path), Some(weights_path)) = (&args.config, &args.weights) else {
        let run = args.run.as_ref().expect("clap requires --run without --config and --weights");
        let dir = medas_train::export::export_run(run, store, &args.name, None)?;
        eprintln!("stored the best checkpoint of {} as model {} ({})", run.display(), args.name, dir.display());
        return Ok(());
    };
    let text = std::fs::read_to_string(config_path).with_context(|| format!("cannot read {}", config_path.display()))?;
    let config = NetworkConfig::from_json(&text).with_context(|| config_path.display().to_string())?;
    let device = ComputeDevice::Cpu.inference();
    let network = if args.pytorch {
        medas_nn::store::pytorch::import_unet(&config, weights_path, &device)?
    } else {
        let bytes = std::fs::read(weights_path).with_context(|| format!("cannot read {}", weights_path.display()))?;
        weights::load_weights(config.build(&device)?, &bytes).with_context(|| weights_path.display().to_string())?
    };
    let mut metadata = ModelMetadata::now();
    metadata.training = import_training(args)?;
    metadata.notes = serde_json::json!({"imported_from": weights_path, "naming": if args.pytorch { "pytorch" } else { "medas" }});
    let dir = store.save(&args.name, &config, &network, &metadata, args.overwrite)?;
    eprintln!("imported {} as model {} ({})", weights_path.display(), args.name, dir.display());
    Ok(())
}

/// The part of a training config prediction reads, from the import's options.
fn import_training(args: &ImportArgs) -> Result<serde_json::Value> {
    let normalization: Normalization = match &args.normalization {
        Some(text) => serde_json::from_str(text).with_context(|| format!("--normalization {text}"))?,
        None => Normalization::default(),
    };
    let labels: LabelMode = match &args.labels {
        Some(text) => serde_json::from_value(serde_json::Value::String(text.clone())).with_context(|| format!("--labels {text}: expected classes or foreground"))?,
        None => LabelMode::default(),
    };
    let mut training = serde_json::json!({"normalization": normalization, "labels": labels});
    if let Some(text) = &args.patch {
        training["sampler"] = serde_json::json!({"patch": parse_patch(text)?});
    }
    Ok(training)
}

/// `D,H,W` as three positive sizes.
pub fn parse_patch(text: &str) -> Result<[usize; 3]> {
    let sizes: Vec<usize> = text.split(',').map(|s| s.trim().parse::<usize>()).collect::<Result<_, _>>().ok().filter(|v: &Vec<usize>| v.len() == 3 && !v.contains(&0)).with_context(|| format!("patch {text:?}: expected three positive sizes D,H,W"))?;
    Ok([sizes[0], sizes[1], sizes[2]])
}
