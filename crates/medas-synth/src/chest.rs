//! Chest CT phantoms with SegTHOR's four organs at risk: oesophagus (1), heart (2), trachea (3)
//! and aorta (4), among lungs with branching vessels, mediastinal fat, bronchi, ribs and spine. The lung-nodule kind
//! builds on the same chest.

use crate::layout::{Plan, Written, streams, write_nnunet};
use crate::noise::Fractal;
use crate::rng::Rng;
use crate::shapes::{Ellipsoid, Point, Tube, normalise, rotation};
use crate::torso::{Torso, finish_ct, hu, paint_body, paint_ribs};
use crate::volume::{Label, Volume};
use crate::SynthError;

pub const OESOPHAGUS: u8 = 1;
pub const HEART: u8 = 2;
pub const TRACHEA: u8 = 3;
pub const AORTA: u8 = 4;

/// The labels of the chest-organs kind, as in SegTHOR.
pub fn organ_labels() -> Vec<(u32, String)> {
    [(OESOPHAGUS, "esophagus"), (HEART, "heart"), (TRACHEA, "trachea"), (AORTA, "aorta")]
        .into_iter()
        .map(|(v, n)| (v as u32, n.to_string()))
        .collect()
}

pub fn generate(plan: &Plan) -> Result<Written, SynthError> {
    write_nnunet(plan, "chest", "ChestOrgans", &organ_labels(), |case| {
        let mut rng = Rng::stream(plan.seed, &[case as u64, streams::CASE]);
        let (volume, _, _) = chest_phantom(plan, &mut rng)?;
        Ok((finish_ct(&volume, plan, case, &mut rng)?, volume.label_image()?))
    })
}

/// A chest CT phantom with its four organs labelled; also returns the body layout and the
/// branch points of the lung vessels.
pub fn chest_phantom(plan: &Plan, rng: &mut Rng) -> Result<(Volume, Torso, Vec<Point>), SynthError> {
    let mut volume = crate::torso::ct_volume(plan, rng)?;
    let torso = paint_body(&mut volume, rng);
    paint_ribs(&mut volume, rng, &torso);
    paint_lungs(&mut volume, rng, &torso);
    let branches = paint_vessels(&mut volume, rng, &torso);
    paint_mediastinum(&mut volume, rng, &torso);
    Ok((volume, torso, branches))
}

/// Branching vessel trees from each hilum (radius shrinking by a third per generation);
/// returns the branch points, which make realistic false-positive candidates.
fn paint_vessels(volume: &mut Volume, rng: &mut Rng, torso: &Torso) -> Vec<Point> {
    let mut branch_points = Vec::new();
    for side in [-1.0, 1.0] {
        let hilum = torso.at(side * torso.cavity[0] * 0.3, rng.uniform(-10.0, 10.0), torso.half_length * rng.uniform(-0.1, 0.2));
        let mut front = vec![(hilum, [side, 0.0, 0.0], rng.uniform(4.0, 5.5))];
        for _generation in 0..4 {
            let mut next = Vec::new();
            for (start, heading, radius) in front {
                for _ in 0..2 {
                    let turn = rng.direction3();
                    let dir = normalise([heading[0] + 0.8 * turn[0], heading[1] + 0.8 * turn[1], heading[2] + 0.9 * turn[2]]);
                    let length = rng.uniform(25.0, 45.0);
                    let end = [start[0] + dir[0] * length, start[1] + dir[1] * length, start[2] + dir[2] * length];
                    let tube = Tube::new(vec![start, end], vec![radius, radius * 0.8]);
                    volume.paint(&tube, &|_| hu::BLOOD - 10.0, Label::Keep);
                    next.push((end, dir, radius * 0.67));
                }
                branch_points.push(start);
            }
            front = next;
        }
    }
    branch_points
}


/// Two lungs with parenchymal texture, the right one larger, and the upper abdomen (liver
/// dome) under the right base.
fn paint_lungs(volume: &mut Volume, rng: &mut Rng, torso: &Torso) {
    let (low, high) = volume.world_bounds();
    let texture = Fractal::new(rng, low, high, 12.0, 3);
    let [cx, cy] = torso.cavity;
    let length = torso.half_length;
    let lung_fill = |p: Point| hu::LUNG + 45.0 * texture.at(p) + 15.0 * (p[1] - torso.centre[1]) / cy; // dependent density
    for (side, scale) in [(-1.0, 1.0), (1.0, 0.9)] {
        let centre = torso.at(side * cx * rng.uniform(0.46, 0.52), rng.uniform(-5.0, 8.0), length * rng.uniform(0.05, 0.2));
        let radii = [cx * 0.47 * scale, cy * rng.uniform(0.88, 0.96), length * rng.uniform(0.8, 0.95)];
        let lung = Ellipsoid::new(centre, radii).rotated(rotation(side * rng.uniform(0.0, 0.08), 0.0, 0.0)).deformed(rng, 0.05, 50.0);
        volume.paint(&lung, &lung_fill, Label::Keep);
    }
    let dome = Ellipsoid::new(torso.at(-cx * 0.35, 0.0, -length * 1.05), [cx * 0.7, cy * 0.9, length * 0.45]).deformed(rng, 0.05, 60.0);
    volume.paint(&dome, &|p| hu::LIVER + 5.0 * texture.at(p), Label::Set(0));
}

/// Mediastinal fat, pericardial fat and heart, aorta (ascending, arch, descending), trachea
/// with main bronchi, and the oesophagus, each with random size and position.
fn paint_mediastinum(volume: &mut Volume, rng: &mut Rng, torso: &Torso) {
    let [cx, cy] = torso.cavity;
    let length = torso.half_length;
    let mediastinum = Ellipsoid::new(torso.at(0.0, -cy * 0.2, 0.0), [cx * 0.28, cy * 0.75, length * 3.0]).deformed(rng, 0.08, 40.0);
    volume.paint(&mediastinum, &|_| hu::FAT + 10.0, Label::Keep);

    let heart_centre = torso.at(rng.uniform(8.0, 25.0), -cy * rng.uniform(0.25, 0.4), -length * rng.uniform(0.2, 0.4));
    let heart_radii = [rng.uniform(50.0, 62.0), rng.uniform(40.0, 50.0), rng.uniform(45.0, 55.0)];
    let heart_axes = rotation(rng.uniform(0.4, 0.8), rng.uniform(-0.2, 0.2), rng.uniform(-0.2, 0.2));
    let pericardial = Ellipsoid::new(heart_centre, heart_radii.map(|r| r + 5.0)).rotated(heart_axes).deformed(rng, 0.06, 40.0);
    volume.paint(&pericardial, &|_| hu::FAT + 20.0, Label::Keep);
    let heart = Ellipsoid::new(heart_centre, heart_radii).rotated(heart_axes).deformed(rng, 0.05, 45.0);
    let wall = rng.uniform(-8.0, 8.0);
    volume.paint(&heart, &|_| hu::BLOOD + wall, Label::Set(HEART));

    let arch_z = paint_aorta(volume, rng, torso, heart_centre, heart_radii[2]);
    paint_airways(volume, rng, torso, arch_z);
    paint_oesophagus(volume, rng, torso);
}

/// Aorta: ascending from the heart's top, arch to the left and back, descending by the spine;
/// returns the height (z, mm) of the arch.
fn paint_aorta(volume: &mut Volume, rng: &mut Rng, torso: &Torso, heart_centre: Point, heart_height: f64) -> f64 {
    let length = torso.half_length;
    let spine_dy = torso.spine[1] - torso.centre[1];
    let heart_top = heart_centre[2] + heart_height * 0.6;
    let arch_z = (heart_top + rng.uniform(40.0, 60.0)).min(torso.centre[2] + length - 15.0);
    let descending = [torso.spine[0] + rng.uniform(22.0, 30.0), torso.centre[1] + spine_dy - rng.uniform(18.0, 24.0)];
    let ascending = [torso.centre[0] + rng.uniform(-8.0, 4.0), heart_centre[1] + rng.uniform(5.0, 15.0)];
    let (r_up, r_down) = (rng.uniform(13.0, 16.0), rng.uniform(10.0, 13.0));
    let aorta = Tube::new(
        vec![
            [ascending[0], ascending[1], heart_centre[2]],
            [ascending[0], ascending[1], arch_z - 10.0],
            [(ascending[0] + descending[0]) / 2.0, (ascending[1] + descending[1]) / 2.0, arch_z],
            [descending[0], descending[1], arch_z - 10.0],
            [descending[0], descending[1] + 3.0, torso.centre[2] - length - 20.0],
        ],
        vec![r_up, r_up, (r_up + r_down) / 2.0, r_down, r_down * 0.9],
    );
    volume.paint(&aorta, &|_| hu::BLOOD, Label::Set(AORTA));

    arch_z
}

/// Trachea (midline, in front of the oesophagus) down to the carina below the aortic arch,
/// then the main bronchi.
fn paint_airways(volume: &mut Volume, rng: &mut Rng, torso: &Torso, arch_z: f64) {
    let length = torso.half_length;
    let spine_dy = torso.spine[1] - torso.centre[1];
    let trachea_y = torso.centre[1] + spine_dy - rng.uniform(48.0, 58.0);
    let carina = [torso.centre[0] + rng.uniform(-3.0, 3.0), trachea_y + 5.0, arch_z - rng.uniform(10.0, 25.0)];
    let top = [carina[0] + rng.uniform(-4.0, 4.0), trachea_y, torso.centre[2] + length + 20.0];
    let radius = rng.uniform(8.0, 11.0);
    for side in [-1.0, 1.0] {
        let end = [carina[0] + side * rng.uniform(35.0, 45.0), carina[1] + 10.0, carina[2] - rng.uniform(25.0, 35.0)];
        let bronchus = Tube::new(vec![carina, end], vec![radius * 0.75, radius * 0.55]);
        volume.paint(&bronchus, &|_| hu::SOFT_TISSUE, Label::Keep);
        let lumen = Tube::new(vec![carina, end], vec![radius * 0.75 - 1.5, radius * 0.55 - 1.5]);
        volume.paint(&lumen, &|_| hu::AIR + 20.0, Label::Keep);
    }
    let trachea = Tube::new(vec![top, carina], vec![radius, radius]);
    volume.paint(&trachea, &|_| hu::SOFT_TISSUE, Label::Set(TRACHEA));
    let lumen = Tube::new(vec![top, carina], vec![radius - 2.0, radius - 2.0]);
    volume.paint(&lumen, &|_| hu::AIR + 10.0, Label::Set(TRACHEA));

}

/// Oesophagus: between trachea and spine, slightly left, a gentle wiggle, sometimes air.
fn paint_oesophagus(volume: &mut Volume, rng: &mut Rng, torso: &Torso) {
    let length = torso.half_length;
    let spine_dy = torso.spine[1] - torso.centre[1];
    let y = torso.centre[1] + spine_dy - rng.uniform(30.0, 36.0);
    let x = torso.spine[0] + rng.uniform(0.0, 8.0);
    let zs = [length + 20.0, length * 0.3, -length * 0.3, -length - 20.0];
    let points: Vec<Point> = zs.iter().map(|&dz| [x + rng.uniform(-4.0, 4.0), y + rng.uniform(-3.0, 3.0), torso.centre[2] + dz]).collect();
    let radii: Vec<f64> = zs.iter().map(|_| rng.uniform(6.0, 9.0)).collect();
    let oesophagus = Tube::new(points.clone(), radii);
    volume.paint(&oesophagus, &|_| hu::SOFT_TISSUE, Label::Set(OESOPHAGUS));
    if rng.chance(0.3) {
        let air = Tube::new(points.clone(), vec![rng.uniform(1.5, 3.0); points.len()]);
        volume.paint(&air, &|_| hu::AIR + 100.0, Label::Set(OESOPHAGUS));
    }
}
