//! Speed probe used by `scripts/bench-pathology`: reads an RGB slide image (and a target for
//! stain normalisation, given as `target=PATH`), runs the pathology tools on it `repeats` times
//! each through the checked runner, and prints the best and median wall time per case as JSON,
//! so that the Python side can time scikit-image and torchstain on the same pixels.
//!
//! usage: cargo bench -p medas-tools --bench pathology -- IMAGE.png [REPEATS [CASE]] target=TARGET.png

mod support;

use medas_image::Image;
use medas_tools::{Data, Inputs, Registry, run_tool};
use serde_json::json;

/// The image's H, E and DAB concentrations (colour deconvolution, before the timing), as the
/// input of colour reconvolution.
fn stains(image: &Image) -> Inputs {
    let tool = Registry::global().get("pathology.color_deconvolution").expect("registered");
    let inputs = Inputs::from([("image".to_string(), Data::Image(image.clone()))]);
    let mut outputs = run_tool(tool.as_ref(), inputs, &Default::default()).expect("deconvolution runs");
    Inputs::from([("image".to_string(), outputs.remove("image").expect("an image output"))])
}

fn main() {
    let none = support::no_inputs;
    let cases: Vec<(support::Case, support::OtherInputs)> = vec![
        (("rgb2hed", "pathology.color_deconvolution", json!({})), none),
        (("hed2rgb", "pathology.color_reconvolution", json!({})), stains),
        (("macenko", "pathology.stain_normalize", json!({"method": "macenko"})), none),
        (("reinhard", "pathology.stain_normalize", json!({"method": "reinhard"})), none),
        (("vahadane", "pathology.stain_normalize", json!({"method": "vahadane"})), none),
        (("tissue_grey", "pathology.tissue_mask", json!({})), none),
    ];
    support::main_derived("pathology IMAGE.png [REPEATS [CASE]] target=TARGET.png", "image", cases);
}
