//! The CT body all torso phantoms share: a CT grid with real-scan spacing, skin and
//! subcutaneous fat, the muscle wall, the spine (cortical rim, trabecular bone, discs, canal),
//! optional ribs, and the CT finish (attenuation bias field, Gaussian noise, int16 HU).

use crate::layout::{Plan, scaled_spacing, streams};
use crate::noise::Fractal;
use crate::rng::Rng;
use crate::shapes::{Ellipsoid, Point, Tube};
use crate::volume::{Label, Volume, oblique_direction};
use crate::SynthError;

/// HU of the tissues (non-contrast CT).
pub mod hu {
    pub const AIR: f64 = -1000.0;
    pub const LUNG: f64 = -850.0;
    pub const FAT: f64 = -100.0;
    pub const SOFT_TISSUE: f64 = 40.0;
    pub const MUSCLE: f64 = 50.0;
    pub const BLOOD: f64 = 45.0;
    pub const LIVER: f64 = 60.0;
    pub const CORTICAL_BONE: f64 = 800.0;
    pub const TRABECULAR_BONE: f64 = 250.0;
    pub const DISC: f64 = 90.0;
}

/// The body of one torso phantom, in world mm (LPS: +x left, +y posterior, +z superior).
pub struct Torso {
    pub centre: Point,
    /// Half extent of the volume along z (mm).
    pub half_length: f64,
    /// Semi-axes (x, y) of the cavity inside the muscle wall (mm).
    pub cavity: [f64; 2],
    /// Centre of the vertebral bodies (x, y), mm.
    pub spine: [f64; 2],
}

impl Torso {
    /// World point at offset (dx, dy, dz) mm from the body centre.
    pub fn at(&self, dx: f64, dy: f64, dz: f64) -> Point {
        [self.centre[0] + dx, self.centre[1] + dy, self.centre[2] + dz]
    }
}

/// A CT grid with real-scan spacing (0.68–0.80 mm at 512 in-plane, 1.5–2.5 mm slices at 128
/// slices, scaled to the requested size so the field of view stays anatomical) filled with air.
pub fn ct_volume(plan: &Plan, rng: &mut Rng) -> Result<Volume, SynthError> {
    let size = plan.size3();
    let in_plane = rng.uniform(0.68, 0.80);
    let slice = rng.uniform(1.5, 2.5);
    let spacing = [scaled_spacing(in_plane, 512, size[0]), scaled_spacing(in_plane, 512, size[1]), scaled_spacing(slice, 128, size[2])];
    let centre = [rng.uniform(-15.0, 15.0), rng.uniform(-20.0, 20.0), rng.uniform(-250.0, -100.0)];
    Volume::new(size, spacing, centre, oblique_direction(0.0, 0.0, 0.0), hu::AIR)
}

/// Paints skin and fat, the muscle wall and the spine; returns where they are.
pub fn paint_body(volume: &mut Volume, rng: &mut Rng) -> Torso {
    let (low, high) = volume.world_bounds();
    let centre: Point = std::array::from_fn(|a| (low[a] + high[a]) / 2.0);
    let half_length = (high[2] - low[2]) / 2.0;
    let width = high[0] - low[0];
    let body = [width * rng.uniform(0.40, 0.46), width * rng.uniform(0.28, 0.33)];
    let fat = rng.uniform(8.0, 25.0);
    let muscle = rng.uniform(10.0, 18.0);
    let long = half_length * 20.0; // nearly a cylinder along z
    let texture = Fractal::new(rng, low, high, 40.0, 2);
    let body_centre = [centre[0], centre[1] + rng.uniform(-5.0, 5.0), centre[2]];
    let outline = Ellipsoid::new(body_centre, [body[0], body[1], long]).deformed(rng, 0.04, 80.0);
    volume.paint(&outline, &|p| hu::FAT + 10.0 * texture.at(p), Label::Keep);
    let wall = Ellipsoid::new(body_centre, [body[0] - fat, body[1] - fat, long]).deformed(rng, 0.04, 60.0);
    volume.paint(&wall, &|p| hu::MUSCLE + 8.0 * texture.at(p), Label::Keep);
    let cavity = [body[0] - fat - muscle, body[1] - fat - muscle];
    let inner = Ellipsoid::new(body_centre, [cavity[0], cavity[1], long]).deformed(rng, 0.03, 60.0);
    volume.paint(&inner, &|p| hu::FAT + 15.0 + 10.0 * texture.at(p), Label::Keep);
    let torso = Torso { centre: body_centre, half_length, cavity, spine: [body_centre[0], body_centre[1] + cavity[1] - 22.0] };
    paint_spine(volume, rng, &torso);
    torso
}

/// Vertebral bodies (cortical rim, trabecular core, discs every ~28 mm), the spinal canal and
/// the posterior elements.
fn paint_spine(volume: &mut Volume, rng: &mut Rng, torso: &Torso) {
    let radius = [rng.uniform(15.0, 19.0), rng.uniform(13.0, 16.0)];
    let long = torso.half_length * 20.0;
    let [x, y] = torso.spine;
    let body_centre = [x, y, torso.centre[2]];
    volume.paint(&Ellipsoid::new(body_centre, [radius[0], radius[1], long]), &|_| hu::CORTICAL_BONE, Label::Keep);
    let period = rng.uniform(25.0, 31.0);
    let phase = rng.uniform(0.0, period);
    let core = move |p: Point| {
        // Discs: a band of soft tissue where the cosine is near its peak.
        let wave = (std::f64::consts::TAU * (p[2] + phase) / period).cos();
        let disc = ((wave - 0.75) / 0.2).clamp(0.0, 1.0);
        hu::TRABECULAR_BONE + (hu::DISC - hu::TRABECULAR_BONE) * disc
    };
    volume.paint(&Ellipsoid::new(body_centre, [radius[0] - 2.5, radius[1] - 2.5, long]), &core, Label::Keep);
    let canal_y = y + radius[1] + 9.0;
    let (bottom, top) = (torso.centre[2] - torso.half_length - 10.0, torso.centre[2] + torso.half_length + 10.0);
    let arch = Tube::new(vec![[x, canal_y, bottom], [x, canal_y, top]], vec![12.0, 12.0]);
    volume.paint(&arch, &|_| hu::CORTICAL_BONE * 0.8, Label::Keep);
    let canal = Tube::new(vec![[x, canal_y, bottom], [x, canal_y, top]], vec![7.5, 7.5]);
    volume.paint(&canal, &|_| 15.0, Label::Keep);
}

/// Ribs: on each side, bony tubes every ~25 mm in z that follow the body wall from the spine
/// forwards, sloping down anteriorly.
pub fn paint_ribs(volume: &mut Volume, rng: &mut Rng, torso: &Torso) {
    let spacing = rng.uniform(22.0, 28.0);
    let levels = (2.0 * torso.half_length / spacing).ceil() as i64;
    let path_radius = [torso.cavity[0] + 6.0, torso.cavity[1] + 6.0];
    for level in -1..=levels {
        let z = torso.centre[2] - torso.half_length + level as f64 * spacing;
        for side in [-1.0, 1.0] {
            let points: Vec<Point> = (0..8)
                .map(|n| {
                    // From beside the spine (angle 100°) round the side to the front (-54°).
                    let angle = (100.0 - 22.0 * n as f64).to_radians();
                    let x = side * path_radius[0] * angle.cos().abs().max(0.2);
                    [torso.centre[0] + x, torso.centre[1] + path_radius[1] * angle.sin(), z - 4.0 * n as f64]
                })
                .collect();
            let radius = rng.uniform(3.5, 5.0);
            let rib = Tube::new(points.clone(), vec![radius; points.len()]);
            volume.paint(&rib, &|_| hu::CORTICAL_BONE * 0.75, Label::Keep);
        }
    }
}

/// The scanner's side: a mild attenuation bias field (cupping-like, 2–5 %) on HU + 1000 and
/// Gaussian noise of 8–20 HU, stored as int16 HU clamped to [-1024, 3071].
pub fn finish_ct(volume: &Volume, plan: &Plan, case: usize, rng: &mut Rng) -> Result<medas_image::Image, SynthError> {
    let strength = rng.uniform(0.02, 0.05);
    let sigma = rng.uniform(8.0, 20.0);
    let data = volume.finish_i16(plan.seed, &[case as u64, streams::NOISE], |value, bias, rng| {
        let attenuated = (value - hu::AIR) * (1.0 + strength * bias) + hu::AIR;
        (attenuated + sigma * rng.normal()).clamp(-1024.0, 3071.0)
    });
    let mut image = volume.image_i16(data)?;
    image.metadata.set_text(medas_image::keys::MODALITY, "CT");
    Ok(image)
}
