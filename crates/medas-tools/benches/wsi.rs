//! Speed probe used by `scripts/bench-wsi`: tiles a whole-slide file with `pathology.tile_slide`
//! `repeats` times through the checked runner and prints the best and median wall time as JSON
//! (the shape of the other probes' reports), so that the Python side can time OpenSlide's
//! read_region loop with the same tissue rule on the same file. The slide is a file input, not
//! an image read in advance: opening and decoding the slide is part of the work timed.
//!
//! usage: cargo bench -p medas-tools --bench wsi -- SLIDE.svs [REPEATS [TILE_SIZE]]

use medas_tools::{Data, Inputs, Registry, run_tool};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let Some(path) = args.first() else {
        eprintln!("usage: wsi SLIDE.svs [REPEATS [TILE_SIZE]]");
        std::process::exit(2);
    };
    let repeats: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(5).max(1);
    let tile_size: u64 = args.get(2).and_then(|t| t.parse().ok()).unwrap_or(256);
    let tool = Registry::global().get("pathology.tile_slide").expect("tile_slide is registered");
    let given = json!({"level": 0, "tile_size": tile_size, "min_tissue": 0.5});
    let mut times = Vec::with_capacity(repeats);
    let mut kept = 0;
    for _ in 0..repeats {
        let inputs = Inputs::from([("slide".to_string(), Data::File(PathBuf::from(path)))]);
        let start = Instant::now();
        let outputs = run_tool(tool.as_ref(), inputs, given.as_object().expect("an object")).unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(1);
        });
        times.push(start.elapsed().as_secs_f64());
        if let Some(Data::ImageSet(tiles)) = outputs.get("tiles") {
            kept = tiles.len();
        }
    }
    times.sort_by(f64::total_cmp);
    let result = json!({"best_s": times[0], "median_s": times[times.len() / 2], "tiles": kept});
    println!("{}", json!({"path": path, "threads": rayon::current_num_threads(), "tools": {"tile_slide": result}}));
}
