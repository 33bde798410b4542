//! Training on generated nuclei tiles (medas-synth, MoNuSeg layout, imported with
//! medas-dataset): a small 2-D U-Net must learn the nuclei, the same seed must give the same
//! loss curve, a run stopped and resumed must end with the same weights as an uninterrupted
//! one, and bad configs are refused with the reason.

use std::path::Path;

use medas_train::data::{LabelMode, Normalization, load_dataset_cases};
use medas_train::{TrainConfig, TrainEvent, Volume, train};

/// Ten 96×96 tiles: eight to train on, two to validate on.
fn nuclei(folder: &Path) -> (Vec<Volume>, Vec<Volume>) {
    let options = medas_synth::GenerateOptions { cases: 10, seed: 5, size: Some(vec![96]), overwrite: false };
    medas_synth::generate(medas_synth::Kind::Nuclei, &options, folder, &|_, _| {}).unwrap();
    let dataset = medas_dataset::import(folder, None, None).unwrap().dataset;
    let mut cases = load_dataset_cases(&dataset, Normalization::Zscore, LabelMode::Foreground, 2).unwrap();
    assert_eq!(cases[0].shape, [3, 1, 96, 96], "RGB tiles: 3 channels, depth 1");
    let validation = cases.split_off(8);
    (cases, validation)
}

fn config(epochs: usize, seed: u64) -> TrainConfig {
    TrainConfig::from_json(&format!(
        r#"{{"network": {{"name": "unet", "spatial": "2d", "in_channels": 3, "classes": 2, "depth": 3, "base_channels": 8}},
            "sampler": {{"patch": [1, 64, 64], "batch_size": 4}},
            "schedule": {{"learning_rate": 0.003, "total_iterations": 0, "decay": {{"name": "cosine"}}}},
            "epochs": {epochs}, "iterations_per_epoch": 15, "seed": {seed}}}"#
    ))
    .unwrap()
}

fn quiet(_: TrainEvent) -> bool {
    true
}

#[test]
fn a_2d_unet_learns_generated_nuclei_reproducibly() {
    let data = tempfile::tempdir().unwrap();
    let (training, validation) = nuclei(&data.path().join("nuclei"));
    let out = data.path().join("run");
    let report = train(&config(6, 1), training.clone(), &validation, &out, false, &mut quiet).unwrap();
    let losses: Vec<f64> = report.metrics.iter().map(|m| m.train_loss).collect();
    let dice = report.best_dice.unwrap();
    eprintln!("nuclei: losses {losses:.3?}, best validation Dice {dice:.3} (epoch {:?})", report.best_epoch);
    assert!(dice >= 0.75, "validation Dice {dice} after 90 steps");
    assert!(losses[5] < 0.6 * losses[0], "the loss falls: {losses:?}");
    assert_eq!(std::fs::read_to_string(out.join("metrics.jsonl")).unwrap().lines().count(), 6);
    assert!(out.join("best/model.bpk").is_file() && out.join("last/optimizer.bin").is_file());

    // The same seed gives the same curve (stopped after two epochs).
    let mut two_epochs = |event: TrainEvent| !matches!(event, TrainEvent::Epoch(m) if m.epoch == 1);
    let again = data.path().join("again");
    train(&config(6, 1), training, &validation, &again, false, &mut two_epochs).unwrap_err();
    let lines = std::fs::read_to_string(again.join("metrics.jsonl")).unwrap();
    let first_two: Vec<f64> = lines.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["train_loss"].as_f64().unwrap()).collect();
    assert_eq!(first_two, losses[..2]);
}

#[test]
fn a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one() {
    let data = tempfile::tempdir().unwrap();
    let (training, validation) = nuclei(&data.path().join("nuclei"));
    let whole = data.path().join("whole");
    train(&config(3, 9), training.clone(), &validation, &whole, false, &mut quiet).unwrap();
    // Stopped during the second epoch (after its 4th iteration), then resumed.
    let parts = data.path().join("parts");
    let mut stop_in_epoch_1 = |event: TrainEvent| !matches!(event, TrainEvent::Iteration { epoch: 1, iteration: 3, .. });
    let error = train(&config(3, 9), training.clone(), &validation, &parts, false, &mut stop_in_epoch_1).unwrap_err();
    assert_eq!(error.to_string(), "training cancelled after epoch 1");
    let resumed = train(&config(3, 9), training, &validation, &parts, true, &mut quiet).unwrap();
    assert_eq!(resumed.epochs_run, 3);
    let bytes = |run: &Path| std::fs::read(run.join("last/model.bpk")).unwrap();
    assert!(bytes(&whole) == bytes(&parts), "resumed weights differ from the uninterrupted run's");
    let curve = |run: &Path| std::fs::read_to_string(run.join("last/state.json")).unwrap();
    let losses = |text: String| serde_json::from_str::<serde_json::Value>(&text).unwrap()["metrics"].as_array().unwrap().iter().map(|m| m["train_loss"].as_f64().unwrap()).collect::<Vec<_>>();
    assert_eq!(losses(curve(&whole)), losses(curve(&parts)));
}

#[test]
fn bad_configs_are_refused_with_the_reason() {
    let error = |json: &str| TrainConfig::from_json(json).unwrap_err().to_string();
    let network = r#""network": {"name": "unet", "spatial": "2d"}"#;
    assert_eq!(error(&format!(r#"{{{network}, "epochs": 0, "iterations_per_epoch": 5}}"#)), "training config: epochs must be at least 1, got 0");
    assert_eq!(
        error(&format!(r#"{{{network}, "epochs": 1, "iterations_per_epoch": 5, "sampler": {{"foreground_fraction": 2}}}}"#)),
        "training config: sampler.foreground_fraction must be in [0, 1], got 2"
    );
    assert!(error(&format!(r#"{{{network}, "epochs": 1}}"#)).contains("missing field `iterations_per_epoch`"));
    assert!(error(r#"{"network": {"name": "unet"}, "epochs": 1, "iterations_per_epoch": 1, "optimizer": {"name": "adam", "beta_1": 2}}"#).contains("beta_1"));
}

#[test]
fn training_stops_when_validation_dice_stops_improving() {
    let data = tempfile::tempdir().unwrap();
    let (training, validation) = nuclei(&data.path().join("nuclei"));
    // A learning rate too small to change the prediction: the second validation cannot beat
    // the first, so patience 1 ends the run after two of five epochs.
    let config = TrainConfig::from_json(
        r#"{"network": {"name": "unet", "spatial": "2d", "in_channels": 3, "classes": 2, "depth": 2, "base_channels": 4},
            "sampler": {"patch": [1, 32, 32], "batch_size": 2},
            "schedule": {"learning_rate": 1e-12, "total_iterations": 0, "decay": {"name": "constant"}},
            "epochs": 5, "iterations_per_epoch": 2, "patience": 1, "seed": 3}"#,
    )
    .unwrap();
    let report = train(&config, training, &validation, &data.path().join("run"), false, &mut quiet).unwrap();
    assert!(report.stopped_early);
    assert_eq!(report.epochs_run, 2);
    assert_eq!(report.best_epoch, Some(0));
    let dice: Vec<f64> = report.metrics.iter().map(|m| m.validation_dice.unwrap()).collect();
    assert!(dice[1] <= dice[0], "{dice:?}");
}

#[test]
fn a_2d_unet_still_learns_nuclei_with_catalog_augmentations() {
    let data = tempfile::tempdir().unwrap();
    let (training, validation) = nuclei(&data.path().join("nuclei"));
    let augmentations = r#"[
        {"tool": "augment.affine", "params": {"rotation_max": 30, "scale_min": 0.85, "scale_max": 1.2}, "probability": 0.3},
        {"tool": "augment.elastic", "params": {"alpha_max": 20, "sigma_min": 6, "sigma_max": 8}, "probability": 0.2},
        {"tool": "augment.gaussian_noise", "params": {"std_max": 0.1}, "probability": 0.15},
        {"tool": "augment.gamma", "probability": 0.3}]"#;
    let config = config(6, 1);
    let json = serde_json::to_string(&config).unwrap().replace(r#""augmentations":[]"#, &format!(r#""augmentations":{augmentations}"#));
    let config = TrainConfig::from_json(&json).unwrap();
    assert_eq!(config.sampler.augmentations.len(), 4);
    let report = train(&config, training, &validation, &data.path().join("run"), false, &mut quiet).unwrap();
    let losses: Vec<f64> = report.metrics.iter().map(|m| m.train_loss).collect();
    let dice = report.best_dice.unwrap();
    eprintln!("nuclei with augmentations: losses {losses:.3?}, best validation Dice {dice:.3} (epoch {:?})", report.best_epoch);
    assert!(dice >= 0.75, "validation Dice {dice} after 90 steps with augmentations");
    assert!(losses[5] < 0.7 * losses[0], "the loss falls: {losses:?}");
}
