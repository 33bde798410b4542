//! Speed probe used by `scripts/bench-brain-mask`: runs preprocess.brain_mask with its defaults
//! (affine, Mattes MI, shrink [4, 2]) on the subject made from the MNI template by
//! scripts/bench_brain_mask.py, `repeats` times through the checked runner, and prints the best
//! and median wall time as JSON, so that the Python side can time SimpleITK's version of the
//! recipe on the same images in the same run and print the ratio.
//!
//! usage: cargo bench -p medas-tools --bench brain_mask -- IMAGE TEMPLATE TEMPLATE_MASK [REPEATS]

mod support;

use serde_json::json;

fn main() {
    // The transform goes where the Python side reads it to score our mask.
    let path = std::env::temp_dir().join("medas_bench_brain_mask.tfm");
    let given = json!({"transform_path": path.to_str().expect("a UTF-8 temp path")});
    let cases = vec![("brain_mask_affine", "preprocess.brain_mask", given)];
    support::main_with_ports("brain_mask IMAGE TEMPLATE TEMPLATE_MASK [REPEATS [CASE]]", &["image", "template", "template_mask"], cases);
}
