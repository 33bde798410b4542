//! The catalog's training tools (`network.train_unet`, ...) through `medas tool run`: a U-Net
//! trained on generated nuclei tiles is stored, its Dice output is the stored model's best Dice
//! and its metrics table has a row per epoch; the tool and `medas train` with the equivalent
//! config store byte-identical weights (one shared path, same seed); a 3-D V-Net trains on a
//! generated liver volume; the five tools are listed; and the errors a user meets.

use std::path::Path;

use medas_testkit::scratch_dir;
mod support;

use support::{fails, ok};

const IDS: [(&str, &str); 5] = [
    ("network.train_unet", "Train U-Net"),
    ("network.train_vnet", "Train V-Net"),
    ("network.train_fcn", "Train FCN"),
    ("network.train_res_unet", "Train Residual U-Net"),
    ("network.train_dp_unet", "Train Dual-Path U-Net"),
];

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// `medas tool run ID --set ...` with the outputs saved into `out`; the Dice and the metrics.
fn run_tool(data: &Path, out: &Path, id: &str, sets: &[&str]) -> (f64, String) {
    let dice = out.join(format!("{id}-dice.txt"));
    let metrics = out.join(format!("{id}-metrics.csv"));
    let mut args = vec!["tool".to_string(), "run".into(), id.into()];
    for set in sets {
        args.extend(["--set".to_string(), set.to_string()]);
    }
    args.extend(["--out".into(), format!("best_dice={}", dice.display()), "--out".into(), format!("metrics={}", metrics.display())]);
    ok(data, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let dice = std::fs::read_to_string(&dice).unwrap().trim().parse().unwrap();
    (dice, std::fs::read_to_string(&metrics).unwrap())
}

const UNET_SETS: [&str; 11] = [
    "dataset=nuclei",
    "spatial=2d",
    "depth=2",
    "base_channels=4",
    "patch=[1, 32, 32]",
    "batch_size=2",
    "labels=foreground",
    "epochs=2",
    "iterations_per_epoch=2",
    "seed=4",
    "model=tool-nuc",
];

/// The same settings as [`UNET_SETS`] as a `medas train` config (the tool's defaults spelled out).
const UNET_CONFIG: &str = r#"{"network": {"name": "unet", "spatial": "2d", "in_channels": 3, "classes": 2, "depth": 2, "base_channels": 4, "norm": "instance", "dropout": 0.0},
    "loss": {"name": "dice_ce"}, "optimizer": {"name": "adam"},
    "schedule": {"learning_rate": 0.001, "total_iterations": 1, "decay": {"name": "constant"}},
    "sampler": {"patch": [1, 32, 32], "batch_size": 2}, "normalization": {"kind": "zscore"}, "labels": "foreground",
    "epochs": 2, "iterations_per_epoch": 2, "validate_every": 1, "patience": 0, "seed": 4}"#;

#[test]
fn train_unet_stores_a_model_and_matches_medas_train() {
    let root = scratch_dir("cli-train-tools/unet");
    let data = root.join("data");
    let tiles = root.join("nuclei");
    ok(&data, &["dataset", "generate", "nuclei", tiles.to_str().unwrap(), "--cases", "4", "--size", "64", "--seed", "3", "--import"]);

    let (dice, metrics) = run_tool(&data, &root, "network.train_unet", &UNET_SETS);
    let shown = json(&ok(&data, &["model", "show", "tool-nuc"]));
    assert_eq!(shown["metadata"]["metrics"]["best_validation_dice"].as_f64(), Some(dice), "{shown}");
    assert_eq!(shown["metadata"]["dataset"], serde_json::json!({"name": "nuclei", "version": "v1"}));
    assert_eq!(shown["config"]["name"], "unet");
    let lines: Vec<&str> = metrics.lines().collect();
    assert_eq!(lines[0], "epoch,train_loss,validation_dice,learning_rate,seconds");
    assert_eq!(lines.len(), 1 + 2, "one row per epoch: {metrics}");
    assert!(data.join("runs/tool-nuc/best/model.bpk").is_file(), "the run folder is $MEDAS_DATA/runs/MODEL");

    // `medas train` with the equivalent config: the same weights, byte for byte.
    let config = root.join("train.json");
    std::fs::write(&config, UNET_CONFIG).unwrap();
    let run = root.join("cli-run");
    let summary = json(&ok(&data, &["train", "nuclei", "--config", config.to_str().unwrap(), "--out", run.to_str().unwrap(), "--model", "cli-nuc"]));
    assert_eq!(summary["best_validation_dice"].as_f64(), Some(dice), "{summary}");
    let weights = |name: &str| std::fs::read(data.join("models").join(name).join("weights.safetensors")).unwrap();
    assert!(weights("tool-nuc") == weights("cli-nuc"), "the tool and medas train store different weights");

    // A second run of the tool replaces its own model; a name taken by another run is refused.
    let (again, _) = run_tool(&data, &root, "network.train_unet", &UNET_SETS);
    assert_eq!(again, dice, "same seed, same result");
    let taken: Vec<String> = UNET_SETS.iter().map(|s| s.replace("model=tool-nuc", "model=cli-nuc")).collect();
    let message = tool_fails(&data, "network.train_unet", &taken.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(message.contains("network.train_unet: parameter \"model\": model \"cli-nuc\" already exists in"), "{message}");
    errors_a_user_meets(&data);
}

fn tool_fails(data: &Path, id: &str, sets: &[&str]) -> String {
    let mut args = vec!["tool", "run", id];
    for set in sets {
        args.extend(["--set", set]);
    }
    fails(data, &args)
}

fn errors_a_user_meets(data: &Path) {
    let with = |changes: &[(&str, &str)]| -> Vec<String> {
        let mut sets: Vec<String> = UNET_SETS.iter().map(|s| s.replace("model=tool-nuc", "model=bad")).collect();
        for (from, to) in changes {
            sets = sets.into_iter().map(|s| if s == *from { to.to_string() } else { s }).collect();
        }
        sets
    };
    let message_of = |sets: Vec<String>| tool_fails(data, "network.train_unet", &sets.iter().map(String::as_str).collect::<Vec<_>>());
    let message = message_of(with(&[("dataset=nuclei", "dataset=absent")]));
    let expected = format!("network.train_unet: parameter \"dataset\": dataset \"absent\" is not registered (data folder {})", data.display());
    assert!(message.contains(&expected), "{message}");
    let message = message_of([with(&[]), vec!["fold=3".to_string()]].concat());
    assert!(message.contains("network.train_unet: parameter \"fold\": without a split there is one fold (0, a seeded hold-out); fold 3 is not one"), "{message}");
    ok(data, &["dataset", "split", "nuclei", "--kind", "kfold", "--folds", "2", "--seed", "0"]);
    let message = message_of([with(&[]), vec!["split=kfold2-seed0".to_string(), "fold=2".to_string()]].concat());
    assert!(message.contains("network.train_unet: parameter \"fold\": split kfold2-seed0 has 2 folds (0 to 1); fold 2 is not one"), "{message}");
    let message = message_of(with(&[("patch=[1, 32, 32]", "patch=[1, 30, 32]")]));
    assert!(message.contains("network.train_unet: parameter \"patch\": patch [1, 30, 32]: H and W must be multiples of 4 for unet with depth 2"), "{message}");
    let message = message_of(with(&[("patch=[1, 32, 32]", "patch=[2, 32, 32]")]));
    assert!(message.contains("network.train_unet: parameter \"patch\": patch [2, 32, 32] has depth 2; a 2-D network takes D = 1"), "{message}");
    assert!(!data.join("models/bad").exists(), "nothing stored by a refused run");
}

/// A 3-D V-Net (kernel 3, depth 2) trains one iteration on three generated 64³ liver volumes.
#[test]
fn train_vnet_runs_in_3d_on_generated_liver() {
    let root = scratch_dir("cli-train-tools/vnet");
    let data = root.join("data");
    let volumes = root.join("liver");
    ok(&data, &["dataset", "generate", "liver", volumes.to_str().unwrap(), "--cases", "3", "--size", "64", "--seed", "1", "--import"]);
    let sets = ["dataset=liver", "model=liver-vnet", "depth=2", "base_channels=4", "kernel=3", "patch=[16, 16, 16]", "batch_size=1", "labels=foreground", "epochs=1", "iterations_per_epoch=1"];
    let (dice, metrics) = run_tool(&data, &root, "network.train_vnet", &sets);
    assert!((0.0..=1.0).contains(&dice), "{dice}");
    assert_eq!(metrics.lines().count(), 2, "{metrics}");
    let shown = json(&ok(&data, &["model", "show", "liver-vnet"]));
    assert_eq!((&shown["config"]["name"], &shown["config"]["spatial"], &shown["config"]["kernel"]), (&serde_json::json!("vnet"), &serde_json::json!("3d"), &serde_json::json!(3)), "{shown}");
}

/// Every training tool is in the catalog with its title, no input port, the two outputs, and
/// is never served from the cache.
#[test]
fn the_five_training_tools_are_listed() {
    let data = scratch_dir("cli-train-tools/list");
    let list = json(&ok(&data, &["tools", "list", "--json"]));
    let listed: Vec<&str> = list.as_array().unwrap().iter().filter_map(|t| t["id"].as_str()).filter(|id| id.starts_with("network.train_")).collect();
    assert_eq!(listed.len(), IDS.len(), "{listed:?}");
    for (id, title) in IDS {
        let spec = json(&ok(&data, &["tools", "show", id, "--json"]));
        assert_eq!((&spec["title"], &spec["cacheable"], &spec["category"]), (&serde_json::json!(title), &serde_json::json!(false), &serde_json::json!("network")), "{spec}");
        assert_eq!(spec["params_schema"]["required"], serde_json::json!(["dataset", "model"]), "{id}");
        assert_eq!(spec["inputs"], serde_json::json!([]), "{id}");
        let outputs: Vec<&str> = spec["outputs"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(outputs, ["best_dice", "metrics"], "{id}");
        assert_eq!(spec["params_schema"]["properties"].get("kernel").is_some(), id == "network.train_vnet", "{id}: kernel only for the V-Net");
    }
}
