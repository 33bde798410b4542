//! Same seed → byte-identical files, whatever the thread count; another seed → other files;
//! bad options are refused with clear messages.

mod support;

use medas_synth::{GenerateOptions, Kind, generate};
use support::{generated, tree};

fn generate_with_threads(kind: Kind, seed: u64, size: usize, threads: usize) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| {
        let (folder, _) = generated(kind, 3, seed, size);
        tree(folder.path())
    })
}

#[test]
fn same_seed_same_bytes_for_any_thread_count_and_other_seed_differs() {
    for (kind, size) in [(Kind::Nuclei, 96), (Kind::Liver, 64), (Kind::ChestOrgans, 64), (Kind::LungNodules, 64), (Kind::BrainClasses, 64)] {
        let one = generate_with_threads(kind, 11, size, 1);
        let many = generate_with_threads(kind, 11, size, 4);
        assert!(!one.is_empty());
        assert_eq!(one.iter().map(|f| &f.0).collect::<Vec<_>>(), many.iter().map(|f| &f.0).collect::<Vec<_>>(), "{kind}: same files");
        for (a, b) in one.iter().zip(&many) {
            assert!(a.1 == b.1, "{kind}: {} differs between 1 and 4 threads", a.0.display());
        }
        let other = generate_with_threads(kind, 12, size, 2);
        let images_differ = one.iter().zip(&other).filter(|(a, b)| a.1 != b.1).count();
        eprintln!("{kind}: {} files identical across thread counts; {images_differ} differ for another seed", one.len());
        assert!(images_differ * 2 > one.len(), "{kind}: another seed changes most files");
    }
}

#[test]
fn kinds_parse_from_names_with_a_clear_error() {
    for kind in Kind::ALL {
        assert_eq!(kind.name().parse::<Kind>().unwrap(), kind);
    }
    assert_eq!("Chest_Organs".parse::<Kind>().unwrap(), Kind::ChestOrgans);
    let error = "kidney".parse::<Kind>().unwrap_err().to_string();
    assert_eq!(error, "unknown dataset kind `kidney`; the kinds are: nuclei, liver, chest-organs, lung-nodules, brain-classes");
}

#[test]
fn bad_options_are_refused() {
    let folder = tempfile::tempdir().unwrap();
    let run = |kind: Kind, options: GenerateOptions, out: &std::path::Path| generate(kind, &options, out, &|_, _| {}).unwrap_err().to_string();
    let zero = GenerateOptions { cases: 0, ..Default::default() };
    assert_eq!(run(Kind::Liver, zero, folder.path()), "bad option `cases`: must be 1 to 10000, got 0");
    let small = GenerateOptions { cases: 1, size: Some(vec![16]), ..Default::default() };
    assert_eq!(run(Kind::Liver, small, folder.path()), "bad option `size`: liver needs 64 to 512 voxels per axis, got 16");
    let axes = GenerateOptions { cases: 1, size: Some(vec![64, 64]), ..Default::default() };
    assert_eq!(run(Kind::BrainClasses, axes, folder.path()), "bad option `size`: brain-classes takes 1 or 3 values, got 2");
    let file = folder.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let one = GenerateOptions { cases: 1, size: Some(vec![64]), ..Default::default() };
    let message = run(Kind::Nuclei, one.clone(), &file);
    assert!(message.ends_with("a-file: is a file, not a folder"), "{message}");
    let message = run(Kind::Nuclei, one.clone(), folder.path());
    assert!(message.ends_with("is not empty (choose an empty folder, or allow overwriting)"), "{message}");
    let overwrite = GenerateOptions { overwrite: true, ..one };
    let summary = generate(Kind::Nuclei, &overwrite, folder.path(), &|_, _| {}).unwrap();
    assert_eq!(summary.files.len(), 3);
}

#[test]
fn progress_counts_every_case_and_summary_says_what_was_written() {
    let folder = tempfile::tempdir().unwrap();
    let calls = std::sync::Mutex::new(Vec::new());
    let options = GenerateOptions { cases: 4, seed: 3, size: Some(vec![64]), overwrite: false };
    let summary = generate(Kind::Nuclei, &options, folder.path(), &|done, total| calls.lock().unwrap().push((done, total))).unwrap();
    let mut calls = calls.into_inner().unwrap();
    calls.sort();
    assert_eq!(calls, vec![(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]);
    let text = summary.to_string();
    assert!(text.starts_with("4 cases of H&E-like tiles with nuclei instance masks (pathology, MoNuSeg) (64x64) written to "), "{text}");
    assert!(text.ends_with("in the MoNuSeg layout: 12 files; labels: 1 nucleus"), "{text}");
    for file in &summary.files {
        assert!(folder.path().join(file).is_file(), "{} listed and present", file.display());
    }
}
