//! Abdominal CT phantoms with a liver (label 1): a right lobe and a left lobe merged, with
//! hepatic vessels and hypodense lesions inside (both still liver, as in LiTS' liver contour),
//! next to a spleen of nearly the same density, kidneys, a stomach with air and fluid, the
//! aorta and inferior vena cava, bowel loops and the lung bases above.

use crate::layout::{Plan, Written, streams, write_nnunet};
use crate::noise::Fractal;
use crate::rng::Rng;
use crate::shapes::{Ellipsoid, Point, Tube, rotation};
use crate::torso::{Torso, ct_volume, finish_ct, hu, paint_body};
use crate::volume::{Label, Volume};
use crate::SynthError;

pub const LIVER: u8 = 1;

pub fn generate(plan: &Plan) -> Result<Written, SynthError> {
    let labels = vec![(LIVER as u32, "liver".to_string())];
    write_nnunet(plan, "liver", "Liver", &labels, |case| {
        let mut rng = Rng::stream(plan.seed, &[case as u64, streams::CASE]);
        let volume = liver_phantom(plan, &mut rng)?;
        Ok((finish_ct(&volume, plan, case, &mut rng)?, volume.label_image()?))
    })
}

fn liver_phantom(plan: &Plan, rng: &mut Rng) -> Result<Volume, SynthError> {
    let mut volume = ct_volume(plan, rng)?;
    let torso = paint_body(&mut volume, rng);
    let (low, high) = volume.world_bounds();
    let texture = Fractal::new(rng, low, high, 15.0, 3);
    paint_lung_bases(&mut volume, rng, &torso, &texture);
    paint_liver(&mut volume, rng, &torso, &texture);
    paint_neighbours(&mut volume, rng, &torso, &texture);
    Ok(volume)
}

fn paint_lung_bases(volume: &mut Volume, rng: &mut Rng, torso: &Torso, texture: &Fractal) {
    let [cx, cy] = torso.cavity;
    for side in [-1.0, 1.0] {
        let centre = torso.at(side * cx * 0.5, 0.0, torso.half_length * rng.uniform(1.0, 1.3));
        let base = Ellipsoid::new(centre, [cx * 0.45, cy * 0.85, torso.half_length * 0.6]).deformed(rng, 0.05, 50.0);
        volume.paint(&base, &|p| hu::LUNG + 40.0 * texture.at(p), Label::Keep);
    }
}

/// Right and left lobes (deformed, rotated ellipsoids), then vessels and lesions inside.
fn paint_liver(volume: &mut Volume, rng: &mut Rng, torso: &Torso, texture: &Fractal) {
    let [cx, cy] = torso.cavity;
    let length = torso.half_length;
    let density = hu::LIVER + rng.uniform(-8.0, 8.0);
    let fill = |p: Point| density + 6.0 * texture.at(p);
    let right_centre = torso.at(-cx * rng.uniform(0.35, 0.5), -cy * rng.uniform(0.0, 0.2), length * rng.uniform(0.1, 0.35));
    let right_radii = [cx * rng.uniform(0.45, 0.6), cy * rng.uniform(0.65, 0.8), rng.uniform(65.0, 90.0).min(length * 0.8)];
    let right = Ellipsoid::new(right_centre, right_radii)
        .rotated(rotation(rng.uniform(-0.3, 0.1), rng.uniform(-0.15, 0.15), rng.uniform(-0.1, 0.1)))
        .deformed(rng, 0.1, 60.0);
    volume.paint(&right, &fill, Label::Set(LIVER));
    let left_centre = [right_centre[0] + cx * rng.uniform(0.55, 0.75), right_centre[1] - cy * rng.uniform(0.2, 0.35), right_centre[2] + rng.uniform(5.0, 25.0)];
    let left_radii = [rng.uniform(40.0, 60.0), cy * rng.uniform(0.3, 0.4), rng.uniform(35.0, 50.0)];
    let left = Ellipsoid::new(left_centre, left_radii).rotated(rotation(rng.uniform(-0.5, 0.0), 0.0, 0.0)).deformed(rng, 0.12, 40.0);
    volume.paint(&left, &fill, Label::Set(LIVER));

    // Hepatic veins: three tubes fanning out from near the cava, slightly darker than liver.
    let hub = [right_centre[0] + right_radii[0] * 0.5, right_centre[1] + right_radii[1] * 0.4, right_centre[2] + right_radii[2] * 0.5];
    for _ in 0..3 {
        let end = [right_centre[0] + rng.uniform(-0.6, 0.6) * right_radii[0], right_centre[1] + rng.uniform(-0.6, 0.3) * right_radii[1], right_centre[2] - rng.uniform(0.0, 0.5) * right_radii[2]];
        let vein = Tube::new(vec![hub, end], vec![rng.uniform(4.0, 6.0), 2.0]);
        let vein_hu = density - rng.uniform(15.0, 30.0);
        volume.paint(&vein, &|_| vein_hu, Label::Set(LIVER));
    }
    // Lesions: 0–3 hypodense spheres inside the right lobe.
    for _ in 0..rng.int(0, 3) {
        let centre: Point = std::array::from_fn(|a| right_centre[a] + rng.uniform(-0.5, 0.5) * right_radii[a]);
        let radius = rng.uniform(5.0, 18.0);
        let lesion_hu = density - rng.uniform(20.0, 45.0);
        let lesion = Ellipsoid::new(centre, [radius, radius * rng.uniform(0.8, 1.2), radius]).deformed(rng, 0.1, 15.0);
        volume.paint(&lesion, &|_| lesion_hu, Label::Set(LIVER));
    }
}

/// Organs that touch the liver and make its boundary hard: spleen (about as dense), kidneys,
/// stomach, aorta, cava (which cuts into the liver's back) and bowel.
fn paint_neighbours(volume: &mut Volume, rng: &mut Rng, torso: &Torso, texture: &Fractal) {
    let [cx, cy] = torso.cavity;
    let length = torso.half_length;
    let spleen = Ellipsoid::new(torso.at(cx * rng.uniform(0.55, 0.7), cy * rng.uniform(0.15, 0.4), length * rng.uniform(0.1, 0.35)), [rng.uniform(25.0, 40.0), rng.uniform(45.0, 60.0), rng.uniform(40.0, 55.0)])
        .rotated(rotation(rng.uniform(-0.6, -0.2), 0.0, 0.0))
        .deformed(rng, 0.1, 35.0);
    let spleen_hu = hu::LIVER - rng.uniform(5.0, 15.0);
    volume.paint(&spleen, &|p| spleen_hu + 5.0 * texture.at(p), Label::Set(0));
    for side in [-1.0, 1.0] {
        let centre = [torso.spine[0] + side * rng.uniform(50.0, 65.0), torso.spine[1] - rng.uniform(0.0, 10.0), torso.centre[2] - length * rng.uniform(0.1, 0.4)];
        let kidney = Ellipsoid::new(centre, [rng.uniform(25.0, 32.0), rng.uniform(20.0, 26.0), rng.uniform(45.0, 60.0)])
            .rotated(rotation(side * rng.uniform(0.3, 0.6), 0.0, side * 0.15))
            .deformed(rng, 0.06, 30.0);
        volume.paint(&kidney, &|_| 30.0, Label::Set(0));
    }
    let stomach_centre = torso.at(cx * rng.uniform(0.2, 0.45), -cy * rng.uniform(0.3, 0.5), length * rng.uniform(0.0, 0.3));
    let stomach = Ellipsoid::new(stomach_centre, [rng.uniform(35.0, 50.0), rng.uniform(25.0, 35.0), rng.uniform(35.0, 50.0)]).deformed(rng, 0.1, 30.0);
    volume.paint(&stomach, &|_| hu::SOFT_TISSUE, Label::Set(0));
    let level = stomach_centre[1] + rng.uniform(-15.0, 0.0);
    let contents = Ellipsoid::new(stomach_centre, [30.0, 20.0, 30.0]).deformed(rng, 0.1, 30.0);
    // Supine: air floats anteriorly (smaller y), fluid lies behind.
    volume.paint(&contents, &|p| if p[1] < level { hu::AIR + 50.0 } else { 12.0 }, Label::Set(0));
    let aorta_x = torso.spine[0] + rng.uniform(8.0, 15.0);
    let vessel_y = torso.spine[1] - rng.uniform(22.0, 28.0);
    let (bottom, top) = (torso.centre[2] - length - 20.0, torso.centre[2] + length + 20.0);
    let aorta = Tube::new(vec![[aorta_x, vessel_y, bottom], [aorta_x, vessel_y, top]], vec![rng.uniform(9.0, 12.0); 2]);
    volume.paint(&aorta, &|_| hu::BLOOD, Label::Set(0));
    let cava_x = torso.spine[0] - rng.uniform(18.0, 28.0);
    let cava = Tube::new(vec![[cava_x, vessel_y, bottom], [cava_x - 5.0, vessel_y - 5.0, top]], vec![rng.uniform(9.0, 13.0); 2]);
    volume.paint(&cava, &|_| hu::BLOOD - 5.0, Label::Set(0));
    for _ in 0..rng.int(3, 6) {
        let centre = torso.at(cx * rng.uniform(-0.5, 0.6), -cy * rng.uniform(-0.1, 0.6), -length * rng.uniform(0.3, 0.9));
        let loop_radius = rng.uniform(12.0, 22.0);
        let bowel = Ellipsoid::new(centre, [loop_radius, loop_radius * 0.8, loop_radius * 1.5]).deformed(rng, 0.15, 20.0);
        let content = rng.uniform(-40.0, 30.0);
        volume.paint(&bowel, &|p| content + 20.0 * texture.at(p), Label::Set(0));
    }
}
