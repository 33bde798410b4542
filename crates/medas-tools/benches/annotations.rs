//! Speed probe used by `scripts/bench-annotations`: runs the annotation conversions on the
//! files the script writes (a label image on lung1's grid, an ImageScope XML of nuclei
//! outlines, a LUNA16-style findings CSV with lung1 as the grid) `repeats` times each through
//! the checked runner and prints the best and median wall time per case as JSON. The XML and
//! CSV are read by the tools inside the timing, as the references read theirs.
//!
//! usage: cargo bench -p medas-tools --bench annotations -- LABELS.nrrd CT.nrrd NUCLEI.xml WIDTH HEIGHT FINDINGS.csv [REPEATS]

mod support;

use medas_tools::{Data, Inputs};
use serde_json::json;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if args.len() < 6 {
        eprintln!("usage: annotations LABELS.nrrd CT.nrrd NUCLEI.xml WIDTH HEIGHT FINDINGS.csv [REPEATS]");
        std::process::exit(2);
    }
    let read = |path: &str| {
        medas_io::read(path).unwrap_or_else(|e| {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        })
    };
    let (labels, ct) = (read(&args[0]), read(&args[1]));
    let (xml, csv) = (args[2].as_str(), args[5].as_str());
    let size = |n: &str| n.parse::<u64>().unwrap_or_else(|_| panic!("WIDTH and HEIGHT are whole numbers, not {n:?}"));
    let (width, height) = (size(&args[3]), size(&args[4]));
    let repeats = args.get(6).and_then(|r| r.parse().ok()).unwrap_or(5usize).max(1);
    let on = |port: &str, image: &medas_image::Image| Inputs::from([(port.to_string(), Data::Image(image.clone()))]);
    let cases = vec![
        ("remap", "annotation.remap_labels", json!({"mapping": "1:5, 2:7, 3:0"}), on("labels", &labels)),
        ("one_hot", "annotation.one_hot", json!({"classes": [0, 1, 2, 3]}), on("labels", &labels)),
        ("polygons", "annotation.polygons_to_labels", json!({"path": xml, "width": width, "height": height}), Inputs::new()),
        ("spheres", "annotation.points_to_spheres", json!({"path": csv, "series_uid": "lung1"}), on("like", &ct)),
    ];
    support::run(&args[0], &labels, repeats, cases.into_iter());
}
