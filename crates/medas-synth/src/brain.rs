//! Two-class T1-like brain MR volumes (ADNI-like): CN (cognitively normal) and AD, where AD
//! has enlarged lateral ventricles and a shrunken brain (wider CSF spaces and sulci). Both grow with age
//! and vary between subjects, so the classes overlap. Every third case is a follow-up scan of
//! the previous patient (same anatomy, 1.5 years on), so splits must group by patient.
//! Written in the CSV manifest layout: `images/{case}.nii.gz` and `manifest.csv`.

use crate::layout::{Plan, Written, scaled_spacing, streams};
use crate::noise::Fractal;
use crate::rng::Rng;
use crate::shapes::{Ellipsoid, Point, in_frame, rotation};
use crate::volume::{Label, Volume, oblique_direction};
use crate::SynthError;
use std::fmt::Write;

/// T1 intensities (arbitrary units, as a scanner stores them).
mod t1 {
    pub const SCALP: f64 = 650.0;
    pub const SKULL: f64 = 60.0;
    pub const CSF: f64 = 180.0;
    pub const GREY: f64 = 430.0;
    pub const DEEP_GREY: f64 = 520.0;
    pub const WHITE: f64 = 680.0;
}

/// Label of the ventricles in the phantom's (unwritten) label map.
pub const VENTRICLES: u8 = 1;

/// A subject's anatomy, drawn from the patient's stream so follow-ups share it.
#[derive(Debug, Clone, Copy)]
pub struct Subject {
    pub alzheimer: bool,
    pub age: f64,
    pub female: bool,
    /// Size of the lateral ventricles relative to a young adult's.
    pub ventricles: f64,
    /// Brain size relative to the skull's inner surface (atrophy shrinks it).
    pub brain: f64,
    head: f64,
}

impl Subject {
    fn draw(rng: &mut Rng) -> Self {
        let alzheimer = rng.chance(0.5);
        let age = rng.uniform(60.0, 90.0);
        let ageing = 1.0 + 0.012 * (age - 60.0);
        let ventricles = ageing * rng.uniform(0.85, 1.15) * if alzheimer { rng.uniform(1.3, 1.7) } else { 1.0 };
        let brain = (1.0 - 0.0015 * (age - 60.0)) * if alzheimer { rng.uniform(0.94, 0.97) } else { rng.uniform(0.97, 1.0) };
        Self { alzheimer, age, female: rng.chance(0.5), ventricles, brain, head: rng.uniform(0.93, 1.07) }
    }

    /// The same subject 1.5 years later.
    fn follow_up(self) -> Self {
        let progression = if self.alzheimer { 1.08 } else { 1.03 };
        Self { age: self.age + 1.5, ventricles: self.ventricles * progression, brain: self.brain * 0.995, ..self }
    }

    pub fn class(&self) -> &'static str {
        if self.alzheimer { "AD" } else { "CN" }
    }
}

/// Patient index and visit (0 baseline, 1 follow-up) of a case: in each group of three cases,
/// the third is the second patient's follow-up.
pub fn patient_of(case: usize) -> (usize, usize) {
    let (group, slot) = (case / 3, case % 3);
    match slot {
        0 => (2 * group, 0),
        1 => (2 * group + 1, 0),
        _ => (2 * group + 1, 1),
    }
}

/// The subject scanned in `case`.
pub fn subject_of(seed: u64, case: usize) -> Subject {
    let (patient, visit) = patient_of(case);
    let baseline = Subject::draw(&mut Rng::stream(seed, &[patient as u64, streams::PATIENT]));
    if visit == 0 { baseline } else { baseline.follow_up() }
}

pub fn generate(plan: &Plan) -> Result<Written, SynthError> {
    let rows = plan.run_cases(|case| {
        let subject = subject_of(plan.seed, case);
        let mut rng = Rng::stream(plan.seed, &[case as u64, streams::CASE]);
        let volume = brain_phantom(plan, &mut rng, &subject)?;
        let image = finish_mr(&volume, plan, case, &mut rng)?;
        let name = format!("brain_{case:03}");
        let file = plan.write_image(&image, &format!("images/{name}.nii.gz"))?;
        let (patient, visit) = patient_of(case);
        let sex = if subject.female { "F" } else { "M" };
        let row = format!("images/{name}.nii.gz,{},P{:04},{:.1},{sex},{visit}\n", subject.class(), patient + 1, subject.age);
        Ok((file, row))
    })?;
    let mut manifest = String::from("path,label,patient_id,age,sex,visit\n");
    let mut files = Vec::new();
    for (file, row) in rows {
        let _ = write!(manifest, "{row}");
        files.extend(file);
    }
    files.push(plan.write_text("manifest.csv", &manifest)?);
    Ok((files, vec![(0, "CN".to_string()), (1, "AD".to_string())]))
}

/// The head: scalp, skull, CSF, cortex with sulci and a folded grey/white boundary, deep grey nuclei,
/// lateral and third ventricles and the cerebellum, on an obliquely oriented 1 mm-class grid.
pub fn brain_phantom(plan: &Plan, rng: &mut Rng, subject: &Subject) -> Result<Volume, SynthError> {
    let size = plan.size3();
    let spacing = [0, 1, 2].map(|a| scaled_spacing(1.0, 240, size[a]));
    let centre = [rng.uniform(-5.0, 5.0), rng.uniform(-10.0, 10.0), rng.uniform(0.0, 20.0)];
    let tilt = [rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1)];
    let mut volume = Volume::new(size, spacing, centre, oblique_direction(tilt[0], tilt[1], tilt[2]), 0.0)?;
    let (low, high) = volume.world_bounds();
    let texture = Fractal::new(rng, low, high, 10.0, 3);
    let head = [72.0, 92.0, 82.0].map(|r| r * subject.head);
    let pose = rotation(rng.uniform(-0.08, 0.08), rng.uniform(-0.08, 0.08), rng.uniform(-0.12, 0.12));
    let shell = |inset: f64, scale: f64| head.map(|r| (r - inset) * scale);
    let at = |dx: f64, dy: f64, dz: f64| -> Point {
        std::array::from_fn(|a| centre[a] + pose[0][a] * dx + pose[1][a] * dy + pose[2][a] * dz)
    };
    volume.paint(&Ellipsoid::new(centre, shell(0.0, 1.0)).rotated(pose).deformed(rng, 0.03, 60.0), &|_| t1::SCALP, Label::Keep);
    volume.paint(&Ellipsoid::new(centre, shell(5.0, 1.0)).rotated(pose), &|_| t1::SKULL, Label::Keep);
    volume.paint(&Ellipsoid::new(centre, shell(11.0, 1.0)).rotated(pose), &|_| t1::CSF, Label::Keep);
    // Sulci: CSF along the zero lines of a smooth field, wider as the brain shrinks.
    let sulci = Fractal::new(rng, low, high, 16.0, 2);
    let sulcal_width = 0.05 + 1.5 * (1.0 - subject.brain).max(0.0);
    let grey = |p: Point| {
        let csf = ((sulcal_width - sulci.at(p).abs()) / 0.03 + 0.5).clamp(0.0, 1.0);
        t1::GREY + 25.0 * texture.at(p) + (t1::CSF - t1::GREY) * csf
    };
    let brain = shell(13.0, subject.brain);
    volume.paint(&Ellipsoid::new(centre, brain).rotated(pose).deformed(rng, 0.04, 22.0), &grey, Label::Keep);
    let white = |p: Point| t1::WHITE + 20.0 * texture.at(p);
    volume.paint(&Ellipsoid::new(centre, brain.map(|r| r * 0.72)).rotated(pose).deformed(rng, 0.12, 18.0), &white, Label::Keep);
    let cerebellum_centre = at(0.0, brain[1] * 0.5, -brain[2] * 0.55);
    volume.paint(&Ellipsoid::new(cerebellum_centre, [brain[0] * 0.65, brain[1] * 0.3, brain[2] * 0.3]).rotated(pose), &grey, Label::Keep);
    for side in [-1.0, 1.0] {
        let deep = Ellipsoid::new(at(side * 17.0, 2.0, 0.0), [11.0, 17.0, 11.0]).rotated(pose).deformed(rng, 0.08, 10.0);
        volume.paint(&deep, &|_| t1::DEEP_GREY, Label::Keep);
    }
    let v = subject.ventricles;
    for side in [-1.0, 1.0] {
        let radii = [5.5 * v, 26.0 * v.sqrt(), 9.0 * v];
        let horn = Ellipsoid::new(at(side * (4.0 + radii[0]), -4.0, 10.0), radii)
            .rotated(in_frame(rotation(side * 0.12, 0.0, 0.0), pose))
            .deformed(rng, 0.1, 12.0);
        volume.paint(&horn, &|_| t1::CSF, Label::Set(VENTRICLES));
    }
    volume.paint(&Ellipsoid::new(at(0.0, 0.0, 0.0), [1.5 * v, 12.0, 8.0]).rotated(pose), &|_| t1::CSF, Label::Set(VENTRICLES));
    Ok(volume)
}

/// Scanner effects: a global gain, a smooth multiplicative bias field (±10–25 %) and Rician
/// noise (magnitude of a complex signal with Gaussian noise of 2–4 % of white matter).
fn finish_mr(volume: &Volume, plan: &Plan, case: usize, rng: &mut Rng) -> Result<medas_image::Image, SynthError> {
    let gain = rng.uniform(0.85, 1.15);
    let strength = rng.uniform(0.1, 0.25);
    let sigma = rng.uniform(0.02, 0.04) * t1::WHITE;
    let data = volume.finish_i16(plan.seed, &[case as u64, streams::NOISE], |value, bias, rng| {
        let signal = value * gain * (strength * bias).exp();
        let (real, imaginary) = (signal + sigma * rng.normal(), sigma * rng.normal());
        (real * real + imaginary * imaginary).sqrt()
    });
    let mut image = volume.image_i16(data)?;
    image.metadata.set_text(medas_image::keys::MODALITY, "MR");
    Ok(image)
}
