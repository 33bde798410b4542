//! End-to-end tests of the `medas` binary: `info` and `convert` on real images, checked
//! against SimpleITK and nibabel (geometry 1e-5 relative, integer voxels exact).

use medas_testkit::{assert_geometry, assert_voxels, file, reference, scratch_dir};
use std::path::Path;
use std::process::{Command, Output};

fn medas(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medas")).args(args).output().expect("run medas")
}

fn ok(args: &[&str]) -> String {
    let out = medas(args);
    assert!(out.status.success(), "medas {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn info_reports_what_nibabel_and_simpleitk_see() {
    let Some(path) = file("nibabel/example4d.nii.gz") else { return };
    let json: serde_json::Value = serde_json::from_str(&ok(&["info", "--json", path.to_str().unwrap()])).unwrap();
    let sitk = reference("sitk", &path, &[]);
    assert_eq!(json["format"], "nifti");
    assert_eq!(json["size"], serde_json::json!([128, 96, 24, 2]));
    assert_eq!(json["pixel_type"], "int16");
    let spacing: Vec<f64> = json["spacing_mm"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    for (a, b) in spacing.iter().zip(sitk.spacing()) {
        assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{spacing:?} vs {:?}", sitk.spacing());
    }
    let origin: Vec<f64> = json["origin_mm"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    for (a, b) in origin.iter().zip(sitk.origin()) {
        assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{origin:?} vs {:?}", sitk.origin());
    }
    assert_eq!(json["intensity"]["min"].as_f64(), sitk.meta["min"].as_f64());
    assert_eq!(json["intensity"]["max"].as_f64(), sitk.meta["max"].as_f64());
    let text = ok(&["info", path.to_str().unwrap()]);
    assert!(text.contains("128 x 96 x 24 x 2") && text.contains("int16"), "{text}");
}

#[test]
fn convert_round_trips_nifti_metaimage_nrrd_and_dicom_without_geometry_loss() {
    let Some(source) = file("pyradiomics/lung1_image.nrrd") else { return };
    let dir = scratch_dir("cli-round-trip");
    let sitk = reference("sitk", &source, &[]);
    let chain = ["lung1.nii.gz", "lung1.mha", "lung1.nrrd", "lung1_dicom/", "lung1_back.nii.gz", "lung1.mhd"];
    let mut previous = source.clone();
    for step in chain {
        let out = dir.join(step);
        ok(&["convert", previous.to_str().unwrap(), out.to_str().unwrap()]);
        let image = medas_io::read(&out).unwrap_or_else(|e| panic!("{step}: {e}"));
        // Every intermediate holds exactly the original voxels and geometry.
        assert_voxels(&image, &sitk, 0.0);
        assert_geometry(&image, &sitk, 1e-5);
        previous = out;
    }
    // And SimpleITK reads what we wrote exactly as it read the original.
    let original = medas_io::read(&source).unwrap();
    for written in ["lung1.nii.gz", "lung1.mha", "lung1.nrrd", "lung1.mhd"] {
        let theirs = reference("sitk", &dir.join(written), &[]);
        assert_voxels(&original, &theirs, 0.0);
        assert_geometry(&original, &theirs, 1e-5);
    }
    let series = reference("sitk-series", &dir.join("lung1_dicom"), &[]);
    let image = medas_io::read(dir.join("lung1_dicom")).unwrap();
    assert_voxels(&image, &series, 0.0);
    assert_geometry(&image, &series, 1e-5);
}

#[test]
fn errors_name_the_file_and_exit_non_zero() {
    let dir = scratch_dir("cli-errors");
    let missing = dir.join("missing.nii.gz");
    let out = medas(&["info", missing.to_str().unwrap()]);
    assert!(!out.status.success());
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(message.contains("missing.nii.gz"), "{message}");
    assert!(!message.contains("panicked"), "{message}");

    let junk = dir.join("junk.bin");
    std::fs::write(&junk, b"definitely not an image").unwrap();
    let out = medas(&["convert", junk.to_str().unwrap(), dir.join("x.nii").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("junk.bin"));

    let Some(image) = file("nibabel/standard.nii.gz") else { return };
    let occupied = dir.join("occupied");
    std::fs::create_dir_all(&occupied).unwrap();
    std::fs::write(occupied.join("old.dcm"), b"older series").unwrap();
    let out = medas(&["convert", image.to_str().unwrap(), occupied.to_str().unwrap()]);
    assert!(!out.status.success(), "must refuse a non-empty output folder");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));

    let target = dir.join("exists.nii");
    std::fs::write(&target, b"keep me").unwrap();
    let out = medas(&["convert", image.to_str().unwrap(), target.to_str().unwrap()]);
    assert!(!out.status.success(), "must refuse to overwrite without --force");
    assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
    ok(&["convert", image.to_str().unwrap(), target.to_str().unwrap(), "--force"]);
    assert!(Path::new(&target).metadata().unwrap().len() > 352);
}

/// `medas tools list|show --json` print the registry's specs; `medas tool run` reads through the
/// plug and saves through the slot: lung1 NRRD → NIfTI read back by SimpleITK.
#[test]
fn tools_catalog_and_single_tool_run() {
    let list: serde_json::Value = serde_json::from_str(&ok(&["tools", "list", "--json"])).unwrap();
    let ids: Vec<&str> = list.as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"io.read_image") && ids.contains(&"io.write_image"), "{ids:?}");
    let show: serde_json::Value = serde_json::from_str(&ok(&["tools", "show", "io.read_image", "--json"])).unwrap();
    assert_eq!(show["params_schema"]["required"], serde_json::json!(["path"]));
    assert!(ok(&["tools", "show", "io.write_image"]).contains("inputs:\n  image: image"));
    let unknown = medas(&["tools", "show", "io.nothing"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown tool \"io.nothing\""));

    let Some(source) = file("pyradiomics/lung1_image.nrrd") else { return };
    let out = scratch_dir("cli-tool-run").join("lung1.nii.gz");
    let saved = out.to_str().unwrap();
    ok(&["tool", "run", "io.write_image", "--in", &format!("image={}", source.display()), "--set", &format!("path={saved}")]);
    let by_sitk = reference("sitk", &out, &[]);
    let read_back = medas_io::read(&out).unwrap();
    assert_voxels(&read_back, &reference("sitk", &source, &[]), 0.0);
    assert_geometry(&read_back, &by_sitk, 1e-5);

    // Bad parameter text and a wrong port give errors naming the tool and the field.
    let bad = medas(&["tool", "run", "io.read_image", "--set", "path=/nonexistent.nii", "--set", "colour=3"]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("io.read_image: parameter \"colour\" is not a parameter of this tool"), "{stderr}");
    let bad = medas(&["tool", "run", "io.read_image", "--set", "path=x", "--out", "mask=m.nii"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("\"mask\" is not an output"));
}

/// `medas validate` accepts the example and lists every problem of a broken document.
#[test]
fn validate_lists_every_problem() {
    let example = medas_testkit::repo_root().join("examples/ct-to-float.json");
    assert!(ok(&["validate", example.to_str().unwrap()]).contains("valid (3 nodes, 2 edges)"));
    let broken = scratch_dir("cli-validate").join("broken.json");
    let text = std::fs::read_to_string(&example).unwrap().replace("float32", "float16").replace("\"from\": \"load.image\"", "\"from\": \"load.mask\"");
    std::fs::write(&broken, text).unwrap();
    let out = medas(&["validate", broken.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("node \"float\", parameter \"type\": \"float16\" is not one of"), "{stderr}");
    assert!(stderr.contains("node \"load\", edge load.mask -> float.image: io.read_image has no output \"mask\""), "{stderr}");
    assert!(stderr.contains("node \"float\", input \"image\": is not connected"), "{stderr}");
    assert!(stderr.contains("3 problem(s)"), "{stderr}");
}
