//! Dataset fingerprint, as nnU-Net makes one before planning: shape and spacing per axis (min,
//! median, max), intensity statistics of the foreground (label > 0) of the first channel,
//! label values with voxel and connected-component counts, and anomalies (unreadable files,
//! image/label grids that differ, empty labels, NaN voxels), each naming its case.
//!
//! Foreground intensities are pooled over cases from at most [`FOREGROUND_SAMPLES`] voxels per
//! case: all of them when fewer, else every k-th in file (Fortran) order, k = ceil(n / limit),
//! so the figures are exact and reproducible (numpy: `fg[::k]`).

use crate::model::Subset;
use crate::store::{Manifest, ManifestCase};
use medas_image::Image;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most foreground voxels a case contributes to the intensity statistics.
pub const FOREGROUND_SAMPLES: usize = 10_000;

/// Min, median and max of one axis over the cases.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AxisRange {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

/// Statistics of pooled foreground intensities (population standard deviation; percentiles
/// with linear interpolation, as numpy's default).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntensityStats {
    pub samples: usize,
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub max: f64,
    pub median: f64,
    pub percentile_00_5: f64,
    pub percentile_99_5: f64,
}

/// Voxels and 6-connected (face) components of one label value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelCount {
    pub voxels: u64,
    pub components: u64,
}

/// What one case contributes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseFingerprint {
    pub id: String,
    /// Voxels per axis of the (first) image, channel axis included.
    pub shape: Vec<usize>,
    /// mm per spatial axis.
    pub spacing: Vec<f64>,
    pub labels: BTreeMap<i64, LabelCount>,
    pub nan_voxels: u64,
}

/// A problem found in one case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    pub case: String,
    pub problem: String,
}

/// Label value summed over cases, with the number of cases it appears in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelSummary {
    pub voxels: u64,
    pub components: u64,
    pub cases: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub dataset: String,
    pub version: u32,
    pub modality: Vec<String>,
    pub shape: Vec<AxisRange>,
    pub spacing: Vec<AxisRange>,
    pub foreground_intensity: Option<IntensityStats>,
    pub labels: BTreeMap<i64, LabelSummary>,
    pub anomalies: Vec<Anomaly>,
    pub cases: Vec<CaseFingerprint>,
}

/// Fingerprints the training cases of a version (reading cases in parallel).
pub fn fingerprint(manifest: &Manifest) -> Fingerprint {
    let training: Vec<&ManifestCase> = manifest.cases.iter().filter(|c| c.subset == Subset::Training).collect();
    let results: Vec<CaseResult> = training.par_iter().map(|c| case_fingerprint(c)).collect();
    let mut cases = Vec::new();
    let mut samples = Vec::new();
    let mut anomalies = Vec::new();
    for result in results {
        match result {
            Ok((case, values, found)) => {
                cases.push(case);
                samples.extend(values);
                anomalies.extend(found);
            }
            Err(anomaly) => anomalies.push(anomaly),
        }
    }
    let mut labels: BTreeMap<i64, LabelSummary> = BTreeMap::new();
    for (value, count) in cases.iter().flat_map(|c| c.labels.iter()) {
        let summary = labels.entry(*value).or_default();
        summary.voxels += count.voxels;
        summary.components += count.components;
        summary.cases += 1;
    }
    Fingerprint {
        dataset: manifest.name.clone(),
        version: manifest.version,
        modality: manifest.modality.clone(),
        shape: axis_ranges(cases.iter().map(|c| c.shape.iter().map(|&n| n as f64).collect()).collect()),
        spacing: axis_ranges(cases.iter().map(|c| c.spacing.clone()).collect()),
        foreground_intensity: intensity_stats(samples),
        labels,
        anomalies,
        cases,
    }
}

/// A case's fingerprint, its sampled foreground intensities and its anomalies; or, when it
/// cannot be read, the anomaly saying so.
type CaseResult = Result<(CaseFingerprint, Vec<f64>, Vec<Anomaly>), Anomaly>;

fn case_fingerprint(case: &ManifestCase) -> CaseResult {
    let anomaly = |problem: String| Anomaly { case: case.id.clone(), problem };
    let image = read(&case.images[0].path, case.row.get("series_instance_uid")).map_err(anomaly)?;
    let values = image.voxels().cast::<f64>();
    let spatial = image.dimension();
    let mut found = Vec::new();
    let nan_voxels = values.iter().filter(|v| v.is_nan()).count() as u64;
    if nan_voxels > 0 {
        found.push(anomaly(format!("{nan_voxels} NaN voxels")));
    }
    let mut fingerprint = CaseFingerprint {
        id: case.id.clone(),
        shape: values.shape().to_vec(),
        spacing: image.geometry().spacing().to_vec(),
        labels: BTreeMap::new(),
        nan_voxels,
    };
    let Some(label_entry) = &case.label else { return Ok((fingerprint, Vec::new(), found)) };
    let label = read(&label_entry.path, None).map_err(anomaly)?;
    // A 4-D image (MSD channels on the last axis) is checked against a 3-D label by its first axes.
    let spatial = spatial.min(label.dimension());
    let grid = &image.size()[..spatial];
    if label.size() != grid || !label.geometry().approx_eq(&image.geometry().with_dimension(spatial), 1e-4) {
        found.push(anomaly(format!("label grid {:?} does not match the image grid {grid:?} (size, spacing, origin or direction)", label.size())));
        return Ok((fingerprint, Vec::new(), found));
    }
    let labels: Vec<i64> = label.voxels().cast::<f64>().t().iter().map(|&v| v as i64).collect();
    fingerprint.labels = count_labels(&labels, grid);
    if !fingerprint.labels.keys().any(|&v| v > 0) {
        found.push(anomaly("label image has no foreground".into()));
    }
    // Channel 0 is the first grid-sized run of voxels in Fortran order.
    let foreground: Vec<f64> = values.t().iter().zip(&labels).filter(|(_, l)| **l > 0).map(|(v, _)| *v).collect();
    let stride = foreground.len().div_ceil(FOREGROUND_SAMPLES).max(1);
    Ok((fingerprint, foreground.into_iter().step_by(stride).collect(), found))
}

fn read(path: &std::path::Path, series: Option<&String>) -> Result<Image, String> {
    let options = medas_io::ReadOptions { series_uid: series.map(String::as_str), progress: None };
    medas_io::read_with(path, &options).map_err(|e| e.to_string())
}

/// Voxels and 6-connected components per label value (0 included, its components not counted).
fn count_labels(labels: &[i64], grid: &[usize]) -> BTreeMap<i64, LabelCount> {
    let dims: Vec<usize> = (0..3).map(|a| grid.get(a).copied().unwrap_or(1)).collect();
    let strides = [1, dims[0], dims[0] * dims[1]];
    let mut counts: BTreeMap<i64, LabelCount> = BTreeMap::new();
    let mut seen = vec![false; labels.len()];
    let mut stack = Vec::new();
    for start in 0..labels.len() {
        let value = labels[start];
        let count = counts.entry(value).or_default();
        count.voxels += 1;
        if value == 0 || seen[start] {
            continue;
        }
        count.components += 1;
        seen[start] = true;
        stack.push(start);
        while let Some(at) = stack.pop() {
            for axis in 0..3 {
                let coordinate = (at / strides[axis]) % dims[axis];
                let below = (coordinate > 0).then(|| at - strides[axis]);
                let above = (coordinate + 1 < dims[axis]).then(|| at + strides[axis]);
                for next in below.into_iter().chain(above) {
                    if !seen[next] && labels[next] == value {
                        seen[next] = true;
                        stack.push(next);
                    }
                }
            }
        }
    }
    counts
}

/// Min, median, max per axis; cases with fewer axes than the first are left out of the others.
fn axis_ranges(rows: Vec<Vec<f64>>) -> Vec<AxisRange> {
    let axes = rows.iter().map(Vec::len).max().unwrap_or(0);
    (0..axes)
        .map(|axis| {
            let mut column: Vec<f64> = rows.iter().filter_map(|r| r.get(axis).copied()).collect();
            column.sort_by(f64::total_cmp);
            AxisRange { min: column[0], median: percentile(&column, 50.0), max: column[column.len() - 1] }
        })
        .collect()
}

fn intensity_stats(mut samples: Vec<f64>) -> Option<IntensityStats> {
    samples.retain(|v| !v.is_nan());
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(f64::total_cmp);
    let n = samples.len() as f64;
    let mean = samples.iter().sum::<f64>() / n;
    let variance = samples.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    Some(IntensityStats {
        samples: samples.len(),
        mean,
        std: variance.sqrt(),
        min: samples[0],
        max: samples[samples.len() - 1],
        median: percentile(&samples, 50.0),
        percentile_00_5: percentile(&samples, 0.5),
        percentile_99_5: percentile(&samples, 99.5),
    })
}

/// Linear-interpolation percentile of sorted values (numpy's default method).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let position = q / 100.0 * (sorted.len() - 1) as f64;
    let low = position.floor() as usize;
    let high = (low + 1).min(sorted.len() - 1);
    sorted[low] + (sorted[high] - sorted[low]) * (position - low as f64)
}

/// The version's fingerprint, computed once and kept as `vN/fingerprint.json` (a version never
/// changes, so neither does its fingerprint).
pub fn load_or_compute(data: &std::path::Path, manifest: &Manifest) -> crate::Result<Fingerprint> {
    let path = crate::store::version_folder(data, &manifest.name, manifest.version).join("fingerprint.json");
    if path.is_file() {
        return crate::store::read_json(&path);
    }
    let computed = fingerprint(manifest);
    crate::store::write_json(&path, &computed)?;
    Ok(computed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_face_connected_per_value() {
        // 4 x 3 x 1: two separate 1-blobs (diagonal contact does not join), one 2-blob.
        #[rustfmt::skip]
        let labels = [1, 0, 2, 2,
                      0, 1, 0, 2,
                      0, 0, 0, 0];
        let counts = count_labels(&labels, &[4, 3]);
        assert_eq!(counts[&1], LabelCount { voxels: 2, components: 2 });
        assert_eq!(counts[&2], LabelCount { voxels: 3, components: 1 });
        assert_eq!(counts[&0].voxels, 7);
    }

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let sorted = [1.0, 2.0, 4.0, 8.0];
        assert_eq!(percentile(&sorted, 50.0), 3.0);
        assert_eq!(percentile(&sorted, 0.5), 1.015);
        assert_eq!(percentile(&sorted, 100.0), 8.0);
    }
}
