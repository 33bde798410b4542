//! `medas run` end to end on real data: the run folder, the manifest, cache hits on a
//! re-run, and a failing branch that leaves the other branch's results in place.

use medas_pipeline::{Manifest, NodeStatus, RunStatus};
use medas_testkit::{file, scratch_dir};
use std::path::Path;
use std::process::{Command, Output};

fn medas(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medas")).args(args).current_dir(cwd).output().expect("run medas")
}

fn text(out: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Two branches from two reads; the second read is of a corrupt file.
const BRANCHES: &str = r#"{
  "medas_pipeline": 1,
  "name": "two branches",
  "params": {"good": {"doc": "A readable image.", "targets": ["read_good.path"]}},
  "nodes": [
    {"id": "read_good", "tool": "io.read_image"},
    {"id": "float_good", "tool": "preprocess.cast", "params": {"type": "float32"}},
    {"id": "save_good", "tool": "io.write_image", "params": {"path": "good.nii"}},
    {"id": "read_bad", "tool": "io.read_image", "params": {"path": "corrupt.nii"}},
    {"id": "float_bad", "tool": "preprocess.cast"},
    {"id": "save_bad", "tool": "io.write_image", "params": {"path": "bad.nii"}}
  ],
  "edges": [
    {"from": "read_good.image", "to": "float_good.image"},
    {"from": "float_good.image", "to": "save_good.image"},
    {"from": "read_bad.image", "to": "float_bad.image"},
    {"from": "float_bad.image", "to": "save_bad.image"}
  ]
}"#;

#[test]
fn a_failing_branch_keeps_finished_outputs_and_a_rerun_hits_the_cache() {
    let Some(ct) = file("pyradiomics/lung1_image.nrrd") else { return };
    let dir = scratch_dir("cli-run");
    std::fs::write(dir.join("branches.json"), BRANCHES).unwrap();
    // A NIfTI header cut short: the reader must fail with a clear error, not panic.
    let mut corrupt = vec![0u8; 200];
    corrupt[..4].copy_from_slice(&348i32.to_le_bytes());
    std::fs::write(dir.join("corrupt.nii"), corrupt).unwrap();
    let good = format!("good={}", ct.display());
    let args = ["run", "branches.json", "--set", &good, "--out", "run1", "--cache", "cache"];

    let out = medas(&args, &dir);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let manifest = Manifest::load(&dir.join("run1/manifest.json")).unwrap();
    assert_eq!(manifest.status, RunStatus::Failed);
    let node = |id: &str| manifest.node(id).unwrap();
    for id in ["read_good", "float_good", "save_good"] {
        assert_eq!(node(id).status, NodeStatus::Succeeded, "{id}: {}", text(&out));
    }
    assert_eq!(node("read_bad").status, NodeStatus::Failed);
    assert!(node("read_bad").error.as_deref().unwrap().contains("corrupt.nii"), "{:?}", node("read_bad").error);
    for id in ["float_bad", "save_bad"] {
        assert_eq!((node(id).status, node(id).skipped_because.as_deref()), (NodeStatus::Skipped, Some("read_bad")));
    }
    for id in ["read_good", "float_good"] {
        let stored = node(id).outputs["image"].file.clone().unwrap();
        assert!(dir.join("run1").join(&stored).is_file(), "{stored}");
    }
    assert!(dir.join("run1/good.nii").is_file(), "relative output paths land in the run folder");
    let float: medas_image::Image = medas_io::read(dir.join("run1/good.nii")).unwrap();
    assert_eq!(float.scalar_type(), medas_image::ScalarType::F32);
    let expected = medas_io::read(&ct).unwrap().cast(medas_image::ScalarType::F32);
    assert!(float.voxels() == expected.voxels(), "what was saved is the cast input");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("read_bad") && stdout.contains("failed") && stdout.contains("skipped"), "{stdout}");
    let log = std::fs::read_to_string(dir.join("run1/log.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(records.iter().any(|r| r["fields"]["message"] == "node failed" && r["fields"]["node"] == "read_bad"), "{log}");

    // Changing the last cast's type: both reads come from the cache (the bad one fails again).
    let args = ["run", "branches.json", "--set", &good, "--set", "float_good.type=int32", "--out", "run2", "--cache", "cache"];
    let out = medas(&args, &dir);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let manifest = Manifest::load(&dir.join("run2/manifest.json")).unwrap();
    let hit = |id: &str| manifest.node(id).unwrap().cache_hit;
    assert!(hit("read_good") && !hit("float_good") && !hit("save_good"), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().any(|l| l.starts_with("read_good") && l.trim_end().ends_with("hit")), "{stdout}");

    // A missing required input and an unknown setting are reported before anything runs.
    let out = medas(&["run", "branches.json", "--set", "colour=red", "--out", "run3"], &dir);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no pipeline parameter \"colour\"") && stderr.contains("--set good=VALUE"), "{stderr}");
    assert!(!dir.join("run3/manifest.json").exists());

    let out = medas(&["cache", "info", "--cache", "cache"], &dir);
    let info = String::from_utf8_lossy(&out.stdout);
    assert!(info.contains("cache: 3 cached result(s)"), "read_good, float_good (float32 and int32): {info}");
    let out = medas(&["cache", "clear", "--cache", "cache"], &dir);
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed 3"), "{}", text(&out));
    assert!(String::from_utf8_lossy(&medas(&["cache", "info", "--cache", "cache"], &dir).stdout).contains(" 0 cached"));
    assert!(dir.join("run2/nodes/read_good/image.mha").is_file(), "run folders keep their files");
}

#[test]
fn events_stream_as_json_lines() {
    let Some(ct) = file("pyradiomics/lung1_image.nrrd") else { return };
    let dir = scratch_dir("cli-run-json");
    let example = medas_testkit::repo_root().join("examples/ct-to-float.json");
    let path = format!("load.path={}", ct.display());
    let out = medas(&["run", example.to_str().unwrap(), "--set", &path, "--no-cache", "--json", "--out", "run"], &dir);
    assert!(out.status.success(), "{}", text(&out));
    let events: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"run_started"));
    assert_eq!(kinds.last(), Some(&"run_finished"));
    assert_eq!(kinds.iter().filter(|k| **k == "node_finished").count(), 3);
    assert!(events.iter().all(|e| e["cache_hit"] != true), "no cache: nothing is a hit");
    assert!(dir.join("run/ct-float.nii.gz").is_file());
}

/// The acceptance pipeline of the engine: lung1 → lung window → 1 mm → Otsu → NIfTI. A
/// re-run with a changed parameter of the last node serves every other node from the cache;
/// the mask equals the same tools chained in Rust (`ToolCall`), so the executor adds nothing
/// and loses nothing on the way (the tools themselves are checked against SimpleITK and
/// scikit-image in medas-tools' tests).
#[test]
fn the_example_lung_pipeline_runs_and_reruns_from_the_cache() {
    let Some(ct) = file("pyradiomics/lung1_image.nrrd") else { return };
    let dir = scratch_dir("cli-run-example");
    let example = medas_testkit::repo_root().join("examples/lung-ct-otsu.json");
    let example = example.to_str().unwrap();
    let ct_setting = format!("ct={}", ct.display());
    let run = |extra: &[&str], out: &str| {
        let mut args = vec!["run", example, "--set", &ct_setting, "--cache", "cache", "--out", out];
        args.extend_from_slice(extra);
        let output = medas(&args, &dir);
        assert!(output.status.success(), "{}", text(&output));
        Manifest::load(&dir.join(out).join("manifest.json")).unwrap()
    };
    let hits = |manifest: &Manifest| manifest.nodes.iter().map(|n| n.cache_hit).collect::<Vec<_>>();

    let first = run(&[], "first");
    assert_eq!(hits(&first), [false; 5]);
    let saved: medas_image::Image = medas_io::read(dir.join("first/lung-mask.nii")).unwrap();
    assert_eq!(saved.geometry().spacing(), [1.0, 1.0, 1.0]);

    use medas_tools::{Data, ToolCall};
    let chained = ToolCall::new("io.read_image")
        .unwrap()
        .set("path", ct.to_str().unwrap())
        .run()
        .and_then(|o| ToolCall::new("preprocess.window_level")?.set("preset", "lung").pipe(o, "image", "image").run())
        .and_then(|o| ToolCall::new("preprocess.resample")?.set("spacing", "1").pipe(o, "image", "image").run())
        .and_then(|o| ToolCall::new("preprocess.otsu_threshold")?.pipe(o, "image", "image").run())
        .unwrap();
    let Data::Image(mask) = &chained["mask"] else { panic!("a mask") };
    assert_eq!(mask.size(), saved.size());
    assert!(saved.voxels() == mask.voxels(), "the pipeline's mask is the chained tools' mask");
    let inside = mask.voxels().as_array::<u8>().unwrap().iter().filter(|v| **v == 1).count();
    let fraction = inside as f64 / mask.voxels().len() as f64;
    assert!((0.2..0.8).contains(&fraction), "Otsu splits air from tissue: {fraction}");
    assert!(first.node("otsu").unwrap().outputs["threshold"].value.is_some());

    let last_changed = run(&["--set", "save.path=mask-again.nii"], "second");
    assert_eq!(hits(&last_changed), [true, true, true, true, false]);
    assert!(dir.join("second/mask-again.nii").is_file());
    let otsu_changed = run(&["--set", "otsu.bins=128"], "third");
    assert_eq!(hits(&otsu_changed), [true, true, true, false, false]);
    let spacing_changed = run(&["--set", "spacing=2"], "fourth");
    assert_eq!(hits(&spacing_changed), [true, true, false, false, false]);
    let coarse: medas_image::Image = medas_io::read(dir.join("fourth/lung-mask.nii")).unwrap();
    assert_eq!(coarse.geometry().spacing(), [2.0, 2.0, 2.0]);
}
