//! What the speed probes share: arguments `PATH [REPEATS [CASE]] [PORT=PATH ...]`, the images
//! read once (PATH on the main port, each `PORT=PATH` on another input port of every case),
//! each case timed through the checked runner (as every front end runs tools), and one JSON
//! line with the best and median wall time per case for the Python side to compare against.

use medas_image::Image;
use medas_tools::{Data, Inputs, Registry, run_tool};
use serde_json::{Map, Value, json};
use std::time::Instant;

/// A case: a name, the tool and its parameters.
pub type Case = (&'static str, &'static str, Value);

/// Best and median seconds of `repeats` runs of tool `id` with `images` on their input ports.
fn time(id: &str, images: &[(String, Image)], given: &Value, repeats: usize) -> Result<(f64, f64), String> {
    let tool = Registry::global().get(id).map_err(|e| e.to_string())?;
    let given: Map<String, Value> = given.as_object().cloned().unwrap_or_default();
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        // Extra images go only to the tools that have their port.
        let ports = images.iter().filter(|(port, _)| tool.spec().input_spec(port).is_some());
        let inputs: Inputs = ports.map(|(port, image)| (port.clone(), Data::Image(image.clone()))).collect();
        let start = Instant::now();
        let outputs = run_tool(tool.as_ref(), inputs, &given).map_err(|e| e.to_string())?;
        times.push(start.elapsed().as_secs_f64());
        drop(outputs);
    }
    times.sort_by(f64::total_cmp);
    Ok((times[0], times[times.len() / 2]))
}

/// Runs the `cases` whose name contains CASE on the image at PATH (fed to input `port`) and
/// prints the JSON report; `usage` is printed when PATH is missing.
pub fn main(usage: &str, port: &str, cases: Vec<Case>) {
    let (extra, args): (Vec<String>, Vec<String>) = std::env::args().skip(1).filter(|a| a != "--bench").partition(|a| a.contains('='));
    let Some(path) = args.first() else {
        eprintln!("usage: {usage}");
        std::process::exit(2);
    };
    let repeats: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(5).max(1);
    let read = |path: &str| {
        medas_io::read(path).unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(1);
        })
    };
    let image = read(path);
    let size = image.size().to_vec();
    let mut images = vec![(port.to_string(), image)];
    images.extend(extra.iter().filter_map(|a| a.split_once('=')).map(|(port, path)| (port.to_string(), read(path))));
    let only = args.get(2).map_or("", String::as_str);
    let mut results = Map::new();
    for (name, id, given) in cases.into_iter().filter(|(name, ..)| name.contains(only)) {
        match time(id, &images, &given, repeats) {
            Ok((best, median)) => _ = results.insert(name.into(), json!({"best_s": best, "median_s": median})),
            Err(e) => {
                eprintln!("{name}: {e}");
                std::process::exit(1);
            }
        }
    }
    println!("{}", json!({"path": path, "size": size, "threads": rayon::current_num_threads(), "tools": results}));
}
