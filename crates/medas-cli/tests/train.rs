//! End-to-end `medas train`: a generated nuclei dataset (`medas dataset generate --import`),
//! a short 2-D U-Net run with a seeded hold-out, its run folder and summary, a resumed run that
//! has nothing left to do, and the errors a user meets first.

use medas_testkit::scratch_dir;
mod support;

use support::{medas, ok};

#[test]
fn train_runs_on_a_generated_dataset_and_resumes() {
    let root = scratch_dir("cli-train");
    let data = root.join("data");
    let tiles = root.join("tiles");
    ok(&data, &["dataset", "generate", "nuclei", tiles.to_str().unwrap(), "--cases", "5", "--size", "64", "--seed", "2", "--import"]);
    let config = root.join("train.json");
    std::fs::write(
        &config,
        r#"{"network": {"name": "unet", "spatial": "2d", "in_channels": 3, "classes": 2, "depth": 2, "base_channels": 4},
            "sampler": {"patch": [1, 32, 32], "batch_size": 2}, "labels": "foreground",
            "epochs": 2, "iterations_per_epoch": 3, "seed": 4}"#,
    )
    .unwrap();
    let run = root.join("run");
    let args = ["train", "tiles", "--config", config.to_str().unwrap(), "--out", run.to_str().unwrap()];
    let summary: serde_json::Value = serde_json::from_str(&ok(&data, &args)).unwrap();
    assert_eq!(summary["epochs_run"], 2);
    let dice = summary["best_validation_dice"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&dice), "{summary}");
    assert_eq!(std::fs::read_to_string(run.join("metrics.jsonl")).unwrap().lines().count(), 2);
    for file in ["config.json", "best/model.bpk", "last/model.bpk", "last/optimizer.bin", "last/state.json"] {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    // Resuming a finished run trains nothing more and reports the same.
    let resumed: serde_json::Value = serde_json::from_str(&ok(&data, &[&args[..], &["--resume"]].concat())).unwrap();
    assert_eq!(resumed, summary);

    let out = medas(&data, &["train", "absent", "--config", config.to_str().unwrap(), "--out", run.to_str().unwrap()]);
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && message.contains("absent") && !message.contains("panicked"), "{message}");
    std::fs::write(&config, r#"{"network": {"name": "unet"}, "epochs": 0, "iterations_per_epoch": 1}"#).unwrap();
    let out = medas(&data, &args);
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(message.contains("epochs must be at least 1, got 0"), "{message}");
}

#[test]
fn train_a_classifier_on_generated_brain_classes() {
    let root = scratch_dir("cli-train-classifier");
    let data = root.join("data");
    let brains = root.join("brains");
    ok(&data, &["dataset", "generate", "brain-classes", brains.to_str().unwrap(), "--cases", "9", "--size", "64", "--seed", "3", "--import"]);
    let config = root.join("train.json");
    std::fs::write(
        &config,
        r#"{"network": {"name": "classifier", "spatial": "2d", "in_channels": 1, "classes": 2, "depth": 2, "base_channels": 4},
            "sampler": {"patch": [1, 32, 32], "batch_size": 4}, "epochs": 2, "iterations_per_epoch": 2, "seed": 4}"#,
    )
    .unwrap();
    let run = root.join("run");
    let out = medas(&data, &["train", "brains", "--config", config.to_str().unwrap(), "--out", run.to_str().unwrap()]);
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && progress.contains("validation accuracy"), "{progress}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let accuracy = summary["best_validation_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&accuracy), "{summary}");
    assert_eq!(summary["classes"], serde_json::json!(["AD", "CN"]));
    assert_eq!(summary["epochs_run"], 2);
    // The run records the class names for prediction: in its config and in classes.json.
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(saved["class_names"], summary["classes"]);
    assert!(run.join("classes.json").is_file());
    let first: serde_json::Value = serde_json::from_str(std::fs::read_to_string(run.join("metrics.jsonl")).unwrap().lines().next().unwrap()).unwrap();
    assert!(first["validation_accuracy"].is_f64(), "{first}");
}
