//! A training run's best checkpoint as a store model: the network rebuilt from the run's
//! config, its Burn checkpoint (`best/model.bpk`, else `last/model.bpk` when no validation
//! ran) loaded, and saved with [`ModelStore::save`] as config + safetensors weights + metadata.
//!
//! The metadata's `training` entry is the run's whole [`TrainConfig`] as JSON: prediction reads
//! its `normalization`, `labels` and `sampler.patch` from there (see [`crate::predict`]), so a
//! stored model is normalised the way it was trained (a classifier's `class_names` too).
//! `metrics` holds `best_validation_dice` (classifiers: `best_validation_accuracy`,
//! `best_validation_auc`), `best_epoch` (1-based), `epochs_run` and `final_train_loss`; `notes`
//! names the run folder and the checkpoint used.

use std::path::{Path, PathBuf};

use burn::module::Module;
use medas_nn::store::{DatasetRef, METADATA_FILE, ModelMetadata, ModelStore, StoreError};
use medas_nn::{ComputeDevice, Network, NetworkConfig};

use crate::train::{Checkpoint, TrainConfig};

/// The file a run folder keeps its training config in (written by `medas train`).
pub const RUN_CONFIG: &str = "config.json";

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("run {run}: {message}")]
    Run { run: PathBuf, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Saves the best checkpoint of the run in `run` as model `name` of `store`. A model of that
/// name that was exported from the same run folder is replaced (a resumed or repeated run);
/// any other existing model of that name is an error ([`StoreError::Exists`]).
pub fn export_run(run: &Path, store: &ModelStore, name: &str, dataset: Option<DatasetRef>) -> Result<PathBuf, ExportError> {
    let run_error = |message: String| ExportError::Run { run: run.to_path_buf(), message };
    let config_path = run.join(RUN_CONFIG);
    let text = std::fs::read_to_string(&config_path).map_err(|e| run_error(format!("cannot read {RUN_CONFIG}: {e}")))?;
    let config = TrainConfig::from_json(&text).map_err(|e| run_error(e.to_string()))?;
    let (checkpoint, which) = match run.join("best/model.bpk") {
        best if best.is_file() => (best, "best"),
        _ => (run.join("last/model.bpk"), "last"),
    };
    // Weights do not depend on the device: read them on the CPU even for a run trained on a GPU.
    let network = load_checkpoint(&config.network, &checkpoint, &ComputeDevice::Cpu.inference()).map_err(run_error)?;
    let state: Checkpoint = match std::fs::read_to_string(run.join("last/state.json")) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| run_error(format!("last/state.json: {e}")))?,
        Err(_) => Checkpoint::default(),
    };
    let run_folder = std::fs::canonicalize(run).unwrap_or_else(|_| run.to_path_buf());
    let mut metadata = ModelMetadata::now();
    metadata.dataset = dataset;
    metadata.training = serde_json::to_value(&config).expect("a training config serialises");
    metadata.metrics = run_metrics(&state);
    metadata.notes = serde_json::json!({"run": run_folder, "checkpoint": which});
    let overwrite = exported_from(store, name, &run_folder);
    Ok(store.save(name, &config.network, &network, &metadata, overwrite)?)
}

/// The network `config` builds on `device` with the weights of a Burn checkpoint.
pub fn load_checkpoint(config: &NetworkConfig, path: &Path, device: &burn::tensor::Device) -> Result<Network, String> {
    if !path.is_file() {
        return Err(format!("no checkpoint {} (has an epoch finished?)", path.display()));
    }
    let network = config.build(device).map_err(|e| e.to_string())?;
    network.try_load_file(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn run_metrics(state: &Checkpoint) -> std::collections::BTreeMap<String, f64> {
    let mut metrics = std::collections::BTreeMap::new();
    metrics.insert("epochs_run".to_string(), state.epochs_done as f64);
    if let Some(dice) = state.best_dice {
        metrics.insert("best_validation_dice".to_string(), dice);
    }
    for (key, value) in [("best_validation_accuracy", state.best_accuracy), ("best_validation_auc", state.best_auc)] {
        if let Some(value) = value {
            metrics.insert(key.to_string(), value);
        }
    }
    if let Some(epoch) = state.best_epoch {
        metrics.insert("best_epoch".to_string(), (epoch + 1) as f64);
    }
    if let Some(last) = state.metrics.last() {
        metrics.insert("final_train_loss".to_string(), last.train_loss);
    }
    metrics
}

/// Whether model `name` exists and its metadata names `run` as the run it came from.
pub(crate) fn exported_from(store: &ModelStore, name: &str, run: &Path) -> bool {
    let Ok(dir) = store.model_dir(name) else { return false };
    let Ok(text) = std::fs::read_to_string(dir.join(METADATA_FILE)) else { return false };
    let Ok(metadata) = serde_json::from_str::<ModelMetadata>(&text) else { return false };
    metadata.notes.get("run").and_then(|r| r.as_str()).is_some_and(|r| Path::new(r) == run)
}

/// The model name `medas train` uses when none is given: `DATASET-RUN` (the run folder's
/// name), with every character a model name may not hold replaced by `_`.
pub fn default_model_name(dataset: &str, run: &Path) -> String {
    let folder = run.file_name().map_or_else(|| "run".to_string(), |n| n.to_string_lossy().into_owned());
    let name: String = format!("{dataset}-{folder}").chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).collect();
    name.trim_start_matches(['.', '-']).chars().take(128).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{TrainEvent, Volume, train};
    use burn::tensor::{Tensor, TensorData};
    use medas_dataset::split::SplitMix64;
    use medas_nn::NetworkOutput;

    fn noise_case(id: &str, seed: u64) -> Volume {
        let mut rng = SplitMix64::new(seed);
        let image: Vec<f32> = (0..16 * 16).map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32).collect();
        let label = image.iter().map(|&v| u8::from(v > 0.5)).collect();
        Volume { id: id.to_string(), shape: [1, 1, 16, 16], image, label: Some(label), class: None }
    }

    fn logits(network: &Network, input: &[f32]) -> Vec<f32> {
        let x = Tensor::<5>::from_data(TensorData::new(input.to_vec(), [1, 1, 1, 16, 16]), &network.devices()[0]);
        match network.valid().forward(x).unwrap() {
            NetworkOutput::Segmentation(out) => out.logits.into_data().convert::<f32>().try_into_vec::<f32>().unwrap(),
            NetworkOutput::Classes(_) => unreachable!("a U-Net"),
        }
    }

    /// Batch norm's running statistics are buffers: the round trip must carry them too, so the
    /// network trains a few steps first. Tolerance 0: the same f32 weights run the same ops.
    #[test]
    fn an_exported_run_predicts_exactly_as_its_checkpoint() {
        let folder = tempfile::tempdir().unwrap();
        let run = folder.path().join("run");
        let config = TrainConfig::from_json(
            r#"{"network": {"name": "unet", "spatial": "2d", "in_channels": 1, "classes": 2, "depth": 1, "base_channels": 4, "norm": "batch"},
                "sampler": {"patch": [1, 16, 16], "batch_size": 2}, "epochs": 1, "iterations_per_epoch": 2, "seed": 3}"#,
        )
        .unwrap();
        let cases = vec![noise_case("a", 1), noise_case("b", 2)];
        train(&config, cases.clone(), &cases[..1], &run, false, &mut |_: TrainEvent| true).unwrap();
        std::fs::write(run.join(RUN_CONFIG), serde_json::to_string(&config).unwrap()).unwrap();
        let store = ModelStore::new(folder.path().join("models"));
        let dataset = Some(DatasetRef { name: "noise".into(), version: "v1".into() });
        export_run(&run, &store, "noise-run", dataset.clone()).unwrap();

        let device = config.device.inference();
        let loaded = store.load("noise-run", &device).unwrap();
        let checkpoint = load_checkpoint(&config.network, &run.join("best/model.bpk"), &device).unwrap();
        let input = &noise_case("c", 9).image;
        assert_eq!(logits(&loaded.network, input), logits(&checkpoint, input));
        assert_eq!(loaded.metadata.dataset, dataset);
        assert_eq!(loaded.metadata.training["normalization"]["kind"], "zscore");
        assert_eq!(loaded.metadata.metrics["epochs_run"], 1.0);
        assert!(loaded.metadata.metrics.contains_key("best_validation_dice"));

        // Exporting the same run again replaces its model; another run may not take the name.
        export_run(&run, &store, "noise-run", None).unwrap();
        let other = folder.path().join("other");
        std::fs::create_dir_all(other.join("best")).unwrap();
        std::fs::copy(run.join(RUN_CONFIG), other.join(RUN_CONFIG)).unwrap();
        std::fs::copy(run.join("best/model.bpk"), other.join("best/model.bpk")).unwrap();
        let error = export_run(&other, &store, "noise-run", None).unwrap_err().to_string();
        assert!(error.contains("already exists"), "{error}");
    }

    #[test]
    fn default_names_are_valid_model_names() {
        assert_eq!(default_model_name("nuclei", Path::new("/tmp/runs/first run")), "nuclei-first_run");
        assert_eq!(default_model_name("tiles", Path::new("run")), "tiles-run");
        medas_nn::store::validate_name(&default_model_name("x", Path::new(".."))).unwrap();
    }
}
