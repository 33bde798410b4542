//! Reproducible splits of a dataset version: hold-out and k-fold, optionally stratified by class
//! and grouped by patient (a patient's cases always land in the same fold). Randomness comes
//! from [`SplitMix64`], written here so a seed gives the same split on every machine and in
//! every MEDAS version (no crate whose stream may change). Saved as
//! `{version folder}/splits/{name}.json`.

use crate::store::{Manifest, read_json, version_folder, write_json};
use crate::model::Subset;
use crate::{DatasetError, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// SplitMix64 (Steele, Lea, Flood 2014; Vigna's reference `splitmix64.c`): 64-bit state, one
/// add, three xor-shift-multiply steps. Tiny, fast and fixed forever.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0) without modulo bias (Lemire's multiply-and-reject).
    pub fn below(&mut self, n: u64) -> u64 {
        let threshold = n.wrapping_neg() % n;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(n);
            if (product as u64) >= threshold {
                return (product >> 64) as u64;
            }
        }
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// What kind of split to make.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SplitKind {
    /// `folds` folds; fold i validates on its cases and trains on the rest.
    Kfold { folds: usize },
    /// One fold validating on about `validation_fraction` of the cases (0 < fraction < 1).
    Holdout { validation_fraction: f64 },
}

/// How to split: kind, seed, and whether to stratify by class and group by patient.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitOptions {
    #[serde(flatten)]
    pub kind: SplitKind,
    pub seed: u64,
    pub stratify: bool,
    pub group_by_patient: bool,
}

impl SplitOptions {
    /// The default file name: `kfold5-seed42`, `holdout0.2-seed7-stratified-patients`.
    pub fn default_name(&self) -> String {
        let kind = match self.kind {
            SplitKind::Kfold { folds } => format!("kfold{folds}"),
            SplitKind::Holdout { validation_fraction } => format!("holdout{validation_fraction}"),
        };
        let stratified = if self.stratify { "-stratified" } else { "" };
        let grouped = if self.group_by_patient { "-patients" } else { "" };
        format!("{kind}-seed{}{stratified}{grouped}", self.seed)
    }
}

/// One fold: case ids to train on and to validate on, each sorted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fold {
    pub train: Vec<String>,
    pub validation: Vec<String>,
}

/// A saved split of one dataset version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Split {
    pub name: String,
    pub dataset: String,
    pub version: u32,
    pub options: SplitOptions,
    pub folds: Vec<Fold>,
}

/// What splitting needs to know of a case.
#[derive(Clone, Debug)]
pub struct SplitCase {
    pub id: String,
    pub class_label: Option<String>,
    pub patient_id: Option<String>,
}

/// Splits the training cases of a version (test-subset cases are never split).
pub fn split_manifest(manifest: &Manifest, name: &str, options: SplitOptions) -> Result<Split> {
    let cases: Vec<SplitCase> = manifest
        .cases
        .iter()
        .filter(|c| c.subset == Subset::Training)
        .map(|c| SplitCase { id: c.id.clone(), class_label: c.class_label.clone(), patient_id: c.patient_id.clone() })
        .collect();
    let folds = split_cases(&cases, name, options)?;
    Ok(Split { name: name.to_string(), dataset: manifest.name.clone(), version: manifest.version, options, folds })
}

/// A group of cases that must stay together (one patient, or one case when not grouping).
struct Group {
    cases: Vec<String>,
    stratum: String,
}

/// The folds for `cases`: deterministic in (case ids, classes, patients, options), whatever
/// order the cases come in.
pub fn split_cases(cases: &[SplitCase], name: &str, options: SplitOptions) -> Result<Vec<Fold>> {
    let bad = |message: String| DatasetError::BadSplit { split: name.to_string(), message };
    let groups = groups(cases, options);
    let mut rng = SplitMix64::new(options.seed);
    let mut by_stratum: BTreeMap<&str, Vec<&Group>> = BTreeMap::new();
    for group in &groups {
        by_stratum.entry(group.stratum.as_str()).or_default().push(group);
    }
    let fold_count = match options.kind {
        SplitKind::Kfold { folds } if folds < 2 => return Err(bad(format!("k-fold needs at least 2 folds, got {folds}"))),
        SplitKind::Kfold { folds } if folds > groups.len() => {
            let unit = if options.group_by_patient { "patients" } else { "cases" };
            return Err(bad(format!("{folds} folds but only {} {unit}", groups.len())));
        }
        SplitKind::Kfold { folds } => folds,
        SplitKind::Holdout { validation_fraction: f } if !(f > 0.0 && f < 1.0) => {
            return Err(bad(format!("the validation fraction must lie strictly between 0 and 1, got {f}")));
        }
        SplitKind::Holdout { .. } => 2,
    };
    let mut fold_cases: Vec<Vec<String>> = vec![Vec::new(); fold_count];
    for members in by_stratum.values_mut() {
        rng.shuffle(members);
        let assignment = match options.kind {
            SplitKind::Kfold { .. } => balance(members, fold_count, &fold_cases),
            SplitKind::Holdout { validation_fraction } => hold_out(members, validation_fraction),
        };
        for (group, fold) in members.iter().zip(assignment) {
            fold_cases[fold].extend(group.cases.iter().cloned());
        }
    }
    let folds = match options.kind {
        SplitKind::Kfold { .. } => (0..fold_count).map(|i| fold_of(&fold_cases, i)).collect(),
        SplitKind::Holdout { .. } => vec![fold_of(&fold_cases, 1)],
    };
    check_not_empty(&folds).map_err(bad)?;
    Ok(folds)
}

/// Groups by patient (cases without a patient id are their own group) or one per case, sorted
/// by key; the stratum is the group's most common class (ties: the first name) or "" when not
/// stratifying.
fn groups(cases: &[SplitCase], options: SplitOptions) -> Vec<Group> {
    let mut by_key: BTreeMap<String, Vec<&SplitCase>> = BTreeMap::new();
    for case in cases {
        let key = match (&case.patient_id, options.group_by_patient) {
            (Some(patient), true) => format!("patient:{patient}"),
            _ => format!("case:{}", case.id),
        };
        by_key.entry(key).or_default().push(case);
    }
    by_key
        .into_values()
        .map(|members| {
            let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
            for case in &members {
                *votes.entry(case.class_label.as_deref().unwrap_or("")).or_default() += 1;
            }
            let top = votes.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))).map_or("", |(class, _)| class);
            let stratum = if options.stratify { top.to_string() } else { String::new() };
            let mut ids: Vec<String> = members.iter().map(|c| c.id.clone()).collect();
            ids.sort();
            Group { cases: ids, stratum }
        })
        .collect()
}

/// K-fold: largest groups first (stable, so equal sizes keep their shuffled order), each into
/// the fold with the fewest cases of this stratum, then the fewest cases overall, then the
/// lowest index.
fn balance(members: &mut [&Group], folds: usize, so_far: &[Vec<String>]) -> Vec<usize> {
    members.sort_by_key(|g| std::cmp::Reverse(g.cases.len()));
    let mut in_stratum = vec![0usize; folds];
    let mut overall: Vec<usize> = so_far.iter().map(Vec::len).collect();
    members
        .iter()
        .map(|group| {
            let fold = (0..folds).min_by_key(|&f| (in_stratum[f], overall[f], f)).expect("at least two folds");
            in_stratum[fold] += group.cases.len();
            overall[fold] += group.cases.len();
            fold
        })
        .collect()
}

/// Hold-out: shuffled groups go to validation (fold 1) until it holds the stratum's share
/// (rounded), the rest to training (fold 0).
fn hold_out(members: &[&Group], fraction: f64) -> Vec<usize> {
    let total: usize = members.iter().map(|g| g.cases.len()).sum();
    let target = (fraction * total as f64).round() as usize;
    let mut taken = 0;
    members
        .iter()
        .map(|group| {
            if taken < target {
                taken += group.cases.len();
                1
            } else {
                0
            }
        })
        .collect()
}

fn fold_of(fold_cases: &[Vec<String>], validation: usize) -> Fold {
    let mut train: Vec<String> = fold_cases.iter().enumerate().filter(|(i, _)| *i != validation).flat_map(|(_, c)| c.iter().cloned()).collect();
    let mut validation = fold_cases[validation].clone();
    train.sort();
    validation.sort();
    Fold { train, validation }
}

fn check_not_empty(folds: &[Fold]) -> Result<(), String> {
    match folds.iter().position(|f| f.train.is_empty() || f.validation.is_empty()) {
        Some(i) => Err(format!("fold {i} would have an empty training or validation set; use more cases or fewer folds")),
        None => Ok(()),
    }
}

/// Where a split of a version is stored.
pub fn split_path(data: &Path, dataset: &str, version: u32, name: &str) -> PathBuf {
    version_folder(data, dataset, version).join("splits").join(format!("{name}.json"))
}

/// Saves a split with its version. Saving the same split again is a no-op; a different split
/// under an existing name is refused, so a split once used never changes.
pub fn save(data: &Path, split: &Split) -> Result<PathBuf> {
    crate::store::check_name(&split.name)?;
    let path = split_path(data, &split.dataset, split.version, &split.name);
    if path.is_file() {
        let existing: Split = read_json(&path)?;
        if existing == *split {
            return Ok(path);
        }
        return Err(DatasetError::SplitExists { split: split.name.clone(), dataset: format!("{}@v{}", split.dataset, split.version), path });
    }
    let folder = path.parent().expect("splits folder");
    std::fs::create_dir_all(folder).map_err(DatasetError::io(folder))?;
    write_json(&path, split)?;
    Ok(path)
}

/// The saved splits of a version, by name.
pub fn list(data: &Path, dataset: &str, version: u32) -> Result<Vec<String>> {
    let folder = version_folder(data, dataset, version).join("splits");
    let Ok(entries) = std::fs::read_dir(&folder) else { return Ok(Vec::new()) };
    let mut names: Vec<String> = entries.filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".json").map(str::to_string)).collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_stream() {
        // First outputs of Vigna's splitmix64.c seeded with 1234567.
        let mut rng = SplitMix64::new(1_234_567);
        let first: Vec<u64> = (0..5).map(|_| rng.next_u64()).collect();
        assert_eq!(first, [6457827717110365317, 3203168211198807973, 9817491932198370423, 4593380528125082431, 16408922859458223821]);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = SplitMix64::new(9);
        let mut seen = [0usize; 7];
        for _ in 0..7000 {
            seen[rng.below(7) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| (800..1200).contains(&n)), "{seen:?}");
    }
}
