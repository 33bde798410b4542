//! Speed probe used by `scripts/bench-pathology`: reads an RGB slide image (and a target for
//! stain normalisation, given as `target=PATH`), runs the pathology tools on it `repeats` times
//! each through the checked runner, and prints the best and median wall time per case as JSON,
//! so that the Python side can time scikit-image and torchstain on the same pixels.
//!
//! usage: cargo bench -p medas-tools --bench pathology -- IMAGE.png [REPEATS [CASE]] target=TARGET.png

mod support;

use serde_json::json;

/// The cases: a name, the tool and its parameters.
fn cases() -> Vec<support::Case> {
    vec![
        ("rgb2hed", "pathology.color_deconvolution", json!({})),
        ("macenko", "pathology.stain_normalize", json!({"method": "macenko"})),
        ("reinhard", "pathology.stain_normalize", json!({"method": "reinhard"})),
        ("vahadane", "pathology.stain_normalize", json!({"method": "vahadane"})),
        ("tissue_grey", "pathology.tissue_mask", json!({})),
    ]
}

fn main() {
    support::main("pathology IMAGE.png [REPEATS [CASE]] target=TARGET.png", "image", cases());
}
