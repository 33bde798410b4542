//! What the speed probes share: arguments `PATH [REPEATS [CASE]]`, the image read once, each
//! case timed through the checked runner (as every front end runs tools), and one JSON line
//! with the best and median wall time per case for the Python side to compare against.

use medas_tools::{Data, Inputs, Registry, run_tool};
use serde_json::{Map, Value, json};
use std::time::Instant;

/// A case: a name, the tool and its parameters.
pub type Case = (&'static str, &'static str, Value);
/// Makes the inputs of a case other than the image, from the image (once, before the timing).
pub type OtherInputs = fn(&medas_image::Image) -> Inputs;

/// Best and median seconds of `repeats` runs of tool `id` with `image` on input `port` and
/// `extra` on the other inputs.
fn time(id: &str, port: &str, given: &Value, image: &medas_image::Image, extra: &Inputs, repeats: usize) -> Result<(f64, f64), String> {
    let tool = Registry::global().get(id).map_err(|e| e.to_string())?;
    let given: Map<String, Value> = given.as_object().cloned().unwrap_or_default();
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let mut inputs = extra.clone();
        inputs.insert(port.to_string(), Data::Image(image.clone()));
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
#[allow(dead_code)] // Not every probe uses both entry points.
pub fn main(usage: &str, port: &str, cases: Vec<Case>) {
    main_with(usage, port, cases.into_iter().map(|case| (case, no_inputs as OtherInputs)).collect());
}

/// [`main`] for cases with more inputs than the image: each case comes with a function that
/// makes its other inputs from the image read (called once, before the timing).
pub fn main_with(usage: &str, port: &str, cases: Vec<(Case, OtherInputs)>) {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let Some(path) = args.first() else {
        eprintln!("usage: {usage}");
        std::process::exit(2);
    };
    let repeats: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(5).max(1);
    let image = medas_io::read(path).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1);
    });
    let only = args.get(2).map_or("", String::as_str);
    let mut results = Map::new();
    for ((name, id, given), extra) in cases.into_iter().filter(|((name, ..), _)| name.contains(only)) {
        match time(id, port, &given, &image, &extra(&image), repeats) {
            Ok((best, median)) => _ = results.insert(name.into(), json!({"best_s": best, "median_s": median})),
            Err(e) => {
                eprintln!("{name}: {e}");
                std::process::exit(1);
            }
        }
    }
    println!("{}", json!({"path": path, "size": image.size(), "threads": rayon::current_num_threads(), "tools": results}));
}

/// The other inputs of a case that has none.
pub fn no_inputs(_: &medas_image::Image) -> Inputs {
    Inputs::new()
}
