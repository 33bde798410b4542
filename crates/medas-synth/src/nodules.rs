//! Lung CT phantoms with solid spherical nodules among branching lung vessels, written in the
//! LUNA16 layout: `subset0/{seriesuid}.mhd` (+ `.zraw`), `annotations.csv` (nodule centres in
//! world mm and diameters) and `candidates.csv` (class 1 near each nodule, class 0 at vessel
//! branchings and in plain parenchyma), plus `seg-nodules/{seriesuid}.mhd` with nodule k of a
//! scan labelled k.

use crate::chest::chest_phantom;
use crate::layout::{Plan, Written, streams};
use crate::rng::Rng;
use crate::shapes::{Ellipsoid, Point};
use crate::torso::{Torso, finish_ct};
use crate::volume::{Label, Volume};
use crate::SynthError;
use std::fmt::Write;

/// One row of `annotations.csv` or `candidates.csv` (world mm).
struct Finding {
    centre: Point,
    diameter: f64,
}

struct Case {
    uid: String,
    nodules: Vec<Finding>,
    negatives: Vec<Point>,
    files: Vec<std::path::PathBuf>,
}

pub fn generate(plan: &Plan) -> Result<Written, SynthError> {
    let cases = plan.run_cases(|case| {
        let mut rng = Rng::stream(plan.seed, &[case as u64, streams::CASE]);
        let uid = format!("2.25.{}", (u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64())) >> 1);
        let (mut volume, torso, branches) = chest_phantom(plan, &mut rng)?;
        volume.labels.fill(0);
        let mut negatives: Vec<Point> = branches.into_iter().filter(|&p| mostly_lung_around(&volume, p)).collect();
        let nodules = place_nodules(&mut volume, &mut rng, &torso);
        negatives.extend(parenchyma_points(&volume, &mut rng, &torso, 4));
        let image = finish_ct(&volume, plan, case, &mut rng)?;
        let mut files = plan.write_image(&image, &format!("subset0/{uid}.mhd"))?;
        files.extend(plan.write_image(&volume.label_image()?, &format!("seg-nodules/{uid}.mhd"))?);
        let mut order = Rng::stream(plan.seed, &[case as u64, streams::PATIENT]);
        shuffle(&mut negatives, &mut order);
        Ok(Case { uid, nodules, negatives, files })
    })?;
    let mut annotations = String::from("seriesuid,coordX,coordY,coordZ,diameter_mm\n");
    let mut candidates = String::from("seriesuid,coordX,coordY,coordZ,class\n");
    let mut files = Vec::new();
    for case in cases {
        for nodule in &case.nodules {
            let [x, y, z] = nodule.centre;
            let _ = writeln!(annotations, "{},{x:.6},{y:.6},{z:.6},{:.6}", case.uid, nodule.diameter);
            let _ = writeln!(candidates, "{},{x:.2},{y:.2},{z:.2},1", case.uid);
        }
        for [x, y, z] in &case.negatives {
            let _ = writeln!(candidates, "{},{x:.2},{y:.2},{z:.2},0", case.uid);
        }
        files.extend(case.files);
    }
    files.push(plan.write_text("annotations.csv", &annotations)?);
    files.push(plan.write_text("candidates.csv", &candidates)?);
    Ok((files, vec![(1, "nodule".to_string())]))
}

/// Whether most of the 26 points 8 mm around `p` read as aerated lung.
fn mostly_lung_around(volume: &Volume, p: Point) -> bool {
    sphere_points(p, 8.0).filter(|&q| volume.value_near(q).is_some_and(|v| v < -600.0)).count() >= 18
}

/// The 26 points at distance `reach` from `centre` towards the neighbours of a 3 × 3 × 3 cube.
fn sphere_points(centre: Point, reach: f64) -> impl Iterator<Item = Point> {
    (0..27).filter(|&n| n != 13).map(move |n| {
        let offset = [(n % 3) as f64 - 1.0, ((n / 3) % 3) as f64 - 1.0, (n / 9) as f64 - 1.0];
        let norm = offset.iter().map(|o| o * o).sum::<f64>().sqrt();
        std::array::from_fn(|a| centre[a] + reach * offset[a] / norm)
    })
}


/// Whether a sphere of `radius` mm at `centre` lies in aerated lung: the centre and 26 points
/// at 3 mm beyond its surface all read below -600 HU.
fn fits_in_lung(volume: &Volume, centre: Point, radius: f64) -> bool {
    std::iter::once(centre).chain(sphere_points(centre, radius + 3.0)).all(|p| volume.value_near(p).is_some_and(|v| v < -600.0))
}

/// A random point of the lungs' bounding region, within the volume.
fn lung_point(rng: &mut Rng, torso: &Torso) -> Point {
    let side = if rng.chance(0.5) { -1.0 } else { 1.0 };
    torso.at(side * torso.cavity[0] * rng.uniform(0.15, 0.9), torso.cavity[1] * rng.uniform(-0.85, 0.85), torso.half_length * rng.uniform(-0.85, 0.85))
}

/// One to three solid nodules (diameter 4–30 mm, small ones commoner, never under two voxels)
/// placed in aerated lung without touching each other; nodule k is labelled k.
fn place_nodules(volume: &mut Volume, rng: &mut Rng, torso: &Torso) -> Vec<Finding> {
    let spacing = volume.geometry.spacing().iter().cloned().fold(0.0, f64::max);
    let smallest = 4f64.max(2.0 * spacing);
    let wanted = rng.int(1, 3);
    let mut nodules: Vec<Finding> = Vec::new();
    for _attempt in 0..400 {
        if nodules.len() == wanted {
            break;
        }
        let diameter = smallest + (30.0 - smallest).max(0.0) * rng.unit().powi(2);
        let centre = lung_point(rng, torso);
        if !fits_in_lung(volume, centre, diameter / 2.0) {
            continue;
        }
        let density = rng.uniform(0.0, 60.0);
        let sphere = Ellipsoid::new(centre, [diameter / 2.0; 3]);
        volume.paint(&sphere, &|_| density, Label::Set(nodules.len() as u8 + 1));
        nodules.push(Finding { centre, diameter });
    }
    nodules
}

/// `count` points in aerated lung (negative candidates away from anything).
fn parenchyma_points(volume: &Volume, rng: &mut Rng, torso: &Torso, count: usize) -> Vec<Point> {
    let mut points = Vec::new();
    for _attempt in 0..200 {
        if points.len() == count {
            break;
        }
        let p = lung_point(rng, torso);
        if fits_in_lung(volume, p, 1.0) {
            points.push(p);
        }
    }
    points
}

/// Fisher–Yates shuffle with our generator.
fn shuffle<T>(items: &mut [T], rng: &mut Rng) {
    for i in (1..items.len()).rev() {
        items.swap(i, rng.int(0, i));
    }
}
