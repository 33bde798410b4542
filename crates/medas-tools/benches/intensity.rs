//! Speed probe used by `scripts/bench-intensity`: runs the intensity tools on lung1 (with the
//! lung1 tumour label as mask, and lung2 as the histogram-matching reference) `repeats` times
//! each through the checked runner, and prints the best and median wall time per case as JSON,
//! so that the Python side can time numpy, SimpleITK and scikit-image on the same arrays.
//!
//! usage: cargo bench -p medas-tools --bench intensity -- CT MASK REFERENCE [REPEATS [CASE]]

mod support;

use serde_json::json;

fn cases() -> Vec<support::CaseWith> {
    vec![
        ("zscore", "preprocess.zscore", json!({}), &[]),
        ("zscore_mask", "preprocess.zscore", json!({}), &["mask"]),
        ("clip_percentiles", "preprocess.clip_percentiles", json!({"lower": 0.5, "upper": 99.5}), &[]),
        ("rescale", "preprocess.rescale", json!({}), &[]),
        ("histogram_match", "preprocess.histogram_match", json!({}), &["reference"]),
        ("multi_otsu_3", "preprocess.multi_otsu", json!({"classes": 3}), &[]),
    ]
}

fn main() {
    support::main_with("intensity CT MASK REFERENCE [REPEATS [CASE]]", "image", &["mask", "reference"], cases());
}
