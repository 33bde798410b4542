//! What the speed probes share: arguments `PATH [MORE_PATHS...] [REPEATS [CASE]]`, the images
//! read once, each case timed through the checked runner (as every front end runs tools), and
//! one JSON line with the best and median wall time per case for the Python side to compare
//! against.

#![allow(dead_code)] // each probe uses one of the two entry points

use medas_image::Image;
use medas_tools::{Data, Inputs, Registry, run_tool};
use serde_json::{Map, Value, json};
use std::time::Instant;

/// A case: a name, the tool and its parameters.
pub type Case = (&'static str, &'static str, Value);

/// A case that also feeds some of the extra images, named by their ports.
pub type CaseWith = (&'static str, &'static str, Value, &'static [&'static str]);

/// Best and median seconds of `repeats` runs of tool `id` on `inputs`.
fn time(id: &str, given: &Value, inputs: &[(&str, &Image)], repeats: usize) -> Result<(f64, f64), String> {
    let tool = Registry::global().get(id).map_err(|e| e.to_string())?;
    let given: Map<String, Value> = given.as_object().cloned().unwrap_or_default();
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let inputs: Inputs = inputs.iter().map(|(port, image)| (port.to_string(), Data::Image((*image).clone()))).collect();
        let start = Instant::now();
        let outputs = run_tool(tool.as_ref(), inputs, &given).map_err(|e| e.to_string())?;
        times.push(start.elapsed().as_secs_f64());
        drop(outputs);
    }
    times.sort_by(f64::total_cmp);
    Ok((times[0], times[times.len() / 2]))
}

fn read_or_exit(path: &str) -> Image {
    medas_io::read(path).unwrap_or_else(|e| {
        eprintln!("{path}: {e}");
        std::process::exit(1);
    })
}

/// Runs the `cases` whose name contains CASE on the image at PATH (fed to input `port`) and
/// prints the JSON report; `usage` is printed when PATH is missing.
pub fn main(usage: &str, port: &str, cases: Vec<Case>) {
    let cases = cases.into_iter().map(|(name, id, given)| (name, id, given, &[] as &[&str])).collect();
    main_with(usage, port, &[], cases);
}

/// [`main`] with one more image per name in `extra_ports`, read from the paths after PATH and
/// fed to the cases that name that port.
pub fn main_with(usage: &str, port: &str, extra_ports: &[&str], cases: Vec<CaseWith>) {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if args.len() < 1 + extra_ports.len() {
        eprintln!("usage: {usage}");
        std::process::exit(2);
    }
    let image = read_or_exit(&args[0]);
    let extras: Vec<(&str, Image)> = extra_ports.iter().zip(&args[1..]).map(|(p, path)| (*p, read_or_exit(path))).collect();
    let rest = &args[1 + extra_ports.len()..];
    let repeats: usize = rest.first().and_then(|r| r.parse().ok()).unwrap_or(5).max(1);
    let only = rest.get(1).map_or("", String::as_str);
    let mut results = Map::new();
    for (name, id, given, wanted) in cases.into_iter().filter(|(name, ..)| name.contains(only)) {
        let mut inputs = vec![(port, &image)];
        inputs.extend(extras.iter().filter(|(p, _)| wanted.contains(p)).map(|(p, i)| (*p, i)));
        match time(id, &given, &inputs, repeats) {
            Ok((best, median)) => _ = results.insert(name.into(), json!({"best_s": best, "median_s": median})),
            Err(e) => {
                eprintln!("{name}: {e}");
                std::process::exit(1);
            }
        }
    }
    println!("{}", json!({"path": args[0], "size": image.size(), "threads": rayon::current_num_threads(), "tools": results}));
}

/// [`main`] for tools with several image inputs, all fed to every case: one PATH per port, in
/// order.
pub fn main_with_ports(usage: &str, ports: &'static [&'static str], cases: Vec<Case>) {
    let cases = cases.into_iter().map(|(name, id, given)| (name, id, given, &ports[1..])).collect();
    main_with(usage, ports[0], &ports[1..], cases);
}
