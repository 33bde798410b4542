//! Read-speed probe used by `scripts/bench-io`: reads one image `repeats` times and prints the
//! best and median wall time as JSON, so the Python script can time nibabel, pydicom and
//! SimpleITK on the same file in the same run and print ratios.
//!
//! usage: cargo bench -p medas-io --bench read -- PATH [REPEATS]

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let Some(path) = args.first() else {
        eprintln!("usage: read PATH [REPEATS]");
        std::process::exit(2);
    };
    let repeats: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(5);
    let mut times = Vec::with_capacity(repeats);
    let mut voxels = 0;
    for _ in 0..repeats {
        let start = Instant::now();
        let image = match medas_io::read(path) {
            Ok(image) => image,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        };
        times.push(start.elapsed().as_secs_f64());
        voxels = image.voxels().len();
        drop(image);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{{\"path\": {:?}, \"voxels\": {voxels}, \"best_s\": {}, \"median_s\": {}, \"threads\": {}}}",
        path,
        times[0],
        times[times.len() / 2],
        rayon::current_num_threads()
    );
}
