//! Writing images as DICOM: a series folder (one file per slice) or one (multi-frame) file.
//!
//! Grayscale voxels are stored as 8-bit (u8) or 16-bit integers. Integer images whose values fit
//! 16 bits (possibly after an integer Rescale Intercept) are stored exactly; anything else (float
//! voxels with fractions, integer ranges wider than 65 536) is quantised to 16 bits with Rescale
//! Slope/Intercept, and a warning says so. RGB images must be `u8`.

use super::header::cross;
use super::uid::new_uid;
use super::FORMAT;
use crate::{Format, IoError, Result, WriteOptions};
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::InMemDicomObject;
use medas_image::{Image, Scalar, ScalarType, keys, with_voxels};
use ndarray::Axis;
use rayon::prelude::*;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How voxel values become stored samples: `stored = (value − intercept) / slope`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Encoding {
    bits: u16,
    signed: bool,
    slope: f64,
    intercept: f64,
}

/// UIDs and values shared by every file of one written series.
struct Common {
    study: String,
    series: String,
    frame_of_reference: String,
    modality: String,
    sop_class: &'static str,
    encoding: Encoding,
    rgb: bool,
}

pub(crate) fn write(image: &Image, path: &Path, format: Format, options: &WriteOptions) -> Result<()> {
    if image.dimension() > 3 || image.dimension() < 2 {
        return Err(IoError::cannot_write(path, FORMAT, format!("{}-D images (only 2-D and 3-D)", image.dimension())));
    }
    let rgb = match (image.components(), image.scalar_type()) {
        (1, _) => false,
        (3, ScalarType::U8) => true,
        (c, t) => return Err(IoError::cannot_write(path, FORMAT, format!("{c} components of {t} (only grey or RGB u8)"))),
    };
    if let Some(side) = image.size().iter().take(2).find(|&&n| n > u16::MAX as usize) {
        return Err(IoError::cannot_write(path, FORMAT, format!("a side of {side} pixels (DICOM allows at most 65535)")));
    }
    let slices = image.size().get(2).copied().unwrap_or(1);
    let multi_frame = format == Format::Dicom && slices > 1;
    let common = Common::new(image, rgb, multi_frame, path);
    match format {
        Format::Dicom => {
            let frames: Vec<usize> = (0..slices).collect();
            let object = build(image, &common, &frames, multi_frame)?;
            save(object, &common, path)?;
            if let Some(progress) = options.progress {
                progress(slices, slices);
            }
            Ok(())
        }
        _ => write_series(image, &common, path, slices, options),
    }
}

fn write_series(image: &Image, common: &Common, folder: &Path, slices: usize, options: &WriteOptions) -> Result<()> {
    std::fs::create_dir_all(folder).map_err(|e| IoError::io(folder, e))?;
    let done = AtomicUsize::new(0);
    (0..slices).into_par_iter().try_for_each(|k| {
        let object = build(image, common, &[k], false)?;
        save(object, common, &folder.join(format!("slice{:05}.dcm", k + 1)))?;
        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(progress) = options.progress {
            progress(n, slices);
        }
        Ok(())
    })
}

impl Common {
    fn new(image: &Image, rgb: bool, multi_frame: bool, path: &Path) -> Common {
        let modality = image.metadata.text(keys::MODALITY).unwrap_or("OT").to_string();
        let mut encoding =
            if rgb { Encoding { bits: 8, signed: false, slope: 1.0, intercept: 0.0 } } else { choose(image, path) };
        // The CT and MR image modules require 16 bits allocated; 8-bit data is widened.
        if !rgb && encoding.bits == 8 && matches!(modality.as_str(), "CT" | "MR") {
            encoding.bits = 16;
        }
        let sop_class = match (modality.as_str(), multi_frame, rgb, encoding.bits) {
            ("CT", false, false, _) => uids::CT_IMAGE_STORAGE,
            ("MR", false, false, _) => uids::MR_IMAGE_STORAGE,
            ("CT", true, false, _) => uids::ENHANCED_CT_IMAGE_STORAGE,
            ("MR", true, false, _) => uids::ENHANCED_MR_IMAGE_STORAGE,
            (_, false, _, _) => uids::SECONDARY_CAPTURE_IMAGE_STORAGE,
            (_, true, true, _) => uids::MULTI_FRAME_TRUE_COLOR_SECONDARY_CAPTURE_IMAGE_STORAGE,
            (_, true, false, 8) => uids::MULTI_FRAME_GRAYSCALE_BYTE_SECONDARY_CAPTURE_IMAGE_STORAGE,
            (_, true, false, _) => uids::MULTI_FRAME_GRAYSCALE_WORD_SECONDARY_CAPTURE_IMAGE_STORAGE,
        };
        Common {
            study: image.metadata.text(keys::STUDY_UID).map(str::to_string).unwrap_or_else(new_uid),
            series: new_uid(),
            frame_of_reference: new_uid(),
            modality,
            sop_class,
            encoding,
            rgb,
        }
    }
}

/// Picks the stored type and rescale for a grey image (see the module documentation).
fn choose(image: &Image, path: &Path) -> Encoding {
    let exact = |bits, signed, intercept| Encoding { bits, signed, slope: 1.0, intercept };
    let stats = image.voxels().stats();
    let integral = !image.scalar_type().is_float() || all_integral(image);
    let (min, max) = if stats.count > 0 { (stats.min, stats.max) } else { (0.0, 0.0) };
    match image.scalar_type() {
        ScalarType::U8 => return exact(8, false, 0.0),
        ScalarType::U16 => return exact(16, false, 0.0),
        ScalarType::I8 | ScalarType::I16 => return exact(16, true, 0.0),
        _ => {}
    }
    if integral && min >= -32768.0 && max <= 32767.0 {
        return exact(16, true, 0.0);
    }
    if integral && min >= 0.0 && max <= 65535.0 {
        return exact(16, false, 0.0);
    }
    if integral && max - min <= 65535.0 && min.abs() < 1e15 {
        return exact(16, false, min);
    }
    let intercept = decimal_string(min).parse().unwrap_or(min);
    let raw_slope = ((max - intercept) / 65535.0).max(f64::MIN_POSITIVE);
    // Round the slope up (in its 16-character DS form) so that `max` still fits.
    let mut slope: f64 = decimal_string(raw_slope).parse().unwrap_or(raw_slope);
    if (max - intercept) / slope > 65535.0 {
        slope = decimal_string(raw_slope * (1.0 + 1e-9)).parse().unwrap_or(raw_slope);
    }
    tracing::warn!(
        file = %path.display(),
        "{} voxels do not fit 16-bit integers: stored with Rescale Slope {slope} and Intercept {intercept} (16-bit precision)",
        image.scalar_type()
    );
    Encoding { bits: 16, signed: false, slope, intercept }
}

fn all_integral(image: &Image) -> bool {
    with_voxels!(image.voxels(), a => a.iter().all(|v| {
        let x = v.to_f64();
        !x.is_finite() || x.fract() == 0.0
    }))
}

/// A DS (decimal string) of at most 16 characters, as precise as fits.
fn decimal_string(value: f64) -> String {
    let value = if value.is_finite() { value } else { 0.0 };
    let plain = format!("{value}");
    if plain.len() <= 16 {
        return plain;
    }
    (1..=15)
        .rev()
        .map(|p| format!("{value:.p$e}"))
        .find(|s| s.len() <= 16)
        .unwrap_or_else(|| "0".to_string())
}

fn ds_list(values: &[f64]) -> String {
    values.iter().map(|v| decimal_string(*v)).collect::<Vec<_>>().join("\\")
}

/// The stored bytes (little endian) of the given slices, in order.
fn pixel_bytes(image: &Image, encoding: &Encoding, slices: &[usize]) -> Vec<u8> {
    let encode = |x: f64, out: &mut Vec<u8>| {
        let v = ((if x.is_finite() { x } else { 0.0 }) - encoding.intercept) / encoding.slope;
        match (encoding.bits, encoding.signed) {
            (8, _) => out.push(u8::from_f64(v)),
            (_, true) => out.extend(i16::from_f64(v).to_le_bytes()),
            _ => out.extend(u16::from_f64(v).to_le_bytes()),
        }
    };
    let mut out = Vec::new();
    let three_d = image.dimension() == 3;
    with_voxels!(image.voxels(), a => {
        for &k in slices {
            let slice = if three_d { a.index_axis(Axis(2), k) } else { a.view() };
            // Files store rows (j) of columns (i), samples interleaved: iterate j, i, component.
            let mut order: Vec<usize> = (0..slice.ndim()).collect();
            order.swap(0, 1);
            let view = slice.permuted_axes(order);
            for v in view.iter() {
                encode(v.to_f64(), &mut out);
            }
        }
    });
    if out.len() % 2 == 1 {
        out.push(0);
    }
    out
}

fn put(object: &mut InMemDicomObject, tag: Tag, vr: VR, value: impl Into<PrimitiveValue>) {
    object.put(DataElement::new(tag, vr, value.into()));
}

fn put_text(object: &mut InMemDicomObject, tag: Tag, vr: VR, value: &str) {
    put(object, tag, vr, PrimitiveValue::from(value));
}

fn sequence(object: &mut InMemDicomObject, tag: Tag, item: InMemDicomObject) {
    object.put(DataElement::new(tag, VR::SQ, DataSetSequence::from(vec![item])));
}

/// Orientation (row then column direction) and pixel spacing of the image plane.
fn plane(image: &Image) -> ([f64; 6], [f64; 2], f64) {
    let g = image.geometry().with_dimension(3);
    let d = |r, c| g.direction_at(r, c);
    let iop = [d(0, 0), d(1, 0), d(2, 0), d(0, 1), d(1, 1), d(2, 1)];
    let s = g.spacing();
    ([iop[0], iop[1], iop[2], iop[3], iop[4], iop[5]], [s[1], s[0]], s[2])
}

fn position(image: &Image, k: usize) -> [f64; 3] {
    let g = image.geometry().with_dimension(3);
    let p = g.index_to_point(&[0.0, 0.0, k as f64]);
    [p[0], p[1], p[2]]
}

/// Builds the object holding `slices` (one, or all frames of a multi-frame file).
fn build(image: &Image, common: &Common, slices: &[usize], multi_frame: bool) -> Result<InMemDicomObject> {
    let mut o = InMemDicomObject::new_empty();
    let first = slices.first().copied().unwrap_or(0);
    put_text(&mut o, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    put_text(&mut o, tags::IMAGE_TYPE, VR::CS, "DERIVED\\SECONDARY");
    put_text(&mut o, tags::SOP_CLASS_UID, VR::UI, common.sop_class);
    put_text(&mut o, tags::SOP_INSTANCE_UID, VR::UI, &new_uid());
    put_text(&mut o, tags::MODALITY, VR::CS, &common.modality);
    put_text(&mut o, tags::CONVERSION_TYPE, VR::CS, "WSD");
    put_text(&mut o, tags::PATIENT_NAME, VR::PN, "");
    put_text(&mut o, tags::PATIENT_ID, VR::LO, image.metadata.text(keys::PATIENT_ID).unwrap_or(""));
    put_text(&mut o, tags::STUDY_INSTANCE_UID, VR::UI, &common.study);
    put_text(&mut o, tags::SERIES_INSTANCE_UID, VR::UI, &common.series);
    put_text(&mut o, tags::FRAME_OF_REFERENCE_UID, VR::UI, &common.frame_of_reference);
    if let Some(description) = image.metadata.text(keys::SERIES_DESCRIPTION) {
        put_text(&mut o, tags::SERIES_DESCRIPTION, VR::LO, description);
    }
    put_text(&mut o, tags::SERIES_NUMBER, VR::IS, "1");
    put_text(&mut o, tags::INSTANCE_NUMBER, VR::IS, &(first + 1).to_string());
    let (iop, pixel_spacing, slice_spacing) = plane(image);
    put_text(&mut o, tags::IMAGE_POSITION_PATIENT, VR::DS, &ds_list(&position(image, first)));
    put_text(&mut o, tags::IMAGE_ORIENTATION_PATIENT, VR::DS, &ds_list(&iop));
    put_text(&mut o, tags::PIXEL_SPACING, VR::DS, &ds_list(&pixel_spacing));
    put_text(&mut o, tags::SLICE_THICKNESS, VR::DS, &decimal_string(slice_spacing));
    put_text(&mut o, tags::SPACING_BETWEEN_SLICES, VR::DS, &decimal_string(slice_spacing));
    let normal = cross([iop[0], iop[1], iop[2]], [iop[3], iop[4], iop[5]]);
    let location = super::header::dot(position(image, first), normal);
    put_text(&mut o, tags::SLICE_LOCATION, VR::DS, &decimal_string(location));
    pixel_module(&mut o, image, common, slices.len());
    windows(&mut o, image);
    if multi_frame {
        functional_groups(&mut o, image, common, slices);
    }
    let bytes = pixel_bytes(image, &common.encoding, slices);
    let vr = if common.encoding.bits == 8 { VR::OB } else { VR::OW };
    put(&mut o, tags::PIXEL_DATA, vr, PrimitiveValue::U8(bytes.into()));
    Ok(o)
}

fn pixel_module(o: &mut InMemDicomObject, image: &Image, common: &Common, frames: usize) {
    let e = &common.encoding;
    let size = image.size();
    put(o, tags::SAMPLES_PER_PIXEL, VR::US, if common.rgb { 3u16 } else { 1 });
    put_text(o, tags::PHOTOMETRIC_INTERPRETATION, VR::CS, if common.rgb { "RGB" } else { "MONOCHROME2" });
    if common.rgb {
        put(o, tags::PLANAR_CONFIGURATION, VR::US, 0u16);
    }
    if frames > 1 {
        put_text(o, tags::NUMBER_OF_FRAMES, VR::IS, &frames.to_string());
    }
    put(o, tags::ROWS, VR::US, size[1] as u16);
    put(o, tags::COLUMNS, VR::US, size[0] as u16);
    put(o, tags::BITS_ALLOCATED, VR::US, e.bits);
    put(o, tags::BITS_STORED, VR::US, e.bits);
    put(o, tags::HIGH_BIT, VR::US, e.bits - 1);
    put(o, tags::PIXEL_REPRESENTATION, VR::US, e.signed as u16);
    if !common.rgb {
        put_text(o, tags::RESCALE_INTERCEPT, VR::DS, &decimal_string(e.intercept));
        put_text(o, tags::RESCALE_SLOPE, VR::DS, &decimal_string(e.slope));
        let unit = if image.metadata.text(keys::VALUE_UNIT) == Some("HU") || common.modality == "CT" { "HU" } else { "US" };
        put_text(o, tags::RESCALE_TYPE, VR::LO, unit);
    }
}

fn windows(o: &mut InMemDicomObject, image: &Image) {
    let presets = image.metadata.windows();
    if presets.is_empty() {
        return;
    }
    let centers: Vec<f64> = presets.iter().map(|w| w.center).collect();
    let widths: Vec<f64> = presets.iter().map(|w| w.width.max(1.0)).collect();
    put_text(o, tags::WINDOW_CENTER, VR::DS, &ds_list(&centers));
    put_text(o, tags::WINDOW_WIDTH, VR::DS, &ds_list(&widths));
    let names: Vec<String> = presets.iter().map(|w| w.name.clone().unwrap_or_default().replace('\\', "/")).collect();
    if names.iter().any(|n| !n.is_empty()) {
        put_text(o, tags::WINDOW_CENTER_WIDTH_EXPLANATION, VR::LO, &names.join("\\"));
    }
}

/// Enhanced-style functional groups: the plane and rescale shared, one position per frame.
fn functional_groups(o: &mut InMemDicomObject, image: &Image, common: &Common, slices: &[usize]) {
    let (iop, pixel_spacing, slice_spacing) = plane(image);
    let mut shared = InMemDicomObject::new_empty();
    let mut measures = InMemDicomObject::new_empty();
    put_text(&mut measures, tags::PIXEL_SPACING, VR::DS, &ds_list(&pixel_spacing));
    put_text(&mut measures, tags::SLICE_THICKNESS, VR::DS, &decimal_string(slice_spacing));
    put_text(&mut measures, tags::SPACING_BETWEEN_SLICES, VR::DS, &decimal_string(slice_spacing));
    sequence(&mut shared, tags::PIXEL_MEASURES_SEQUENCE, measures);
    let mut orientation = InMemDicomObject::new_empty();
    put_text(&mut orientation, tags::IMAGE_ORIENTATION_PATIENT, VR::DS, &ds_list(&iop));
    sequence(&mut shared, tags::PLANE_ORIENTATION_SEQUENCE, orientation);
    if !common.rgb {
        let mut transform = InMemDicomObject::new_empty();
        put_text(&mut transform, tags::RESCALE_INTERCEPT, VR::DS, &decimal_string(common.encoding.intercept));
        put_text(&mut transform, tags::RESCALE_SLOPE, VR::DS, &decimal_string(common.encoding.slope));
        put_text(&mut transform, tags::RESCALE_TYPE, VR::LO, "US");
        sequence(&mut shared, tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE, transform);
    }
    sequence(o, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, shared);
    let per_frame: Vec<InMemDicomObject> = slices
        .iter()
        .map(|&k| {
            let mut item = InMemDicomObject::new_empty();
            let mut plane_position = InMemDicomObject::new_empty();
            put_text(&mut plane_position, tags::IMAGE_POSITION_PATIENT, VR::DS, &ds_list(&position(image, k)));
            sequence(&mut item, tags::PLANE_POSITION_SEQUENCE, plane_position);
            item
        })
        .collect();
    o.put(DataElement::new(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, VR::SQ, DataSetSequence::from(per_frame)));
}

fn save(object: InMemDicomObject, common: &Common, path: &Path) -> Result<()> {
    let instance = super::header::text(&object, tags::SOP_INSTANCE_UID).unwrap_or_else(new_uid);
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
        .media_storage_sop_class_uid(common.sop_class)
        .media_storage_sop_instance_uid(instance);
    let file = object.with_meta(meta).map_err(|e| IoError::cannot_write(path, FORMAT, e.to_string()))?;
    file.write_to_file(path).map_err(|e| IoError::cannot_write(path, FORMAT, e.to_string()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn decimal_strings_fit_sixteen_characters() {
        for v in [0.0, -1024.0, 0.6614680290222168, -179.03579711914062, 1.0e-12 / 3.0, 123456789.12345679] {
            let s = super::decimal_string(v);
            assert!(s.len() <= 16, "{s}");
            let back: f64 = s.parse().unwrap();
            assert!((back - v).abs() <= 1e-9 * v.abs().max(1e-300), "{v} -> {s}");
        }
    }
}
