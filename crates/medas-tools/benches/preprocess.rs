//! Speed probe used by `scripts/bench-preprocess`: runs the pre-processing tools on one image
//! `repeats` times each, through the checked runner as every front end does, and prints the best
//! and median wall time per tool as JSON, so that the Python side can time SimpleITK and
//! scikit-image on the same image in the same run and print ratios.
//!
//! usage: cargo bench -p medas-tools --bench preprocess -- PATH [REPEATS [CASE]]
//! (CASE: run only the cases whose name contains it, e.g. for a profile)

use medas_tools::{Data, Inputs, Registry, run_tool};
use serde_json::{Map, Value, json};
use std::time::Instant;

/// The cases: a name, the tool and its parameters.
fn cases() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("window_level_lung", "preprocess.window_level", json!({"preset": "lung"})),
        ("resample_linear_1mm", "preprocess.resample", json!({"spacing": [1.0], "interpolator": "linear"})),
        ("resample_nearest_1mm", "preprocess.resample", json!({"spacing": [1.0], "interpolator": "nearest"})),
        ("resample_bspline_1mm", "preprocess.resample", json!({"spacing": [1.0], "interpolator": "bspline"})),
        ("otsu_256", "preprocess.otsu_threshold", json!({"bins": 256})),
    ]
}

/// Best and median seconds of `repeats` runs of tool `id` on `image`.
fn time(id: &str, given: &Value, image: &medas_image::Image, repeats: usize) -> Result<(f64, f64), String> {
    let tool = Registry::global().get(id).map_err(|e| e.to_string())?;
    let given: Map<String, Value> = given.as_object().cloned().unwrap_or_default();
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let inputs = Inputs::from([("image".to_string(), Data::Image(image.clone()))]);
        let start = Instant::now();
        let outputs = run_tool(tool.as_ref(), inputs, &given).map_err(|e| e.to_string())?;
        times.push(start.elapsed().as_secs_f64());
        drop(outputs);
    }
    times.sort_by(f64::total_cmp);
    Ok((times[0], times[times.len() / 2]))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let Some(path) = args.first() else {
        eprintln!("usage: preprocess PATH [REPEATS [CASE]]");
        std::process::exit(2);
    };
    let repeats: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(5).max(1);
    let image = medas_io::read(path).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1);
    });
    let mut results = Map::new();
    let only = args.get(2).map_or("", String::as_str);
    for (name, id, given) in cases().into_iter().filter(|(name, ..)| name.contains(only)) {
        match time(id, &given, &image, repeats) {
            Ok((best, median)) => _ = results.insert(name.into(), json!({"best_s": best, "median_s": median})),
            Err(e) => {
                eprintln!("{name}: {e}");
                std::process::exit(1);
            }
        }
    }
    let report = json!({"path": path, "size": image.size(), "threads": rayon::current_num_threads(), "tools": results});
    println!("{report}");
}
