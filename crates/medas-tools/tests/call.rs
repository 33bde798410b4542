//! Continuous programming (`ToolCall`, `and_then`, success/failure handlers) and the
//! constructor that casts images to the voxel type a port asks for.

use medas_image::{Geometry, Image, ScalarType, Voxels};
use medas_testkit::{file, scratch_dir};
use medas_tools::{
    Category, Context, Data, Inputs, OnOutcome, Outputs, Params, PortSpec, PortType, Tool, ToolCall, ToolError, ToolSpec, save_output,
    take_image,
};
use serde_json::json;
use std::sync::Arc;

#[test]
fn tool_calls_chain_on_result_with_handlers() {
    let Some(ct) = file("pyradiomics/lung1_image.nrrd") else { return };
    let mut seen = None;
    let mut failed = false;
    let outputs = ToolCall::new("io.read_image")
        .unwrap()
        .set("path", ct.to_str().unwrap())
        .run()
        .and_then(|read| ToolCall::new("preprocess.cast")?.set_params(json!({"type": "float64"})).pipe(read, "image", "image").run())
        .on_success(|out| seen = Some(out.len()))
        .on_failure(|_| failed = true)
        .unwrap();
    assert_eq!((seen, failed), (Some(1), false));
    let Data::Image(image) = &outputs["image"] else { panic!("an image") };
    assert_eq!(image.scalar_type(), ScalarType::F64);
    let original = medas_io::read(&ct).unwrap();
    assert_eq!(image.size(), original.size());
    assert_eq!(image.geometry(), original.geometry());

    // A failure short-circuits the chain: the next call never runs, the handler sees the error.
    let mut message = String::new();
    let result = ToolCall::new("io.read_image")
        .unwrap()
        .set("path", "/no/such/scan.nii")
        .run()
        .and_then(|read| ToolCall::new("preprocess.cast")?.pipe(read, "image", "image").run())
        .on_success(|_| panic!("must not succeed"))
        .on_failure(|error| message = error.to_string());
    assert!(result.is_err());
    assert!(message.contains("/no/such/scan.nii"), "{message}");

    let wrong = ToolCall::new("preprocess.cast").unwrap().set_params(json!([1, 2])).run().unwrap_err();
    assert!(wrong.to_string().contains("set_params expects a JSON object"), "{wrong}");
    let bad_param = ToolCall::new("preprocess.cast").unwrap().set("type", "complex").input("image", image.clone()).run().unwrap_err();
    assert!(matches!(bad_param, ToolError::Param { .. } | ToolError::Params { .. }), "{bad_param}");
    assert!(matches!(ToolCall::new("preprocess.nothing"), Err(ToolError::UnknownTool(_))));
}

/// Reports the voxel type its float32 port received.
struct Probe(ToolSpec);

impl Tool for Probe {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, _: &Params, _: &Context) -> Result<Outputs, ToolError> {
        let image = take_image(&mut inputs, "metric.probe", "image")?;
        let code = if image.scalar_type() == ScalarType::F32 { 32.0 } else { 0.0 };
        Ok(Outputs::from([("type".to_string(), Data::Scalar(code))]))
    }
}

#[test]
fn a_port_that_asks_for_a_voxel_type_gets_it() {
    let spec = ToolSpec::new("metric.probe", Category::Metric, "Probe", "Says what arrived.")
        .input(PortSpec::new("image", PortType::Image, "Any image.").voxel_type(ScalarType::F32))
        .output(PortSpec::new("type", PortType::Scalar, "32 for float32."));
    assert_eq!(spec.to_json()["inputs"][0]["voxel_type"], "float32");
    let probe: Arc<dyn Tool> = Arc::new(Probe(spec));
    let voxels = Voxels::from_fortran_vec(&[2, 2, 2], vec![1i16, -2, 3, -4, 5, -6, 7, -8]).unwrap();
    let image = Image::new(voxels, Geometry::identity(3)).unwrap();
    let outputs = ToolCall::of(probe.clone()).input("image", image).run().unwrap();
    assert!(matches!(outputs["type"], Data::Scalar(32.0)));

    let dir = scratch_dir("tools-call");
    save_output(probe.spec(), "type", &outputs["type"], &dir.join("type.csv")).unwrap();
    assert_eq!(std::fs::read_to_string(dir.join("type.csv")).unwrap(), "type\n32\n");
}
