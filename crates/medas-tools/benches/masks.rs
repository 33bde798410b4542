//! Speed probe used by `scripts/bench-masks`: reads a mask (`.npy` written by the script: lung1
//! thresholded at HU <= -400), runs the mask tools on it `repeats` times each through the
//! checked runner, and prints the best and median wall time per case as JSON, so that the
//! Python side can time scipy.ndimage on the same array and print ratios.
//!
//! usage: cargo bench -p medas-tools --bench masks -- MASK.npy [REPEATS [CASE]]

use medas_tools::{Data, Inputs, Registry, run_tool};
use serde_json::{Map, Value, json};
use std::time::Instant;

/// The cases: a name, the tool and its parameters.
fn cases() -> Vec<(&'static str, &'static str, Value)> {
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

/// Best and median seconds of `repeats` runs of tool `id` on `mask`.
fn time(id: &str, given: &Value, mask: &medas_image::Image, repeats: usize) -> Result<(f64, f64), String> {
    let tool = Registry::global().get(id).map_err(|e| e.to_string())?;
    let given: Map<String, Value> = given.as_object().cloned().unwrap_or_default();
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let inputs = Inputs::from([("mask".to_string(), Data::Image(mask.clone()))]);
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
        eprintln!("usage: masks MASK.npy [REPEATS [CASE]]");
        std::process::exit(2);
    };
    let repeats: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(5).max(1);
    let mask = medas_io::read(path).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1);
    });
    let only = args.get(2).map_or("", String::as_str);
    let mut results = Map::new();
    for (name, id, given) in cases().into_iter().filter(|(name, ..)| name.contains(only)) {
        match time(id, &given, &mask, repeats) {
            Ok((best, median)) => _ = results.insert(name.into(), json!({"best_s": best, "median_s": median})),
            Err(e) => {
                eprintln!("{name}: {e}");
                std::process::exit(1);
            }
        }
    }
    println!("{}", json!({"path": path, "size": mask.size(), "threads": rayon::current_num_threads(), "tools": results}));
}
