//! The 3-D phantoms read back with their geometry, their labels match `dataset.json`, organs
//! have their HU inside the label, nodules sit where the CSVs say with the stated diameter,
//! and the two brain classes differ in ventricle size while their tissue brightness (gain, bias
//! field, noise) overlaps.

mod support;

use medas_synth::Kind;
use std::collections::BTreeMap;
use support::{generated, read, values};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn dataset_labels(folder: &std::path::Path) -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string(folder.join("dataset.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["file_ending"], ".nii.gz");
    assert_eq!(json["channel_names"]["0"], "CT");
    json["labels"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap())).collect()
}

/// Reads every image/label pair of an nnU-Net folder, checks the geometry, and returns the
/// HU values of the labels' interior voxels per label value over all cases.
fn hu_by_label(kind: Kind, cases: usize, size: usize) -> (BTreeMap<String, u64>, BTreeMap<u8, Vec<f64>>) {
    let (folder, summary) = generated(kind, cases, 5, size);
    let labels = dataset_labels(folder.path());
    assert_eq!(summary.labels.len() + 1, labels.len(), "dataset.json has background plus the summary's labels");
    let mut by_label: BTreeMap<u8, Vec<f64>> = BTreeMap::new();
    let prefix = if kind == Kind::Liver { "liver" } else { "chest" };
    for case in 0..cases {
        let image = read(folder.path(), format!("imagesTr/{prefix}_{case:03}_0000.nii.gz"));
        let label = read(folder.path(), format!("labelsTr/{prefix}_{case:03}.nii.gz"));
        assert_eq!(image.size(), &[size, size, size]);
        assert_eq!(image.scalar_type(), medas_image::ScalarType::I16);
        assert!(image.geometry().approx_eq(label.geometry(), 1e-4), "image and label share the grid");
        let spacing = image.geometry().spacing();
        let scale = 512.0 / size as f64;
        assert!((0.68 * scale - 1e-3..=0.80 * scale + 1e-3).contains(&spacing[0]), "in-plane spacing {spacing:?}");
        assert!((1.5 * 128.0 / size as f64 - 1e-3..=2.5 * 128.0 / size as f64 + 1e-3).contains(&spacing[2]), "slice spacing {spacing:?}");
        assert!(image.geometry().direction().iter().zip([1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]).all(|(a, b)| (a - b).abs() < 1e-6));
        // Interior voxels only (the label and its 6 neighbours agree): no partial volume.
        let (hu, labels) = (values(&image), values(&label));
        let s = [size, size, size];
        for k in 1..size - 1 {
            for j in 1..size - 1 {
                for i in 1..size - 1 {
                    let l = labels[support::at(&s, i, j, k)];
                    let neighbours = [(i - 1, j, k), (i + 1, j, k), (i, j - 1, k), (i, j + 1, k), (i, j, k - 1), (i, j, k + 1)];
                    if neighbours.iter().all(|&(a, b, c)| labels[support::at(&s, a, b, c)] == l) {
                        by_label.entry(l as u8).or_default().push(hu[support::at(&s, i, j, k)]);
                    }
                }
            }
        }
    }
    (labels, by_label)
}

#[test]
fn liver_labels_and_hu() {
    let (labels, by_label) = hu_by_label(Kind::Liver, 2, 96);
    assert_eq!(labels, BTreeMap::from([("background".into(), 0), ("liver".into(), 1)]));
    assert_eq!(by_label.keys().cloned().collect::<Vec<_>>(), vec![0, 1]);
    let liver = median(by_label[&1].clone());
    let background = &by_label[&0];
    let air = background.iter().filter(|&&v| v < -900.0).count() as f64 / background.len() as f64;
    let bone = background.iter().cloned().fold(f64::MIN, f64::max);
    eprintln!("liver median {liver:.1} HU (range 40..80), air share {air:.2}, brightest {bone} HU");
    assert!((40.0..=80.0).contains(&liver));
    assert!(air > 0.15, "air around the body");
    assert!(bone > 400.0, "bone present");
}

#[test]
fn chest_organ_labels_and_hu() {
    let (labels, by_label) = hu_by_label(Kind::ChestOrgans, 2, 96);
    let expected = [("background", 0), ("esophagus", 1), ("heart", 2), ("trachea", 3), ("aorta", 4)];
    assert_eq!(labels, expected.iter().map(|(n, v)| (n.to_string(), *v)).collect());
    assert_eq!(by_label.keys().cloned().collect::<Vec<_>>(), vec![0, 1, 2, 3, 4], "every organ present");
    // Median HU inside each label: blood 20..70; oesophagus soft tissue, in some cases with an
    // air lumen, -100..70; trachea mostly air.
    let ranges = [(1u8, -100.0, 70.0), (2, 20.0, 70.0), (4, 20.0, 70.0), (3, -1024.0, -200.0)];
    for (label, low, high) in ranges {
        let m = median(by_label[&label].clone());
        eprintln!("label {label}: median {m:.1} HU (range {low}..{high}), {} voxels", by_label[&label].len());
        assert!((low..=high).contains(&m), "label {label} median {m}");
    }
    let lung = by_label[&0].iter().filter(|&&v| (-950.0..-700.0).contains(&v)).count();
    assert!(lung > 10_000, "lungs present: {lung} voxels");
}

struct Annotation {
    uid: String,
    centre: [f64; 3],
    diameter: f64,
}

fn csv_rows(path: &std::path::Path, header: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(header));
    lines.map(|l| l.split(',').map(String::from).collect()).collect()
}

#[test]
fn nodules_lie_in_labelled_spheres_of_the_stated_diameter() {
    let (folder, _) = generated(Kind::LungNodules, 3, 9, 96);
    let annotations: Vec<Annotation> = csv_rows(&folder.path().join("annotations.csv"), "seriesuid,coordX,coordY,coordZ,diameter_mm")
        .into_iter()
        .map(|r| Annotation { uid: r[0].clone(), centre: [r[1].parse().unwrap(), r[2].parse().unwrap(), r[3].parse().unwrap()], diameter: r[4].parse().unwrap() })
        .collect();
    let candidates = csv_rows(&folder.path().join("candidates.csv"), "seriesuid,coordX,coordY,coordZ,class");
    assert!(annotations.len() >= 3, "at least one nodule per scan");
    let mut seen: BTreeMap<String, u8> = BTreeMap::new();
    for nodule in &annotations {
        let number = seen.entry(nodule.uid.clone()).and_modify(|n| *n += 1).or_insert(1);
        let mask = read(folder.path(), format!("seg-nodules/{}.mhd", nodule.uid));
        let image = read(folder.path(), format!("subset0/{}.mhd", nodule.uid));
        assert!(image.geometry().approx_eq(mask.geometry(), 1e-9));
        let geometry = mask.geometry();
        let size = mask.size().to_vec();
        let labels = values(&mask);
        let index = geometry.point_to_index(&nodule.centre);
        let voxel = |i: f64, j: f64, k: f64| support::at(&size, i.round() as usize, j.round() as usize, k.round() as usize);
        assert_eq!(labels[voxel(index[0], index[1], index[2])] as u8, *number, "centre of nodule {number} of {} is labelled", nodule.uid);
        // Every voxel within r - h of the centre is labelled, none beyond r + h (h = half the
        // voxel diagonal: where a voxel centre may sit relative to a boundary it straddles).
        let spacing = geometry.spacing();
        let h = 0.5 * spacing.iter().map(|s| s * s).sum::<f64>().sqrt();
        let radius = nodule.diameter / 2.0;
        let (mut inside, mut labelled) = (0, 0);
        for k in 0..size[2] {
            for j in 0..size[1] {
                for i in 0..size[0] {
                    let p = geometry.index_to_point(&[i as f64, j as f64, k as f64]);
                    let d = (0..3).map(|a| (p[a] - nodule.centre[a]).powi(2)).sum::<f64>().sqrt();
                    let is_this = labels[support::at(&size, i, j, k)] as u8 == *number;
                    assert!(d >= radius - h || is_this, "voxel {d:.2} mm from the centre of a {radius:.2} mm radius nodule is not labelled");
                    assert!(d <= radius + h || !is_this, "voxel {d:.2} mm from the centre of a {radius:.2} mm radius nodule is labelled");
                    inside += usize::from(d < radius);
                    labelled += usize::from(is_this);
                }
            }
        }
        let hu = values(&image)[voxel(index[0], index[1], index[2])];
        eprintln!("nodule {number} of {}: diameter {:.1} mm, {labelled} labelled voxels vs {inside} centres within r; centre {hu} HU", &nodule.uid[..12], nodule.diameter);
        assert!(hu > -300.0, "solid nodule: centre {hu} HU");
        let near = candidates.iter().any(|c| {
            c[0] == nodule.uid && c[4] == "1" && (0..3).all(|a| (c[a + 1].parse::<f64>().unwrap() - nodule.centre[a]).abs() < 0.01)
        });
        assert!(near, "a class-1 candidate at each annotation");
    }
    assert!(candidates.iter().filter(|c| c[4] == "0").count() >= 3 * 3, "negative candidates");
}

#[test]
fn brain_classes_differ_in_ventricles_but_not_in_tissue_brightness() {
    let cases = 12;
    let size = 64;
    let (folder, summary) = generated(Kind::BrainClasses, cases, 21, size);
    assert_eq!(summary.labels, vec![(0, "CN".to_string()), (1, "AD".to_string())]);
    let rows = csv_rows(&folder.path().join("manifest.csv"), "path,label,patient_id,age,sex,visit");
    assert_eq!(rows.len(), cases);
    let mut features: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (n, row) in rows.iter().enumerate() {
        if row[5] == "1" {
            assert_eq!((&row[1], &row[2]), (&rows[n - 1][1], &rows[n - 1][2]), "a follow-up keeps patient and class");
        }
        let image = read(folder.path(), &row[0]);
        assert_eq!(image.size(), &[size, size, size]);
        let spacing = image.geometry().spacing()[0];
        assert!((spacing - 240.0 / size as f64).abs() < 1e-4, "spacing {spacing}");
        let v = values(&image);
        // Dark (CSF-like, < 300) voxels in a central box holding the ventricles.
        let half = [25.0, 40.0, 20.0].map(|mm: f64| (mm / spacing).round() as usize);
        let centre = [size / 2, size / 2, size / 2 + (12.0 / spacing).round() as usize];
        let mut dark = 0;
        for k in centre[2] - half[2]..centre[2] + half[2] {
            for j in centre[1] - half[1]..centre[1] + half[1] {
                for i in centre[0] - half[0]..centre[0] + half[0] {
                    dark += usize::from(v[support::at(&[size, size, size], i, j, k)] < 300.0);
                }
            }
        }
        let ventricles_ml = dark as f64 * spacing.powi(3) / 1000.0;
        // White-matter brightness: scanner gain, bias and noise, which must not tell the class.
        let bright = median(v.iter().cloned().filter(|&x| x > 500.0).collect());
        features.entry(row[1].clone()).or_default().push((ventricles_ml, bright));
    }
    let stats = |class: &str, pick: fn(&(f64, f64)) -> f64| {
        let x: Vec<f64> = features[class].iter().map(pick).collect();
        let mean = x.iter().sum::<f64>() / x.len() as f64;
        (mean, (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / x.len() as f64).sqrt())
    };
    let (cn, ad) = (stats("CN", |f| f.0), stats("AD", |f| f.0));
    let (cn_i, ad_i) = (stats("CN", |f| f.1), stats("AD", |f| f.1));
    eprintln!("central CSF: CN {:.1}±{:.1} ml, AD {:.1}±{:.1} ml; white-matter median CN {:.1}±{:.1}, AD {:.1}±{:.1}", cn.0, cn.1, ad.0, ad.1, cn_i.0, cn_i.1, ad_i.0, ad_i.1);
    assert!(features["CN"].len() >= 3 && features["AD"].len() >= 3, "both classes present");
    assert!(ad.0 > 1.5 * cn.0, "AD ventricles at least 1.5x CN's");
    assert!((ad_i.0 - cn_i.0).abs() < cn_i.1.max(ad_i.1), "tissue brightness does not separate the classes");
}
