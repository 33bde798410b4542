//! Generation speed: 100 nuclei tiles (256²) and 20 volumes (128³) of each 3-D kind, written
//! to a temporary folder, timed end to end (generation, compression and file writes).
//! Run: `cargo bench -p medas-synth --bench generate` (optionally `-- CASES_2D CASES_3D SIZE_3D`);
//! with `MEDAS_SYNTH_KEEP=DIR` the datasets are kept in `DIR/KIND` to look at.

use medas_synth::{GenerateOptions, Kind, generate};
use std::time::Instant;

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (tiles, volumes, size) = (*args.first().unwrap_or(&100), *args.get(1).unwrap_or(&20), *args.get(2).unwrap_or(&128));
    println!("threads: {}", rayon::current_num_threads());
    for kind in Kind::ALL {
        let (cases, size) = if kind == Kind::Nuclei { (tiles, 256) } else { (volumes, size) };
        let temporary = tempfile::tempdir().expect("temporary folder");
        let folder = match std::env::var_os("MEDAS_SYNTH_KEEP") {
            Some(keep) => std::path::Path::new(&keep).join(kind.name()),
            None => temporary.path().to_path_buf(),
        };
        let options = GenerateOptions { cases, seed: 1, size: Some(vec![size]), overwrite: true };
        let start = Instant::now();
        let summary = generate(kind, &options, &folder, &|_, _| {}).expect("generation");
        let seconds = start.elapsed().as_secs_f64();
        let bytes: u64 = summary.files.iter().map(|f| std::fs::metadata(folder.join(f)).map_or(0, |m| m.len())).sum();
        println!("{:<14} {cases:>4} cases of {size}^{}: {seconds:7.2} s ({:.3} s/case, {:.1} MB written)", kind.name(), kind.dimension(), seconds / cases as f64, bytes as f64 / 1e6);
    }
}
