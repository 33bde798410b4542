//! H&E-like tiles with nuclei (MoNuSeg-like, 40x: 0.25 µm per pixel): haematoxylin-blue nuclei
//! of varied size, elongation and outline, often touching in clumps, with chromatin texture,
//! on eosin-pink stroma with texture and pale spaces; colours from a Beer–Lambert stain model
//! with per-tile stain variation, an illumination falloff and sensor noise.
//!
//! Layout (MoNuSeg): `Tissue Images/{name}.tif` (RGB u8), `Annotations/{name}.xml` (Aperio
//! ImageScope XML, one Region per nucleus, Region Id = instance id, vertices in pixel
//! coordinates with pixel centres at integers) and `Masks/{name}.tif` (u16 instance ids).
//! Mask pixels are those whose centre lies inside the Region's polygon, except where an
//! earlier nucleus already holds the pixel (touching nuclei overlap by at most 8 %).

use crate::layout::{Plan, Written, streams};
use crate::noise::Fractal;
use crate::rng::Rng;
use crate::shapes::normalise;
use crate::SynthError;
use medas_image::{Geometry, Image, Voxels};
use std::f64::consts::TAU;
use std::fmt::Write;

/// Pixel size of a 40x scan, mm (0.25 µm).
pub const PIXEL_MM: f64 = 0.00025;
/// Vertices per nucleus outline.
const VERTICES: usize = 32;
/// Largest share of a new nucleus's pixels that may already belong to others.
const MAX_OVERLAP: f64 = 0.08;

/// A star-shaped nucleus outline: vertices at equal angle steps round `centre`.
pub struct Nucleus {
    pub centre: [f64; 2],
    /// Vertices (x, y), rounded to 1/1000 pixel as written to the XML.
    pub vertices: Vec<[f64; 2]>,
    radius: f64,
    darkness: f64,
}

impl Nucleus {
    fn draw(rng: &mut Rng, centre: [f64; 2], radius: f64) -> Self {
        let elongation = 1.0 + rng.unit().powi(2) * 1.2;
        let (a, b) = (radius * elongation.sqrt(), radius / elongation.sqrt());
        let angle = rng.uniform(0.0, TAU);
        let harmonics: Vec<(f64, f64)> = (2..=4).map(|_| (rng.uniform(0.0, 0.06), rng.uniform(0.0, TAU))).collect();
        let vertices = (0..VERTICES)
            .map(|n| {
                let t = TAU * n as f64 / VERTICES as f64;
                let local = t - angle;
                let ellipse = a * b / ((b * local.cos()).powi(2) + (a * local.sin()).powi(2)).sqrt();
                let wobble: f64 = harmonics.iter().enumerate().map(|(k, (amp, phase))| amp * ((k as f64 + 2.0) * t + phase).cos()).sum();
                let r = ellipse * (1.0 + wobble);
                [round3(centre[0] + r * t.cos()), round3(centre[1] + r * t.sin())]
            })
            .collect();
        Self { centre, vertices, radius: a, darkness: rng.uniform(0.9, 1.6) }
    }

    /// Whether (x, y) is inside: find the angular sector, then test the side of its edge.
    /// Exact for this star-shaped polygon (vertices at increasing angles round the centre).
    pub fn contains(&self, x: f64, y: f64) -> bool {
        let (dx, dy) = (x - self.centre[0], y - self.centre[1]);
        let t = dy.atan2(dx).rem_euclid(TAU);
        let n = ((t / TAU * VERTICES as f64) as usize).min(VERTICES - 1);
        let (p, q) = (self.vertices[n], self.vertices[(n + 1) % VERTICES]);
        let side = |x: f64, y: f64| (q[0] - p[0]) * (y - p[1]) - (q[1] - p[1]) * (x - p[0]);
        side(x, y) * side(self.centre[0], self.centre[1]) >= 0.0
    }

    /// Inclusive pixel box (clipped to the tile) that holds the outline.
    fn pixel_box(&self, width: usize, height: usize) -> Option<[usize; 4]> {
        let lo = |a: usize| self.vertices.iter().map(|v| v[a]).fold(f64::INFINITY, f64::min).floor().max(0.0) as usize;
        let hi = |a: usize, n: usize| (self.vertices.iter().map(|v| v[a]).fold(f64::NEG_INFINITY, f64::max).ceil().max(0.0) as usize).min(n - 1);
        let [x0, y0, x1, y1] = [lo(0), lo(1), hi(0, width), hi(1, height)];
        (x0 <= x1 && y0 <= y1).then_some([x0, y0, x1, y1])
    }

    /// Fraction of pixel (x, y) inside, from 4 × 4 samples.
    fn coverage(&self, x: usize, y: usize) -> f64 {
        let inside = (0..16).filter(|s| self.contains(x as f64 - 0.375 + 0.25 * (s % 4) as f64, y as f64 - 0.375 + 0.25 * (s / 4) as f64)).count();
        inside as f64 / 16.0
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// One tile: nuclei (instance id = index + 1), their mask, and the RGB pixels.
pub struct Tile {
    pub nuclei: Vec<Nucleus>,
    pub mask: Vec<u16>,
    pub rgb: Vec<u8>,
}

pub fn generate(plan: &Plan) -> Result<Written, SynthError> {
    let (width, height) = (plan.size[0], plan.size[1]);
    let geometry = Geometry::new(vec![PIXEL_MM; 2], vec![0.0; 2], vec![1.0, 0.0, 0.0, 1.0])?;
    let per_case = plan.run_cases(|case| {
        let tile = make_tile(&mut Rng::stream(plan.seed, &[case as u64, streams::CASE]), width, height);
        let name = format!("nuclei_{case:03}");
        let rgb = Image::with_components(Voxels::from_interleaved_vec(&[width, height], 3, tile.rgb)?, 3, geometry.clone())?;
        let mask = Image::new(Voxels::from_fortran_vec(&[width, height], tile.mask)?, geometry.clone())?;
        let mut files = plan.write_image(&rgb, &format!("Tissue Images/{name}.tif"))?;
        files.extend(plan.write_image(&mask, &format!("Masks/{name}.tif"))?);
        files.push(plan.write_text(&format!("Annotations/{name}.xml"), &aperio_xml(&tile.nuclei))?);
        Ok(files)
    })?;
    Ok((per_case.into_iter().flatten().collect(), vec![(1, "nucleus".to_string())]))
}

/// Places nuclei (40 % of them against an earlier one, as in clumps), builds the mask, then
/// renders the stains.
pub fn make_tile(rng: &mut Rng, width: usize, height: usize) -> Tile {
    let mut mask = vec![0u16; width * height];
    let mut nuclei: Vec<Nucleus> = Vec::new();
    let wanted = ((width * height) as f64 * rng.uniform(0.0004, 0.0009)).round() as usize;
    for _attempt in 0..wanted * 20 {
        if nuclei.len() >= wanted || nuclei.len() >= u16::MAX as usize {
            break;
        }
        let radius = rng.uniform(6.0, 9.0) + rng.unit().powi(3) * 5.0;
        let centre = match nuclei.len() {
            n if n > 0 && rng.chance(0.4) => {
                let other = &nuclei[rng.int(0, n - 1)];
                let (angle, gap) = (rng.uniform(0.0, TAU), other.radius + radius * 0.8 - rng.uniform(0.0, 2.0));
                [other.centre[0] + gap * angle.cos(), other.centre[1] + gap * angle.sin()]
            }
            _ => [rng.uniform(0.0, width as f64 - 1.0), rng.uniform(0.0, height as f64 - 1.0)],
        };
        if !(0.0..width as f64 - 1.0).contains(&centre[0]) || !(0.0..height as f64 - 1.0).contains(&centre[1]) {
            continue;
        }
        let nucleus = Nucleus::draw(rng, centre, radius);
        if add_to_mask(&nucleus, nuclei.len() as u16 + 1, &mut mask, width, height) {
            nuclei.push(nucleus);
        }
    }
    let rgb = render(rng, &nuclei, width, height);
    Tile { nuclei, mask, rgb }
}

/// Claims the free pixels whose centres the nucleus covers, unless more than
/// [`MAX_OVERLAP`] of its pixels are taken (then nothing changes and `false` is returned).
fn add_to_mask(nucleus: &Nucleus, id: u16, mask: &mut [u16], width: usize, height: usize) -> bool {
    let Some([x0, y0, x1, y1]) = nucleus.pixel_box(width, height) else { return false };
    let inside: Vec<usize> = (y0..=y1)
        .flat_map(|y| (x0..=x1).map(move |x| (x, y)))
        .filter(|&(x, y)| nucleus.contains(x as f64, y as f64))
        .map(|(x, y)| x + width * y)
        .collect();
    let taken = inside.iter().filter(|&&at| mask[at] != 0).count();
    if inside.len() < 12 || taken as f64 > MAX_OVERLAP * inside.len() as f64 {
        return false;
    }
    for at in inside {
        if mask[at] == 0 {
            mask[at] = id;
        }
    }
    true
}

/// Beer–Lambert rendering: optical density = haematoxylin · H + eosin · E per pixel.
fn render(rng: &mut Rng, nuclei: &[Nucleus], width: usize, height: usize) -> Vec<u8> {
    let jitter = |rng: &mut Rng, v: [f64; 3]| normalise(v.map(|c| c + rng.uniform(-0.06, 0.06)));
    let haematoxylin = jitter(rng, [0.65, 0.70, 0.29]);
    let eosin = jitter(rng, [0.07, 0.99, 0.11]);
    let (w, h) = (width as f64, height as f64);
    let (stroma_cell, space_cell) = (rng.uniform(30.0, 60.0), rng.uniform(60.0, 120.0));
    let stroma = Fractal::new(rng, [0.0; 3], [w, h, 0.0], stroma_cell, 4);
    let spaces = Fractal::new(rng, [0.0; 3], [w, h, 0.0], space_cell, 2);
    let chromatin = Fractal::new(rng, [0.0; 3], [w, h, 0.0], 4.0, 2);
    let (eosin_level, haem_level) = (rng.uniform(0.25, 0.5), rng.uniform(0.75, 1.1));
    let mut h_conc = vec![0f64; width * height];
    let mut e_conc = vec![0f64; width * height];
    for y in 0..height {
        for x in 0..width {
            let p = [x as f64, y as f64, 0.0];
            let pale = ((spaces.at(p) - 0.35) / 0.15).clamp(0.0, 1.0); // lumen / fat: little stain
            e_conc[x + width * y] = eosin_level * (0.7 + 0.5 * stroma.at(p)) * (1.0 - 0.85 * pale);
            h_conc[x + width * y] = 0.05 * (1.0 - pale);
        }
    }
    for nucleus in nuclei {
        let Some([x0, y0, x1, y1]) = nucleus.pixel_box(width, height) else { continue };
        for y in y0..=y1 {
            for x in x0..=x1 {
                let cover = nucleus.coverage(x, y);
                if cover > 0.0 {
                    let at = x + width * y;
                    let dense = haem_level * nucleus.darkness * (0.85 + 0.3 * chromatin.at([x as f64, y as f64, 0.0]));
                    h_conc[at] += (dense - h_conc[at]).max(0.0) * cover;
                    e_conc[at] *= 1.0 - 0.5 * cover;
                }
            }
        }
    }
    let falloff = rng.uniform(0.03, 0.1);
    let noise = rng.uniform(2.0, 4.0);
    let mut rgb = vec![0u8; width * height * 3];
    for y in 0..height {
        for x in 0..width {
            let at = x + width * y;
            let r2 = ((x as f64 / w - 0.5).powi(2) + (y as f64 / h - 0.5).powi(2)) * 2.0;
            let light = 250.0 * (1.0 - falloff * r2);
            for c in 0..3 {
                let od = h_conc[at] * haematoxylin[c] + e_conc[at] * eosin[c];
                rgb[3 * at + c] = (light * (-od).exp() + noise * rng.normal()).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    rgb
}


/// Aperio ImageScope XML with one Region per nucleus (Id = instance id).
pub fn aperio_xml(nuclei: &[Nucleus]) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(xml, "<Annotations MicronsPerPixel=\"{:.6}\">", PIXEL_MM * 1000.0);
    xml.push_str("<Annotation Id=\"1\" Name=\"nuclei\" ReadOnly=\"0\" Type=\"4\" LineColor=\"65280\" Visible=\"1\">\n");
    xml.push_str("<Attributes><Attribute Name=\"Description\" Id=\"0\" Value=\"medas-synth\"/></Attributes>\n<Regions>\n");
    for (index, nucleus) in nuclei.iter().enumerate() {
        let _ = writeln!(xml, "<Region Id=\"{}\" Type=\"0\" Zoom=\"1\" Text=\"\" NegativeROA=\"0\" DisplayId=\"{}\">", index + 1, index + 1);
        xml.push_str("<Attributes/>\n<Vertices>\n");
        for [x, y] in &nucleus.vertices {
            let _ = writeln!(xml, "<Vertex X=\"{x:.3}\" Y=\"{y:.3}\" Z=\"0\"/>");
        }
        xml.push_str("</Vertices>\n</Region>\n");
    }
    xml.push_str("</Regions>\n<Plots/>\n</Annotation>\n</Annotations>\n");
    xml
}
