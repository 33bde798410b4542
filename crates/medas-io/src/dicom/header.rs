//! The attributes of one DICOM object that MEDAS needs: pixel format, per-frame position and
//! rescale (legacy and Enhanced functional groups), plane geometry and descriptive metadata.

use super::FORMAT;
use crate::{IoError, Result};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use medas_image::{Geometry, Metadata, WindowPreset, keys};
use std::path::Path;

pub(crate) type Object = InMemDicomObject;

/// Largest number of frames accepted in one file (a hostile header must not drive allocations).
const MAX_FRAMES: usize = 1 << 20;

/// How the stored samples are laid out.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PixelFormat {
    pub rows: usize,
    pub columns: usize,
    pub frames: usize,
    pub samples: usize,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub signed: bool,
    pub photometric: String,
    /// Planar configuration 1: all reds, then all greens, then all blues (per frame).
    pub planar: bool,
}

/// Position and rescale of one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Frame {
    /// Image Position (Patient) of the first voxel, LPS mm.
    pub position: Option<[f64; 3]>,
    pub slope: f64,
    pub intercept: f64,
}

/// A palette colour lookup table (one entry list per colour).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Palette {
    pub red: Vec<u16>,
    pub green: Vec<u16>,
    pub blue: Vec<u16>,
    /// First stored value mapped (values below map to entry 0, above to the last entry).
    pub first: i64,
    /// Bits per LUT entry (8 or 16).
    pub bits: u16,
}

/// Everything read from one object's header.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub pixel: PixelFormat,
    pub transfer_syntax: String,
    pub frames: Vec<Frame>,
    /// Image Orientation (Patient): row direction then column direction.
    pub orientation: Option<[f64; 6]>,
    /// Pixel Spacing as in the file: (between rows, between columns), mm.
    pub pixel_spacing: Option<[f64; 2]>,
    /// Slice spacing from the header (SpacingBetweenSlices or GridFrameOffsetVector), mm.
    pub slice_spacing: Option<f64>,
    pub palette: Option<Palette>,
    pub metadata: Metadata,
}

pub(crate) fn text(obj: &Object, tag: Tag) -> Option<String> {
    let element = obj.get(tag)?;
    let value = if element.vr() == VR::UN {
        String::from_utf8_lossy(&element.to_bytes().ok()?).into_owned().into()
    } else {
        element.to_str().ok()?
    };
    let trimmed = value.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

pub(crate) fn floats(obj: &Object, tag: Tag) -> Option<Vec<f64>> {
    let element = obj.get(tag)?;
    let values = if element.vr() == VR::UN {
        // Unknown VR (e.g. written by a tool without a dictionary): decimal strings in bytes.
        let text = text(obj, tag)?;
        text.split('\\').map(|v| v.trim().parse::<f64>().ok()).collect::<Option<Vec<f64>>>()?
    } else {
        element.to_multi_float64().ok()?
    };
    values.iter().all(|v| v.is_finite()).then_some(values)
}

pub(crate) fn float(obj: &Object, tag: Tag) -> Option<f64> {
    floats(obj, tag)?.first().copied()
}

pub(crate) fn int(obj: &Object, tag: Tag) -> Option<i64> {
    let element = obj.get(tag)?;
    if element.vr() != VR::UN {
        return element.to_int::<i64>().ok();
    }
    // Unknown VR: IS values as text, US/UL values as little-endian bytes.
    let bytes = element.to_bytes().ok()?;
    let textual = !bytes.is_empty() && bytes.iter().all(|b| b.is_ascii_digit() || b" +-\0".contains(b));
    match bytes.len() {
        _ if textual => text(obj, tag)?.parse().ok(),
        2 => Some(u16::from_le_bytes([bytes[0], bytes[1]]) as i64),
        4 => Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as i64),
        _ => None,
    }
}

fn first_item(obj: &Object, tag: Tag) -> Option<&Object> {
    obj.get(tag)?.items()?.first()
}

/// The item of functional group `sequence` for one frame: per-frame first, then shared.
fn group<'a>(per_frame: Option<&'a Object>, shared: Option<&'a Object>, sequence: Tag) -> Option<&'a Object> {
    per_frame.and_then(|f| first_item(f, sequence)).or_else(|| shared.and_then(|s| first_item(s, sequence)))
}

fn fixed<const N: usize>(values: Option<Vec<f64>>) -> Option<[f64; N]> {
    values.and_then(|v| v.get(..N).and_then(|s| s.try_into().ok()))
}

impl Header {
    pub fn from_object(file: &DefaultDicomObject, name: &Path) -> Result<Header> {
        let transfer_syntax = file.meta().transfer_syntax().trim_end_matches(['\0', ' ']).to_string();
        let obj: &Object = file;
        let pixel = pixel_format(obj, name)?;
        let shared = first_item(obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
        let per_frame = obj.get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE).and_then(|e| e.items());
        let first_frame = per_frame.and_then(|items| items.first());
        let legacy_rescale = (
            float(obj, tags::RESCALE_SLOPE).filter(|s| *s != 0.0).unwrap_or(1.0),
            float(obj, tags::RESCALE_INTERCEPT).unwrap_or(0.0),
        );
        let legacy_position = fixed::<3>(floats(obj, tags::IMAGE_POSITION_PATIENT));
        let frames = (0..pixel.frames)
            .map(|f| {
                let item = per_frame.and_then(|items| items.get(f));
                let position = group(item, shared, tags::PLANE_POSITION_SEQUENCE)
                    .and_then(|g| fixed::<3>(floats(g, tags::IMAGE_POSITION_PATIENT)))
                    .or(if f == 0 { legacy_position } else { None });
                let (slope, intercept) = group(item, shared, tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE)
                    .map(|g| {
                        let slope = float(g, tags::RESCALE_SLOPE).filter(|s| *s != 0.0).unwrap_or(1.0);
                        (slope, float(g, tags::RESCALE_INTERCEPT).unwrap_or(0.0))
                    })
                    .unwrap_or(legacy_rescale);
                Frame { position, slope, intercept }
            })
            .collect();
        let orientation = group(first_frame, shared, tags::PLANE_ORIENTATION_SEQUENCE)
            .and_then(|g| fixed::<6>(floats(g, tags::IMAGE_ORIENTATION_PATIENT)))
            .or_else(|| fixed::<6>(floats(obj, tags::IMAGE_ORIENTATION_PATIENT)));
        let measures = group(first_frame, shared, tags::PIXEL_MEASURES_SEQUENCE);
        let pixel_spacing = measures
            .and_then(|g| fixed::<2>(floats(g, tags::PIXEL_SPACING)))
            .or_else(|| fixed::<2>(floats(obj, tags::PIXEL_SPACING)))
            .filter(|s| s.iter().all(|v| *v > 0.0));
        let enhanced = shared.is_some() || per_frame.is_some() || is_enhanced_class(obj);
        let slice_spacing = if enhanced {
            measures.and_then(|g| float(g, tags::SPACING_BETWEEN_SLICES))
        } else {
            grid_spacing(obj).or_else(|| float(obj, tags::SPACING_BETWEEN_SLICES))
        }
        .map(f64::abs)
        .filter(|s| *s > 0.0);
        let voi = group(first_frame, shared, tags::FRAME_VOILUT_SEQUENCE).unwrap_or(obj);
        let mut metadata = descriptive_metadata(obj);
        metadata.set_windows(&windows(voi));
        let palette = if pixel.photometric == "PALETTE COLOR" { Some(palette(obj, name)?) } else { None };
        Ok(Header {
            pixel,
            transfer_syntax,
            frames,
            orientation,
            pixel_spacing,
            slice_spacing,
            palette,
            metadata,
        })
    }

    /// Index → LPS geometry of the frames in file order (see the module documentation).
    pub fn geometry(&self) -> Geometry {
        let positions: Vec<[f64; 3]> = self.frames.iter().filter_map(|f| f.position).collect();
        let complete = positions.len() == self.frames.len();
        let fallback = self.slice_spacing.unwrap_or(1.0);
        plane_geometry(self.orientation, self.pixel_spacing, positions.first().copied(), |normal| {
            if complete && positions.len() >= 2 {
                if !evenly_spaced(&positions, normal) {
                    tracing::warn!(
                        "the frames of this file are not one evenly spaced stack (several stacks or time \
                         points?); frames are kept in file order with the mean slice spacing"
                    );
                }
                stack_spacing(&positions, normal)
            } else {
                None
            }
            .unwrap_or((fallback, false))
        })
    }
}

/// Builds a 3-D geometry from a plane description; `slice` gets the normal and returns the slice
/// spacing and whether the normal must be flipped so that positions increase along it.
pub(crate) fn plane_geometry(
    orientation: Option<[f64; 6]>,
    pixel_spacing: Option<[f64; 2]>,
    origin: Option<[f64; 3]>,
    slice: impl FnOnce([f64; 3]) -> (f64, bool),
) -> Geometry {
    let (row, column) = orientation.and_then(unit_axes).unwrap_or(([1.0, 0.0, 0.0], [0.0, 1.0, 0.0]));
    let mut normal = cross(row, column);
    let (slice_spacing, flip) = slice(normal);
    if flip {
        normal = normal.map(|v| -v);
    }
    let [between_rows, between_columns] = pixel_spacing.unwrap_or([1.0, 1.0]);
    let spacing = vec![between_columns, between_rows, slice_spacing];
    let direction = (0..3).flat_map(|r| [row[r], column[r], normal[r]]).collect();
    let origin = origin.unwrap_or([0.0; 3]).to_vec();
    Geometry::new(spacing, origin, direction).unwrap_or_else(|_| {
        tracing::warn!("DICOM geometry is degenerate; using unit spacing and identity direction");
        Geometry::identity(3)
    })
}

/// Mean distance between consecutive positions projected on `normal`, and whether they run
/// against it. `None` when the slices coincide.
pub(crate) fn stack_spacing(positions: &[[f64; 3]], normal: [f64; 3]) -> Option<(f64, bool)> {
    let (first, last) = (positions.first()?, positions.last()?);
    let along = dot(sub(*last, *first), normal) / (positions.len().saturating_sub(1).max(1)) as f64;
    (along.abs() > 1e-9 && along.is_finite()).then_some((along.abs(), along < 0.0))
}

/// True when consecutive positions step along `normal` in one direction by the same distance
/// (within 1% of the mean step, or 0.01 mm).
pub(crate) fn evenly_spaced(positions: &[[f64; 3]], normal: [f64; 3]) -> bool {
    let steps: Vec<f64> = positions.windows(2).map(|w| dot(sub(w[1], w[0]), normal)).collect();
    let mean = steps.iter().sum::<f64>() / steps.len().max(1) as f64;
    let tolerance = (mean.abs() * 0.01).max(0.01);
    steps.iter().all(|s| (s - mean).abs() <= tolerance && s.signum() == mean.signum())
}

fn unit_axes(iop: [f64; 6]) -> Option<([f64; 3], [f64; 3])> {
    let normalize = |v: [f64; 3]| {
        let n = dot(v, v).sqrt();
        (n > 1e-6).then(|| v.map(|x| x / n))
    };
    let row = normalize([iop[0], iop[1], iop[2]])?;
    let column = normalize([iop[3], iop[4], iop[5]])?;
    (dot(cross(row, column), cross(row, column)) > 1e-6).then_some((row, column))
}

pub(crate) fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub(crate) fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

pub(crate) fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

fn pixel_format(obj: &Object, name: &Path) -> Result<PixelFormat> {
    let need = |tag: Tag, what: &str| {
        int(obj, tag).ok_or_else(|| IoError::corrupt(name, FORMAT, format!("{what} is missing or not a number")))
    };
    let rows = need(tags::ROWS, "Rows (the file holds no image?)")?;
    let columns = need(tags::COLUMNS, "Columns")?;
    let bits_allocated = need(tags::BITS_ALLOCATED, "Bits Allocated")?;
    let bits_stored = int(obj, tags::BITS_STORED).unwrap_or(bits_allocated);
    let samples = int(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    let frames = match obj.get(tags::NUMBER_OF_FRAMES) {
        None => 1,
        Some(_) => int(obj, tags::NUMBER_OF_FRAMES)
            .ok_or_else(|| IoError::corrupt(name, FORMAT, "Number of Frames is not a number"))?
            .max(1),
    };
    let bad = |what: String| Err(IoError::corrupt(name, FORMAT, what));
    if !(1..=65535).contains(&rows) || !(1..=65535).contains(&columns) {
        return bad(format!("image size {columns}×{rows} is not valid"));
    }
    if ![1, 8, 16, 32].contains(&bits_allocated) {
        return Err(IoError::unsupported(name, FORMAT, format!("Bits Allocated {bits_allocated}")));
    }
    if bits_stored < 1 || bits_stored > bits_allocated {
        return bad(format!("Bits Stored {bits_stored} with Bits Allocated {bits_allocated}"));
    }
    if samples != 1 && samples != 3 {
        return Err(IoError::unsupported(name, FORMAT, format!("{samples} samples per pixel")));
    }
    if frames as usize > MAX_FRAMES {
        return bad(format!("{frames} frames"));
    }
    let photometric = text(obj, tags::PHOTOMETRIC_INTERPRETATION)
        .unwrap_or_else(|| if samples == 3 { "RGB".into() } else { "MONOCHROME2".into() });
    Ok(PixelFormat {
        rows: rows as usize,
        columns: columns as usize,
        frames: frames as usize,
        samples: samples as usize,
        bits_allocated: bits_allocated as u16,
        bits_stored: bits_stored as u16,
        signed: int(obj, tags::PIXEL_REPRESENTATION) == Some(1),
        photometric: photometric.to_ascii_uppercase(),
        planar: samples == 3 && int(obj, tags::PLANAR_CONFIGURATION) == Some(1),
    })
}

fn is_enhanced_class(obj: &Object) -> bool {
    const ENHANCED: [&str; 8] = [
        "1.2.840.10008.5.1.4.1.1.2.1",   // Enhanced CT
        "1.2.840.10008.5.1.4.1.1.2.2",   // Legacy Converted Enhanced CT
        "1.2.840.10008.5.1.4.1.1.4.1",   // Enhanced MR
        "1.2.840.10008.5.1.4.1.1.4.3",   // Enhanced MR Color
        "1.2.840.10008.5.1.4.1.1.4.4",   // Legacy Converted Enhanced MR
        "1.2.840.10008.5.1.4.1.1.128.1", // Legacy Converted Enhanced PET
        "1.2.840.10008.5.1.4.1.1.130",   // Enhanced PET
        "1.2.840.10008.5.1.4.1.1.6.2",   // Enhanced US Volume
    ];
    text(obj, tags::SOP_CLASS_UID).is_some_and(|uid| ENHANCED.contains(&uid.as_str()))
}

/// Slice spacing of an RT Dose grid: the step of Grid Frame Offset Vector.
fn grid_spacing(obj: &Object) -> Option<f64> {
    let offsets = floats(obj, tags::GRID_FRAME_OFFSET_VECTOR)?;
    match offsets.as_slice() {
        [a, b, ..] => Some(b - a),
        _ => None,
    }
}

fn descriptive_metadata(obj: &Object) -> Metadata {
    let mut metadata = Metadata::new();
    for (key, tag) in [
        (keys::MODALITY, tags::MODALITY),
        (keys::PATIENT_ID, tags::PATIENT_ID),
        (keys::STUDY_UID, tags::STUDY_INSTANCE_UID),
        (keys::SERIES_UID, tags::SERIES_INSTANCE_UID),
        (keys::SERIES_DESCRIPTION, tags::SERIES_DESCRIPTION),
    ] {
        if let Some(value) = text(obj, tag) {
            metadata.set_text(key, &value);
        }
    }
    metadata
}

/// Window presets from Window Center / Width (+ explanation), in rescaled units.
fn windows(obj: &Object) -> Vec<WindowPreset> {
    let (Some(centers), Some(widths)) = (floats(obj, tags::WINDOW_CENTER), floats(obj, tags::WINDOW_WIDTH)) else {
        return Vec::new();
    };
    let names: Vec<String> = text(obj, tags::WINDOW_CENTER_WIDTH_EXPLANATION)
        .map(|s| s.split('\\').map(|n| n.trim().to_string()).collect())
        .unwrap_or_default();
    centers
        .iter()
        .zip(&widths)
        .enumerate()
        .map(|(k, (&center, &width))| WindowPreset {
            center,
            width,
            name: names.get(k).filter(|n| !n.is_empty()).cloned(),
        })
        .collect()
}

fn palette(obj: &Object, name: &Path) -> Result<Palette> {
    let descriptor = obj
        .get(tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR)
        .and_then(|e| e.to_multi_int::<i64>().ok())
        .filter(|d| d.len() == 3)
        .ok_or_else(|| IoError::corrupt(name, FORMAT, "PALETTE COLOR without a valid LUT descriptor"))?;
    let entries = if descriptor[0] <= 0 { 65536 } else { descriptor[0] as usize };
    let bits = if descriptor[2] == 8 { 8 } else { 16 };
    let segmented = obj.get(tags::SEGMENTED_RED_PALETTE_COLOR_LOOKUP_TABLE_DATA).is_some();
    let table = |tag: Tag| -> Result<Vec<u16>> {
        let tag = if segmented { Tag(tag.group(), tag.element() + 0x20) } else { tag };
        let bytes = obj
            .get(tag)
            .and_then(|e| e.to_bytes().ok())
            .ok_or_else(|| IoError::corrupt(name, FORMAT, "PALETTE COLOR without LUT data"))?;
        let values: Vec<u16> = if segmented {
            let words: Vec<u16> = bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
            let mut lut = Vec::new();
            expand_segments(&words, None, None, 0, &mut lut)
                .ok_or_else(|| IoError::corrupt(name, FORMAT, "invalid segmented palette LUT"))?;
            lut
        } else if bits == 8 && bytes.len() == entries {
            bytes.iter().map(|&b| b as u16).collect()
        } else {
            bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect()
        };
        if values.len() < entries {
            return Err(IoError::corrupt(name, FORMAT, "palette LUT data is shorter than its descriptor"));
        }
        Ok(values[..entries].to_vec())
    };
    Ok(Palette {
        red: table(tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA)?,
        green: table(tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA)?,
        blue: table(tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA)?,
        first: descriptor[1],
        bits,
    })
}

/// Expands a segmented palette LUT (PS3.3 C.7.9.2; 16-bit entries) the way pydicom does.
/// `limit` bounds the segments read (indirect segments), `depth` guards against cycles.
fn expand_segments(data: &[u16], limit: Option<usize>, last: Option<u16>, depth: usize, lut: &mut Vec<u16>) -> Option<()> {
    if depth > 4 {
        return None;
    }
    let (mut at, mut segments) = (0usize, 0usize);
    while at + 1 < data.len() && lut.len() <= 1 << 17 {
        let (opcode, length) = (data[at], data[at + 1] as usize);
        at += 2;
        match opcode {
            0 => {
                lut.extend(data.get(at..at + length)?);
                at += length;
            }
            1 => {
                let y0 = lut.last().copied().or(last)? as f64;
                let y1 = *data.get(at)? as f64;
                at += 1;
                let step = (y1 - y0) / length.max(1) as f64;
                let start = y0 + step;
                for i in 0..length {
                    let v = if length == 1 { start } else { start + i as f64 * (y1 - start) / (length - 1) as f64 };
                    lut.push(v.round_ties_even() as u16);
                }
            }
            2 => {
                lut.last()?;
                let offset = ((*data.get(at + 1)? as usize) << 16) | *data.get(at)? as usize;
                at += 2;
                let previous = lut.last().copied();
                expand_segments(data.get(offset..)?, Some(length), previous, depth + 1, lut)?;
            }
            _ => return None,
        }
        segments += 1;
        if Some(segments) == limit {
            break;
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uneven_or_interleaved_frames_are_detected() {
        let z = [0.0, 0.0, 1.0];
        let even = [[0.0, 0.0, 0.0], [0.0, 0.0, 2.0], [0.0, 0.0, 4.0]];
        assert!(evenly_spaced(&even, z));
        let two_time_points = [[0.0, 0.0, 0.0], [0.0, 0.0, 2.0], [0.0, 0.0, 0.0], [0.0, 0.0, 2.0]];
        assert!(!evenly_spaced(&two_time_points, z));
        let gap = [[0.0, 0.0, 0.0], [0.0, 0.0, 2.0], [0.0, 0.0, 6.0]];
        assert!(!evenly_spaced(&gap, z));
    }

    #[test]
    fn spacing_from_positions_flips_a_descending_stack() {
        let positions = [[0.0, 0.0, 10.0], [0.0, 0.0, 7.5], [0.0, 0.0, 5.0]];
        assert_eq!(stack_spacing(&positions, [0.0, 0.0, 1.0]), Some((2.5, true)));
        assert_eq!(stack_spacing(&positions[..1], [0.0, 0.0, 1.0]), None);
    }

    #[test]
    fn pixel_spacing_is_row_then_column() {
        // PixelSpacing = (between rows 0.5, between columns 0.7): index i (columns) gets 0.7.
        let g = plane_geometry(Some([0.0, 1.0, 0.0, 0.0, 0.0, -1.0]), Some([0.5, 0.7]), Some([1.0, 2.0, 3.0]), |_| (3.0, false));
        assert_eq!(g.spacing(), &[0.7, 0.5, 3.0]);
        assert_eq!(g.direction(), &[0.0, 0.0, -1.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0]);
        assert_eq!(g.origin(), &[1.0, 2.0, 3.0]);
    }

    #[test]
    fn segmented_lut_discrete_linear_indirect() {
        // discrete [0, 10], linear to 20 over 2 entries, indirect: repeat the first segment.
        let data = [0u16, 2, 0, 10, 1, 2, 20, 2, 1, 0, 0];
        let mut lut = Vec::new();
        expand_segments(&data, None, None, 0, &mut lut).unwrap();
        assert_eq!(lut, vec![0, 10, 15, 20, 0, 10]);
        // An indirect segment pointing at itself is cut off, not followed forever.
        let mut lut = Vec::new();
        assert!(expand_segments(&[0, 1, 5, 2, 1, 7, 0, 2, 1, 0, 0], None, None, 0, &mut lut).is_none());
    }
}
