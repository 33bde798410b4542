//! What the speed probes share: arguments `PATH [MORE_PATHS...] [REPEATS [CASE]] [PORT=PATH...]`,
//! the images read once, each case timed through the checked runner (as every front end runs
//! tools), and one JSON line with the best and median wall time per case for the Python side to
//! compare against. A `PORT=PATH` image goes to every case whose tool has that input port.

#![allow(dead_code)] // each probe uses some of the entry points

use medas_image::Image;
use medas_tools::{Data, Inputs, Registry, run_tool};
use serde_json::{Map, Value, json};
use std::time::Instant;

/// A case: a name, the tool and its parameters.
pub type Case = (&'static str, &'static str, Value);
/// A case that is also fed some of the extra images, named by their ports.
pub type CaseWith = (&'static str, &'static str, Value, &'static [&'static str]);
/// Makes the inputs of a case other than the image, from the image (once, before the timing).
pub type OtherInputs = fn(&Image) -> Inputs;

/// The inputs that no case needs beyond the image.
pub fn no_inputs(_: &Image) -> Inputs {
    Inputs::new()
}

/// Best and median seconds of `repeats` runs of tool `id` on `inputs`.
fn time(id: &str, given: &Value, inputs: &Inputs, repeats: usize) -> Result<(f64, f64), String> {
    let tool = Registry::global().get(id).map_err(|e| e.to_string())?;
    let given: Map<String, Value> = given.as_object().cloned().unwrap_or_default();
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let inputs = inputs.clone(); // images share their voxels: no copy
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

/// What the command line gives: the paths and images of the first `count` arguments, REPEATS
/// (default 5), the CASE filter, and the `PORT=PATH` images.
struct Arguments {
    paths: Vec<String>,
    images: Vec<Image>,
    repeats: usize,
    only: String,
    by_port: Vec<(String, Image)>,
}

fn arguments(usage: &str, count: usize) -> Arguments {
    let (by_port, args): (Vec<String>, Vec<String>) = std::env::args().skip(1).filter(|a| a != "--bench").partition(|a| a.contains('='));
    if args.len() < count {
        eprintln!("usage: {usage}");
        std::process::exit(2);
    }
    Arguments {
        images: args[..count].iter().map(|path| read_or_exit(path)).collect(),
        repeats: args.get(count).and_then(|r| r.parse().ok()).unwrap_or(5usize).max(1),
        only: args.get(count + 1).cloned().unwrap_or_default(),
        by_port: by_port.iter().filter_map(|a| a.split_once('=')).map(|(port, path)| (port.to_string(), read_or_exit(path))).collect(),
        paths: args[..count].to_vec(),
    }
}

/// `inputs` plus the `PORT=PATH` images whose port tool `id` has.
fn with_port_images(id: &str, by_port: &[(String, Image)], mut inputs: Inputs) -> Inputs {
    if let Ok(tool) = Registry::global().get(id) {
        for (port, image) in by_port.iter().filter(|(port, _)| tool.spec().input_spec(port).is_some()) {
            inputs.entry(port.clone()).or_insert_with(|| Data::Image(image.clone()));
        }
    }
    inputs
}

/// Times every case (name, tool, parameters, inputs) and prints the JSON report.
pub fn run(path: &str, image: &Image, repeats: usize, cases: impl Iterator<Item = (&'static str, &'static str, Value, Inputs)>) {
    let mut results = Map::new();
    for (name, id, given, inputs) in cases {
        match time(id, &given, &inputs, repeats) {
            Ok((best, median)) => _ = results.insert(name.into(), json!({"best_s": best, "median_s": median})),
            Err(e) => {
                eprintln!("{name}: {e}");
                std::process::exit(1);
            }
        }
    }
    println!("{}", json!({"path": path, "size": image.size(), "threads": rayon::current_num_threads(), "tools": results}));
}

/// `inputs` with the image on `port`, unless a derived input already fills that port.
fn with_image(port: &str, image: &Image, mut inputs: Inputs) -> Inputs {
    inputs.entry(port.to_string()).or_insert_with(|| Data::Image(image.clone()));
    inputs
}

/// Runs the `cases` whose name contains CASE on the image at PATH (fed to input `port`) and
/// prints the JSON report; `usage` is printed when PATH is missing.
pub fn main(usage: &str, port: &str, cases: Vec<Case>) {
    main_derived(usage, port, cases.into_iter().map(|case| (case, no_inputs as OtherInputs)).collect());
}

/// [`main`] with one more image per name in `extra_ports`, read from the paths after PATH and
/// fed to the cases that name that port.
pub fn main_with(usage: &str, port: &str, extra_ports: &[&str], cases: Vec<CaseWith>) {
    let Arguments { paths, images, repeats, only, by_port } = arguments(usage, 1 + extra_ports.len());
    let extras: Vec<(&str, &Image)> = extra_ports.iter().copied().zip(&images[1..]).collect();
    let cases = cases.into_iter().filter(|(name, ..)| name.contains(only.as_str())).map(|(name, id, given, wanted)| {
        let others = extras.iter().filter(|(p, _)| wanted.contains(p)).map(|(p, i)| (p.to_string(), Data::Image((*i).clone())));
        (name, id, given, with_port_images(id, &by_port, with_image(port, &images[0], others.collect())))
    });
    run(&paths[0], &images[0], repeats, cases);
}

/// [`main`] for tools with several image inputs, all fed to every case: one PATH per port, in
/// order.
pub fn main_with_ports(usage: &str, ports: &'static [&'static str], cases: Vec<Case>) {
    let cases = cases.into_iter().map(|(name, id, given)| (name, id, given, &ports[1..])).collect();
    main_with(usage, ports[0], &ports[1..], cases);
}

/// [`main`] for cases with more inputs than the image: each case comes with a function that
/// makes its other inputs from the image read (called once, before the timing).
pub fn main_derived(usage: &str, port: &str, cases: Vec<(Case, OtherInputs)>) {
    let Arguments { paths, images, repeats, only, by_port } = arguments(usage, 1);
    let image = &images[0];
    let cases = cases
        .into_iter()
        .filter(|((name, ..), _)| name.contains(only.as_str()))
        .map(|((name, id, given), others)| (name, id, given, with_port_images(id, &by_port, with_image(port, image, others(image)))));
    run(&paths[0], image, repeats, cases);
}
