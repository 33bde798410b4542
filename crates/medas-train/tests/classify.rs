//! Classifier training on generated brain-classes volumes (medas-synth, CSV manifest layout with
//! a `label` column, imported with medas-dataset): the class names become indices, a small
//! classifier learns CN from AD, a stopped and resumed run ends with the weights of an
//! uninterrupted one, and a dataset without class labels is refused with the reason.

use std::sync::OnceLock;

use medas_train::classes::{assign_classes, class_names, dataset_class_labels};
use medas_train::data::{LabelMode, Normalization, load_dataset_cases};
use medas_train::{TrainConfig, TrainEvent, Volume, train};

/// Cases generated: a multiple of three, so a patient's follow-up (every third case) stays on
/// the side of the split its baseline is on.
const CASES: usize = 36;
/// The last cases (four patient groups) validate.
const VALIDATION: usize = 12;

struct Brains {
    names: Vec<String>,
    /// The generator's class of each case ("CN" or "AD"), by case order.
    truth: Vec<String>,
    /// Every case with its class set.
    volumes: Vec<Volume>,
}

/// 64³ brain volumes (the generator's smallest size), generated, imported and loaded once per
/// test binary; the files are removed once loaded.
fn brains() -> &'static Brains {
    static BRAINS: OnceLock<Brains> = OnceLock::new();
    BRAINS.get_or_init(|| {
        let folder = tempfile::tempdir().unwrap();
        let options = medas_synth::GenerateOptions { cases: CASES, seed: 11, size: Some(vec![64]), overwrite: false };
        medas_synth::generate(medas_synth::Kind::BrainClasses, &options, folder.path(), &|_, _| {}).unwrap();
        let dataset = medas_dataset::import(folder.path(), None, None).unwrap().dataset;
        let labels = dataset_class_labels(&dataset);
        let names = class_names(labels.values().map(String::as_str), 2).unwrap();
        let mut volumes = load_dataset_cases(&dataset, Normalization::Zscore, LabelMode::Classes, 2).unwrap();
        assign_classes(&mut volumes, &labels, &names).unwrap();
        let truth = volumes.iter().map(|v| labels[&v.id].clone()).collect();
        Brains { names, truth, volumes }
    })
}

fn split() -> (Vec<Volume>, Vec<Volume>) {
    let mut training = brains().volumes.clone();
    let validation = training.split_off(CASES - VALIDATION);
    (training, validation)
}

/// A 3-D classifier on the middle 32³ of the volumes (the ventricles and the brain around
/// them; the voxels are 3.75 mm).
fn config(epochs: usize, iterations: usize, seed: u64) -> TrainConfig {
    TrainConfig::from_json(&format!(
        r#"{{"network": {{"name": "classifier", "spatial": "3d", "in_channels": 1, "classes": 2, "depth": 2, "base_channels": 8, "convs_per_block": 1}},
            "sampler": {{"patch": [32, 32, 32], "batch_size": 8}},
            "schedule": {{"learning_rate": 0.005, "total_iterations": 0, "decay": {{"name": "cosine"}}}},
            "epochs": {epochs}, "iterations_per_epoch": {iterations}, "seed": {seed}, "class_names": ["AD", "CN"]}}"#
    ))
    .unwrap()
}

fn quiet(_: TrainEvent) -> bool {
    true
}

#[test]
fn class_labels_become_sorted_indices() {
    let brains = brains();
    assert_eq!(brains.names, ["AD", "CN"]);
    assert_eq!(brains.volumes[0].shape, [1, 64, 64, 64]);
    for (volume, truth) in brains.volumes.iter().zip(&brains.truth) {
        assert_eq!(brains.names[volume.class.unwrap()], *truth, "case {}", volume.id);
    }
    let ad = brains.truth.iter().filter(|t| *t == "AD").count();
    assert!(ad > 5 && ad < CASES - 5, "{ad} of {CASES} cases are AD");
}

#[test]
fn a_classifier_learns_generated_brain_classes() {
    let (training, validation) = split();
    let out = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let report = train(&config(8, 25, 1), training, &validation, out.path(), false, &mut quiet).unwrap();
    let accuracy: Vec<f64> = report.metrics.iter().map(|m| m.validation_accuracy.unwrap()).collect();
    let auc: Vec<f64> = report.metrics.iter().map(|m| m.validation_auc.unwrap()).collect();
    let losses: Vec<f64> = report.metrics.iter().map(|m| m.train_loss).collect();
    eprintln!("brain classes: losses {losses:.3?}, validation accuracy {accuracy:.3?}, AUC {auc:.3?}, {:.1} s", started.elapsed().as_secs_f64());
    // 11 of 12 validation cases right is 0.917: the issue's target of 0.9 allows no miss in ten.
    let (best, last) = (report.best_accuracy.unwrap(), accuracy[accuracy.len() - 1]);
    assert!(best >= 0.9 && last >= 0.9, "validation accuracy best {best}, last {last} on {VALIDATION} cases after 200 steps");
    assert!(report.best_auc.unwrap() >= 0.9, "AUC {:?}", report.best_auc);
    assert!(losses[7] < 0.9 * losses[0], "the loss falls: {losses:?}");
    assert_eq!(report.best_dice, None);
    let names: Vec<String> = serde_json::from_str(&std::fs::read_to_string(out.path().join("classes.json")).unwrap()).unwrap();
    assert_eq!(names, ["AD", "CN"]);
    let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.path().join("last/state.json")).unwrap()).unwrap();
    assert_eq!(state["class_names"], serde_json::json!(["AD", "CN"]));
    let lines = std::fs::read_to_string(out.path().join("metrics.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(first["validation_accuracy"].as_f64(), Some(accuracy[0]));
    assert!(out.path().join("best/model.bpk").is_file());
}

#[test]
fn a_resumed_classifier_run_ends_with_the_weights_of_an_uninterrupted_one() {
    let (training, validation) = split();
    let runs = tempfile::tempdir().unwrap();
    let (whole, parts) = (runs.path().join("whole"), runs.path().join("parts"));
    let config = config(2, 3, 5);
    train(&config, training.clone(), &validation, &whole, false, &mut quiet).unwrap();
    let mut stop_in_epoch_1 = |event: TrainEvent| !matches!(event, TrainEvent::Iteration { epoch: 1, iteration: 0, .. });
    assert_eq!(train(&config, training.clone(), &validation, &parts, false, &mut stop_in_epoch_1).unwrap_err().to_string(), "training cancelled after epoch 1");
    let resumed = train(&config, training, &validation, &parts, true, &mut quiet).unwrap();
    assert_eq!(resumed.epochs_run, 2);
    let bytes = |run: &std::path::Path| std::fs::read(run.join("last/model.bpk")).unwrap();
    assert!(bytes(&whole) == bytes(&parts), "resumed weights differ from the uninterrupted run's");
    // The same state but for the epochs' durations.
    let state = |run: &std::path::Path| {
        let mut state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("last/state.json")).unwrap()).unwrap();
        state["metrics"].as_array_mut().unwrap().iter_mut().for_each(|m| m["seconds"] = 0.into());
        state
    };
    assert_eq!(state(&whole), state(&parts));
}

#[test]
fn classifiers_need_class_labels_and_a_fitting_input_size() {
    let (mut training, validation) = split();
    let out = tempfile::tempdir().unwrap();
    // A dataset without a `label` column leaves every case without a class.
    training.iter_mut().for_each(|v| v.class = None);
    let error = train(&config(1, 1, 1), training.clone(), &validation, out.path(), false, &mut quiet).unwrap_err();
    assert_eq!(error.to_string(), "training config: case brain_000 has no class label (a classifier needs one per case, e.g. the CSV manifest's `label` column)");
    let (training, validation) = split();
    let mut odd = config(1, 1, 1);
    odd.sampler.patch = [30, 32, 32];
    let error = train(&odd, training, &validation, out.path(), false, &mut quiet).unwrap_err().to_string();
    assert!(error.starts_with("training config: sampler.patch [30, 32, 32] is the classifier's input size: classifier expects input (N, 1, D, H, W) with D, H and W multiples of 4; got [1, 1, 30, 32, 32]"), "{error}");
    let names = TrainConfig::from_json(r#"{"network": {"name": "classifier"}, "epochs": 1, "iterations_per_epoch": 1, "class_names": ["a", "b", "c"]}"#).unwrap_err();
    assert_eq!(names.to_string(), "training config: class_names has 3 names, the network predicts 2 classes");
}
