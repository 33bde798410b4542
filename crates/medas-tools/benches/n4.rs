//! Speed probe used by `scripts/bench-n4`: reads an MR image (the MNI ICBM152 2009a T1
//! template), runs `preprocess.n4_bias_correction` on it `repeats` times per case through the
//! checked runner, and prints the best and median wall time per case as JSON, so that the
//! Python side can time SimpleITK's N4 with the same shrink factor and iterations.
//!
//! usage: cargo bench -p medas-tools --bench n4 -- IMAGE [REPEATS [CASE]]

mod support;

use serde_json::json;

/// Shrink 4 and 4 levels of at most 50 iterations (SimpleITK's defaults but the shrink), with
/// the default convergence threshold, and with a threshold of 0 so that both run exactly 200
/// iterations. No mask: the default Otsu foreground, as SimpleITK's N4 example makes it.
fn cases() -> Vec<support::Case> {
    let iterations = json!([50, 50, 50, 50]);
    vec![
        ("n4_default", "preprocess.n4_bias_correction", json!({"shrink_factor": 4, "iterations": iterations})),
        ("n4_200_iterations", "preprocess.n4_bias_correction", json!({"shrink_factor": 4, "iterations": iterations, "convergence_threshold": 0})),
    ]
}

fn main() {
    support::main("n4 IMAGE [REPEATS [CASE]]", "image", cases());
}
