//! Deterministic synthetic datasets that mimic the MEDAS paper's five case studies, written in
//! the folder layouts the `medas-dataset` importers read (see [`Kind`] for each layout).
//!
//! Every number comes from a small portable PRNG ([`rng::Rng`], xoshiro256**) whose stream for
//! each case is derived from `(seed, case index)`, so cases are generated in parallel and the
//! files are the same whatever the thread count. (Across platforms, the C maths library behind
//! `sin`, `exp` and `ln` may differ in the last bit, which could move a rare voxel by one unit.) Phantoms carry what makes the tasks non-trivial:
//! partial-volume edges, smooth multiplicative bias fields, Gaussian (CT, H&E) or Rician (MR)
//! noise, and random size, shape, position and rotation of every structure.

mod brain;
mod chest;
mod error;
mod layout;
mod liver;
mod noise;
mod nodules;
mod nuclei;
pub mod rng;
mod shapes;
mod torso;
mod volume;

pub use error::SynthError;

use error::bad_option;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Reports progress as `(cases done, cases in all)`; called from worker threads.
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Sync);

/// The dataset kinds, one per case study of the paper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// H&E-like RGB tiles with touching nuclei: MoNuSeg layout (`Tissue Images/*.tif`,
    /// `Annotations/*.xml` in Aperio ImageScope XML) plus `Masks/*.tif` (u16 instance labels).
    Nuclei,
    /// Abdominal CT phantoms with a liver (label 1) among spleen, kidneys, stomach, spine and
    /// vessels: nnU-Net v2 raw layout.
    Liver,
    /// Chest CT phantoms with SegTHOR's four organs at risk (oesophagus 1, heart 2, trachea 3,
    /// aorta 4): nnU-Net v2 raw layout.
    ChestOrgans,
    /// Chest CT phantoms with spherical solid nodules among lung vessels: LUNA16 layout
    /// (`subset0/*.mhd`, `annotations.csv`, `candidates.csv` in world mm) plus
    /// `seg-nodules/*.mhd` (nodule k of a scan labelled k, in `annotations.csv` order).
    LungNodules,
    /// Two-class T1-like brain MR (CN, AD: AD has enlarged ventricles and a shrunken brain):
    /// CSV manifest layout (`images/*.nii.gz`, `manifest.csv` with `path,label,patient_id,...`).
    BrainClasses,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Nuclei, Kind::Liver, Kind::ChestOrgans, Kind::LungNodules, Kind::BrainClasses];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Nuclei => "nuclei",
            Kind::Liver => "liver",
            Kind::ChestOrgans => "chest-organs",
            Kind::LungNodules => "lung-nodules",
            Kind::BrainClasses => "brain-classes",
        }
    }

    /// One line saying what a case looks like.
    pub fn description(self) -> &'static str {
        match self {
            Kind::Nuclei => "H&E-like tiles with nuclei instance masks (pathology, MoNuSeg)",
            Kind::Liver => "abdominal CT phantoms with a liver label (LiTS-like)",
            Kind::ChestOrgans => "chest CT phantoms with oesophagus, heart, trachea and aorta labels (SegTHOR-like)",
            Kind::LungNodules => "chest CT phantoms with lung nodules and LUNA16 CSVs",
            Kind::BrainClasses => "two-class T1-like brain MR volumes, CN and AD (ADNI-like)",
        }
    }

    /// The folder layout written (names as in the layouts document).
    pub fn layout(self) -> &'static str {
        match self {
            Kind::Nuclei => "MoNuSeg",
            Kind::Liver | Kind::ChestOrgans => "nnU-Net v2 raw",
            Kind::LungNodules => "LUNA16",
            Kind::BrainClasses => "CSV manifest",
        }
    }

    /// Number of image axes (2 for tiles, 3 for volumes).
    pub fn dimension(self) -> usize {
        if self == Kind::Nuclei { 2 } else { 3 }
    }

    /// Default voxels (pixels) per axis.
    pub fn default_size(self) -> usize {
        if self == Kind::Nuclei { 256 } else { 128 }
    }

    /// Smallest and largest voxels per axis: below the minimum the anatomy (trachea, nodules,
    /// nuclei) is under a few voxels across; the maximum bounds memory per case.
    pub fn size_limits(self) -> (usize, usize) {
        if self == Kind::Nuclei { (64, 4096) } else { (64, 512) }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kind {
    type Err = SynthError;

    /// Accepts the names of [`Kind::name`], in any case, with `_` for `-`.
    fn from_str(text: &str) -> Result<Self, SynthError> {
        let wanted = text.trim().to_ascii_lowercase().replace('_', "-");
        Kind::ALL.into_iter().find(|k| k.name() == wanted).ok_or_else(|| SynthError::UnknownKind {
            given: text.to_string(),
            known: Kind::ALL.map(|k| k.name()).join(", "),
        })
    }
}

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Number of cases (tiles, scans), 1 to 10000.
    pub cases: usize,
    /// Seed of every random choice; the same seed gives the same files.
    pub seed: u64,
    /// Voxels per axis: `None` for the kind's default (128³ volumes, 256² tiles), one value for
    /// every axis, or one per axis (i, j[, k]).
    pub size: Option<Vec<usize>>,
    /// Write into a folder that already has files (files of the same name are replaced).
    pub overwrite: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self { cases: 10, seed: 0, size: None, overwrite: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_resolve() {
        assert_eq!(parse_size("160,160, 96").unwrap(), vec![160, 160, 96]);
        assert_eq!(parse_size("64x48").unwrap(), vec![64, 48]);
        assert_eq!(
            parse_size("big").unwrap_err().to_string(),
            "bad option `size`: expected voxels per axis like `128` or `160,160,96`, got `big`"
        );
        assert_eq!(resolve_size(Kind::Nuclei, None).unwrap(), vec![256, 256]);
        assert_eq!(resolve_size(Kind::Liver, Some(&[96])).unwrap(), vec![96, 96, 96]);
    }
}

/// Largest number of cases one call generates.
pub const MAX_CASES: usize = 10_000;

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub kind: Kind,
    pub out_dir: PathBuf,
    pub cases: usize,
    /// Voxels per axis of every image.
    pub size: Vec<usize>,
    /// Files written, relative to `out_dir`, sorted.
    pub files: Vec<PathBuf>,
    /// Label values and names (segmentation kinds) or class names (classification).
    pub labels: Vec<(u32, String)>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let size = self.size.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("x");
        write!(
            f,
            "{} cases of {} ({size}) written to {} in the {} layout: {} files",
            self.cases,
            self.kind.description(),
            self.out_dir.display(),
            self.kind.layout(),
            self.files.len()
        )?;
        let labels: Vec<String> = self.labels.iter().map(|(v, n)| format!("{v} {n}")).collect();
        if !labels.is_empty() {
            write!(f, "; labels: {}", labels.join(", "))?;
        }
        Ok(())
    }
}

/// Generates `options.cases` cases of `kind` into `out_dir` (created if missing).
///
/// Refuses 0 or more than [`MAX_CASES`] cases, sizes outside [`Kind::size_limits`], an
/// `out_dir` that is a file, and a non-empty `out_dir` unless `options.overwrite`.
pub fn generate(kind: Kind, options: &GenerateOptions, out_dir: &Path, progress: Progress) -> Result<Summary, SynthError> {
    if options.cases == 0 || options.cases > MAX_CASES {
        return Err(bad_option("cases", format!("must be 1 to {MAX_CASES}, got {}", options.cases)));
    }
    let size = resolve_size(kind, options.size.as_deref())?;
    layout::prepare_out_dir(out_dir, options.overwrite)?;
    let plan = layout::Plan { seed: options.seed, cases: options.cases, size: size.clone(), out_dir, progress };
    let (files, labels) = match kind {
        Kind::Nuclei => nuclei::generate(&plan)?,
        Kind::Liver => liver::generate(&plan)?,
        Kind::ChestOrgans => chest::generate(&plan)?,
        Kind::LungNodules => nodules::generate(&plan)?,
        Kind::BrainClasses => brain::generate(&plan)?,
    };
    let mut files = files;
    files.sort();
    Ok(Summary { kind, out_dir: out_dir.to_path_buf(), cases: options.cases, size, files, labels })
}

/// Parses a size as typed on the command line: `128` or `160,160,96` (also `160x160x96`).
pub fn parse_size(text: &str) -> Result<Vec<usize>, SynthError> {
    text.split([',', 'x'])
        .map(|part| part.trim().parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| bad_option("size", format!("expected voxels per axis like `128` or `160,160,96`, got `{text}`")))
}

/// The size per axis for `kind` from what the user gave (see [`GenerateOptions::size`]).
pub fn resolve_size(kind: Kind, given: Option<&[usize]>) -> Result<Vec<usize>, SynthError> {
    let n = kind.dimension();
    let size = match given {
        None => vec![kind.default_size(); n],
        Some([one]) => vec![*one; n],
        Some(values) if values.len() == n => values.to_vec(),
        Some(values) => {
            return Err(bad_option("size", format!("{kind} takes 1 or {n} values, got {}", values.len())));
        }
    };
    let (low, high) = kind.size_limits();
    if let Some(bad) = size.iter().find(|&&s| s < low || s > high) {
        return Err(bad_option("size", format!("{kind} needs {low} to {high} voxels per axis, got {bad}")));
    }
    Ok(size)
}
