//! What the speed probes share: arguments `PATH [REPEATS [CASE]]` (one path per input port),
//! the images read once, each case timed through the checked runner (as every front end runs
//! tools), and one JSON line with the best and median wall time per case for the Python side
//! to compare against.

use medas_tools::{Data, Inputs, Registry, run_tool};
use serde_json::{Map, Value, json};
use std::time::Instant;

/// A case: a name, the tool and its parameters.
pub type Case = (&'static str, &'static str, Value);

/// Best and median seconds of `repeats` runs of tool `id` with `images` on input `ports`.
fn time(id: &str, ports: &[&str], given: &Value, images: &[medas_image::Image], repeats: usize) -> Result<(f64, f64), String> {
    let tool = Registry::global().get(id).map_err(|e| e.to_string())?;
    let given: Map<String, Value> = given.as_object().cloned().unwrap_or_default();
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let inputs: Inputs = ports.iter().zip(images).map(|(port, image)| (port.to_string(), Data::Image(image.clone()))).collect();
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
#[allow(dead_code)] // each probe uses one of the two entry points
pub fn main(usage: &str, port: &str, cases: Vec<Case>) {
    main_with_ports(usage, &[port], cases);
}

/// [`main`] for tools with several image inputs: one PATH per port, in order.
pub fn main_with_ports(usage: &str, ports: &[&str], cases: Vec<Case>) {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if args.len() < ports.len() {
        eprintln!("usage: {usage}");
        std::process::exit(2);
    }
    let (paths, rest) = args.split_at(ports.len());
    let repeats: usize = rest.first().and_then(|r| r.parse().ok()).unwrap_or(5).max(1);
    let read = |path: &String| {
        medas_io::read(path).unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(1);
        })
    };
    let images: Vec<medas_image::Image> = paths.iter().map(read).collect();
    let (path, image) = (&paths[0], &images[0]);
    let only = rest.get(1).map_or("", String::as_str);
    let mut results = Map::new();
    for (name, id, given) in cases.into_iter().filter(|(name, ..)| name.contains(only)) {
        match time(id, ports, &given, &images, repeats) {
            Ok((best, median)) => _ = results.insert(name.into(), json!({"best_s": best, "median_s": median})),
            Err(e) => {
                eprintln!("{name}: {e}");
                std::process::exit(1);
            }
        }
    }
    println!("{}", json!({"path": path, "size": image.size(), "threads": rayon::current_num_threads(), "tools": results}));
}
