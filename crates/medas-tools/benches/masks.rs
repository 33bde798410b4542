//! Speed probe used by `scripts/bench-masks`: reads a mask (NRRD written by the script: lung1
//! thresholded at HU <= -400), runs the mask tools on it `repeats` times each through the
//! checked runner, and prints the best and median wall time per case as JSON, so that the
//! Python side can time scipy.ndimage on the same array and print ratios.
//!
//! usage: cargo bench -p medas-tools --bench masks -- MASK.nrrd [REPEATS [CASE]]

mod support;

use serde_json::json;

/// The cases: a name, the tool and its parameters.
fn cases() -> Vec<support::Case> {
    vec![
        ("label_6", "preprocess.connected_components", json!({"connectivity": 6})),
        ("label_26", "preprocess.connected_components", json!({"connectivity": 26})),
        ("edt", "preprocess.distance_transform", json!({})),
        ("dilate_ball_2", "preprocess.morphology", json!({"operation": "dilate", "shape": "ball", "radius": [2]})),
        ("erode_ball_2", "preprocess.morphology", json!({"operation": "erode", "shape": "ball", "radius": [2]})),
        ("fill_holes", "preprocess.fill_holes", json!({})),
        ("keep_largest", "preprocess.keep_largest_component", json!({})),
    ]
}

fn main() {
    support::main("masks MASK.nrrd [REPEATS [CASE]]", "mask", cases());
}
