//! Speed probe used by `scripts/bench-registration`: registers the moved MNI template back to
//! the template (rigid and affine, Mattes MI, the settings of tests/registration.rs; and the
//! template shrunk 4x deformed by a known B-spline, mean squares + L-BFGS, the settings of
//! tests/deformable.rs) `repeats` times each through the checked runner, and prints the best and median wall time per case
//! as JSON, so that the Python side can time SimpleITK's ImageRegistrationMethod with the same
//! settings on the same images in the same run and print ratios.
//!
//! usage: cargo bench -p medas-tools --bench registration -- FIXED MOVING [REPEATS [CASE]]
//! (MOVING is moved rigidly, affinely or by a B-spline, so the script runs CASE rigid, affine and
//! bspline separately)

mod support;

use serde_json::{Value, json};

/// The settings SimpleITK gets too (scripts/bench_registration.py).
fn settings(kind: &str) -> Value {
    let path = std::env::temp_dir().join(format!("medas_bench_{kind}.tfm"));
    json!({
        "transform": kind, "metric": "mattes", "bins": 50, "sampling": "random", "sampling_percentage": 0.1,
        "learning_rate": 1.0, "min_step": 1e-3, "iterations": 200, "relaxation": 0.5, "gradient_tolerance": 1e-4,
        "shrink_factors": [4, 2], "smoothing_sigmas": [2.0, 1.0], "transform_path": path.to_str().expect("a UTF-8 temp path"),
    })
}

/// The B-spline settings SimpleITK gets too (bench_registration.py's `BSPLINE`).
fn bspline_settings() -> Value {
    let path = std::env::temp_dir().join("medas_bench_bspline.tfm");
    json!({
        "transform": "bspline", "mesh_size": 4, "metric": "mse", "sampling": "random", "sampling_percentage": 0.1,
        "optimizer": "lbfgs", "iterations": 50, "corrections": 5, "gradient_tolerance": 1e-5,
        "shrink_factors": [2, 1], "smoothing_sigmas": [1.0, 0.0], "transform_path": path.to_str().expect("a UTF-8 temp path"),
    })
}

fn main() {
    let cases = vec![
        ("register_rigid_mattes", "preprocess.register", settings("rigid")),
        ("register_affine_mattes", "preprocess.register", settings("affine")),
        ("register_bspline_mse", "preprocess.register", bspline_settings()),
    ];
    support::main_with_ports("registration FIXED MOVING [REPEATS [CASE]]", &["fixed", "moving"], cases);
}
