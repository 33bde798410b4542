//! Speed probe used by `scripts/bench-preprocess`: runs the pre-processing tools on one image
//! `repeats` times each, through the checked runner as every front end does, and prints the best
//! and median wall time per tool as JSON, so that the Python side can time SimpleITK and
//! scikit-image on the same image in the same run and print ratios.
//!
//! usage: cargo bench -p medas-tools --bench preprocess -- PATH [REPEATS [CASE]]
//! (CASE: run only the cases whose name contains it, e.g. for a profile)

mod support;

use serde_json::json;

/// The cases: a name, the tool and its parameters.
fn cases() -> Vec<support::Case> {
    vec![
        ("window_level_lung", "preprocess.window_level", json!({"preset": "lung"})),
        ("resample_linear_1mm", "preprocess.resample", json!({"spacing": [1.0], "interpolator": "linear"})),
        ("resample_nearest_1mm", "preprocess.resample", json!({"spacing": [1.0], "interpolator": "nearest"})),
        ("resample_bspline_1mm", "preprocess.resample", json!({"spacing": [1.0], "interpolator": "bspline"})),
        ("otsu_256", "preprocess.otsu_threshold", json!({"bins": 256})),
        ("grey_dilate_ball_2", "preprocess.grey_morphology", json!({"operation": "dilate", "shape": "ball", "radius": 2})),
        ("grey_close_box_1", "preprocess.grey_morphology", json!({"operation": "close", "shape": "box", "radius": 1})),
    ]
}

fn main() {
    support::main("preprocess PATH [REPEATS [CASE]]", "image", cases());
}
