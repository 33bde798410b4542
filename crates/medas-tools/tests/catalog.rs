//! The registry, the JSON specs and a checked run of the I/O tools on a real image.

use medas_testkit::{assert_geometry, assert_voxels, file, reference, scratch_dir};
use medas_tools::{Data, Inputs, Registry, ToolError, load_input, run_tool, save_output};
use serde_json::{Map, Value, json};

#[test]
fn every_tool_has_a_well_formed_spec_and_schema() {
    let registry = Registry::global();
    let specs = registry.specs();
    let ids: Vec<&str> = specs.iter().map(|s| s.id.as_str()).collect();
    assert!(ids.contains(&"io.read_image") && ids.contains(&"io.write_image"), "{ids:?}");
    for spec in specs {
        let category = serde_json::to_value(spec.category).unwrap();
        assert!(spec.id.starts_with(&format!("{}.", category.as_str().unwrap())), "{} is not under its category", spec.id);
        assert!(spec.doc.len() > 40, "{}: the doc is a paragraph", spec.id);
        let schema = spec.params_schema();
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["additionalProperties"], false);
        for param in &spec.params {
            assert_eq!(schema["properties"][&param.name]["description"], param.doc.as_str());
            // A default must itself pass the parameter's checks.
            if let Some(default) = &param.default {
                let given = Map::from_iter([(param.name.clone(), default.clone())]);
                let required = spec.params.iter().filter(|p| p.default.is_none()).map(|p| (p.name.clone(), json!("x")));
                let given: Map<String, Value> = given.into_iter().chain(required).collect();
                medas_tools::Params::resolve(spec, &given).unwrap_or_else(|e| panic!("{}: {e}", spec.id));
            }
        }
        let full = spec.to_json();
        assert_eq!(full["id"], spec.id.as_str());
        assert_eq!(full["outputs"].as_array().unwrap().len(), spec.outputs.len());
    }
    let read = registry.get("io.read_image").unwrap().spec().params_schema();
    assert_eq!(read["required"], json!(["path"]));
    assert_eq!(read["properties"]["series_uid"]["default"], "");
    assert!(matches!(registry.get("io.nothing"), Err(ToolError::UnknownTool(_))));
}

/// lung1 read by `io.read_image`, saved by `io.write_image` as NIfTI, then read by SimpleITK:
/// exact voxels, geometry within 1e-5.
#[test]
fn read_and_write_tools_round_trip_through_the_checked_runner() {
    let Some(path) = file("pyradiomics/lung1_image.nrrd") else { return };
    let registry = Registry::global();
    let read = registry.get("io.read_image").unwrap();
    let given = Map::from_iter([("path".to_string(), json!(path.to_str().unwrap()))]);
    let mut outputs = run_tool(read.as_ref(), Inputs::new(), &given).unwrap();
    let image = outputs.remove("image").unwrap();

    let out = scratch_dir("tools-io").join("lung1.nii.gz");
    let write = registry.get("io.write_image").unwrap();
    let given = Map::from_iter([("path".to_string(), json!(out.to_str().unwrap()))]);
    let inputs = Inputs::from([("image".to_string(), image)]);
    let outputs = run_tool(write.as_ref(), inputs, &given).unwrap();
    assert!(matches!(&outputs["file"], Data::File(p) if *p == out));

    let Data::Image(back) = load_input(write.spec(), "image", out.to_str().unwrap()).unwrap() else { panic!() };
    let source = reference("sitk", &path, &[]);
    assert_voxels(&back, &source, 0.0);
    assert_geometry(&back, &source, 1e-5);
    let by_sitk = reference("sitk", &out, &[]);
    assert_voxels(&back, &by_sitk, 0.0);
    assert_geometry(&back, &by_sitk, 1e-5);
}

#[test]
fn the_runner_names_missing_inputs_wrong_ports_and_bad_files() {
    let registry = Registry::global();
    let write = registry.get("io.write_image").unwrap();
    let given = Map::from_iter([("path".to_string(), json!("/tmp/never.nii"))]);
    let error = run_tool(write.as_ref(), Inputs::new(), &given).unwrap_err();
    assert_eq!(error.to_string(), "io.write_image: input \"image\" is not connected");
    let wrong = Inputs::from([("image".to_string(), Data::Scalar(1.0))]);
    let error = run_tool(write.as_ref(), wrong, &given).unwrap_err();
    assert_eq!(error.to_string(), "io.write_image: port \"image\" expects image, got scalar");
    let error = run_tool(write.as_ref(), Inputs::from([("mask".to_string(), Data::Scalar(1.0))]), &given).unwrap_err();
    assert!(matches!(error, ToolError::UnknownPort { .. }), "{error}");

    // A corrupt file through the plug: the reader's error names the file.
    let bad = scratch_dir("tools-bad").join("corrupt.nii");
    std::fs::write(&bad, [0u8; 100]).unwrap();
    let read = registry.get("io.read_image").unwrap();
    let given = Map::from_iter([("path".to_string(), json!(bad.to_str().unwrap()))]);
    let error = run_tool(read.as_ref(), Inputs::new(), &given).unwrap_err();
    assert!(error.to_string().contains("corrupt.nii"), "{error}");
    let error = load_input(write.spec(), "image", bad.to_str().unwrap()).unwrap_err();
    assert!(error.to_string().contains("corrupt.nii"), "{error}");
    // Missing required parameter.
    let error = run_tool(read.as_ref(), Inputs::new(), &Map::new()).unwrap_err();
    assert_eq!(error.to_string(), "io.read_image: parameter \"path\" is required and has no default");
}

#[test]
fn scalars_are_saved_as_text_or_json() {
    let registry = Registry::global();
    let spec = registry.get("io.write_image").unwrap().spec();
    let dir = scratch_dir("tools-scalar");
    save_output(spec, "dice", &Data::Scalar(0.875), &dir.join("dice.txt")).unwrap();
    assert_eq!(std::fs::read_to_string(dir.join("dice.txt")).unwrap(), "0.875\n");
    save_output(spec, "dice", &Data::Scalar(0.5), &dir.join("dice.json")).unwrap();
    let json: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("dice.json")).unwrap()).unwrap();
    assert_eq!(json, json!({"dice": 0.5}));
}

/// `preprocess.cast` on lung1 (int16): to float32 keeps every value and the geometry; the
/// choice is checked against the spec before the tool runs.
#[test]
fn cast_tool_converts_exactly_and_checks_its_choice() {
    let Some(path) = file("pyradiomics/lung1_image.nrrd") else { return };
    let cast = Registry::global().get("preprocess.cast").unwrap();
    let Data::Image(image) = load_input(cast.spec(), "image", path.to_str().unwrap()).unwrap() else { panic!() };
    let given = Map::from_iter([("type".to_string(), json!("float32"))]);
    let mut outputs = run_tool(cast.as_ref(), Inputs::from([("image".to_string(), Data::Image(image.clone()))]), &given).unwrap();
    let Data::Image(floats) = outputs.remove("image").unwrap() else { panic!() };
    assert_eq!(floats.scalar_type(), medas_image::ScalarType::F32);
    let source = reference("sitk", &path, &[]);
    assert_voxels(&floats, &source, 0.0);
    assert_geometry(&floats, &source, 1e-5);
    let given = Map::from_iter([("type".to_string(), json!("float16"))]);
    let error = run_tool(cast.as_ref(), Inputs::from([("image".to_string(), Data::Image(image))]), &given).unwrap_err();
    assert!(error.to_string().starts_with("preprocess.cast: parameter \"type\" \"float16\" is not one of"), "{error}");
}
