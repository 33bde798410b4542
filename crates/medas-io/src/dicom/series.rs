//! DICOM series folders: find the series, sort the slices along the slice normal and stack them
//! into one 3-D volume.

use super::header::{Header, PixelFormat, dot};
use super::pixels::{self, Samples};
use super::{FORMAT, Values, guard, lengths, modality, parse};
use crate::{IoError, ReadOptions, Result};
use dicom_dictionary_std::tags;
use medas_image::{Image, keys};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// One series found in a folder, as `medas info` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesInfo {
    /// Series Instance UID (empty when the files carry none).
    pub uid: String,
    pub modality: Option<String>,
    pub description: Option<String>,
    /// Patient ID (0010,0020) of the series' first file.
    pub patient_id: Option<String>,
    /// Number of files in the series.
    pub files: usize,
    /// Columns, rows and total number of frames (slices) over all files.
    pub size: [usize; 3],
}

/// The header of one file in a folder.
struct Entry {
    path: PathBuf,
    uid: String,
    header: Header,
    instance: i64,
    /// Where the native pixel bytes sit in the file, when the length walk found them.
    native_pixels: Option<Range<usize>>,
}

/// Transfer syntaxes whose native pixel bytes are little endian as stored.
const LITTLE_ENDIAN_NATIVE: [&str; 2] = ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"];

/// Lists the series in a folder (not its sub-folders), the largest first.
pub fn list_series(folder: &Path) -> Result<Vec<SeriesInfo>> {
    let groups = group(scan(folder)?);
    let mut list: Vec<SeriesInfo> = groups
        .into_iter()
        .map(|(uid, entries)| {
            let first = &entries[0].header;
            SeriesInfo {
                uid,
                modality: first.metadata.text(keys::MODALITY).map(str::to_string),
                description: first.metadata.text(keys::SERIES_DESCRIPTION).map(str::to_string),
                patient_id: first.metadata.text(keys::PATIENT_ID).map(str::to_string),
                files: entries.len(),
                size: [first.pixel.columns, first.pixel.rows, entries.iter().map(|e| e.header.pixel.frames).sum()],
            }
        })
        .collect();
    list.sort_by(|a, b| b.files.cmp(&a.files).then(a.uid.cmp(&b.uid)));
    Ok(list)
}

/// Reads the chosen (or largest) series of a folder as one volume.
pub(crate) fn read_folder(folder: &Path, options: &ReadOptions) -> Result<Image> {
    let mut groups = group(scan(folder)?);
    let uid = match options.series_uid {
        Some(uid) => uid.to_string(),
        None => largest(&groups, folder)?,
    };
    let Some(mut entries) = groups.remove(&uid) else {
        let present: Vec<&String> = groups.keys().collect();
        return Err(IoError::corrupt(folder, FORMAT, format!("series {uid} is not in the folder (found {present:?})")));
    };
    sort_slices(&mut entries, folder);
    let header = combined_header(&entries);
    if native_stack(&entries, &header) {
        return read_native_stack(&entries, &header, folder, options);
    }
    let done = AtomicUsize::new(0);
    let total = entries.len();
    let slices: Vec<Samples> = entries
        .par_iter()
        .map(|entry| {
            let samples = read_samples(&entry.path, &entries[0].header)?;
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            if let Some(progress) = options.progress {
                progress(n, total);
            }
            Ok(samples)
        })
        .collect::<Result<_>>()?;
    let samples = concatenate(slices, folder)?;
    pixels::to_image(samples, &header, Values::Modality, folder)
}

/// True when every slice is uncompressed little-endian greyscale of the series' format, so the
/// stored bytes can go from each file straight into the volume (the common CT/MR case).
fn native_stack(entries: &[Entry], header: &Header) -> bool {
    let fmt = &header.pixel;
    fmt.samples == 1
        && fmt.bits_allocated >= 8
        && header.palette.is_none()
        && entries.iter().all(|e| {
            e.native_pixels.is_some()
                && LITTLE_ENDIAN_NATIVE.contains(&e.header.transfer_syntax.as_str())
                && same_format(&e.header.pixel, fmt)
        })
}

fn same_format(a: &PixelFormat, b: &PixelFormat) -> bool {
    (a.rows, a.columns, a.samples, a.bits_allocated, a.bits_stored, a.signed, &a.photometric)
        == (b.rows, b.columns, b.samples, b.bits_allocated, b.bits_stored, b.signed, &b.photometric)
}

/// Reads each file once more and converts its native pixel bytes into its slices of the volume.
fn read_native_stack(entries: &[Entry], header: &Header, folder: &Path, options: &ReadOptions) -> Result<Image> {
    let fmt = &header.pixel;
    let frame_bytes = fmt.rows * fmt.columns * fmt.bits_allocated as usize / 8;
    let frames: Vec<usize> = entries.iter().map(|e| e.header.pixel.frames).collect();
    let done = AtomicUsize::new(0);
    let read = |part: usize, sink: &mut dyn FnMut(&[u8])| -> Result<()> {
        let path = &entries[part].path;
        let bytes = std::fs::read(path).map_err(|e| IoError::io(path, e))?;
        // Walked again: the file is read anew and must not be trusted to be unchanged.
        let range = lengths::check(&bytes, path)?.native_pixels.unwrap_or_default();
        let needed = frames[part] * frame_bytes;
        if range.len() < needed {
            let what = format!("pixel data is truncated: {} bytes present, {needed} needed", range.len());
            return Err(IoError::corrupt(path, FORMAT, what));
        }
        sink(&bytes[range.start..range.start + needed]);
        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(progress) = options.progress {
            progress(n, entries.len());
        }
        Ok(())
    };
    let voxels = modality::rescale_native_stack(header, &frames, read)?.map_err(|e| IoError::image(folder, e))?;
    pixels::finish(voxels, 1, header, true, folder)
}

fn largest(groups: &BTreeMap<String, Vec<Entry>>, folder: &Path) -> Result<String> {
    let (uid, entries) = groups
        .iter()
        .max_by_key(|(_, e)| e.len())
        .ok_or_else(|| IoError::corrupt(folder, FORMAT, "the folder holds no DICOM image files"))?;
    if groups.len() > 1 {
        tracing::info!(
            folder = %folder.display(),
            "{} series in the folder; reading {uid} ({} files), the one with most files",
            groups.len(),
            entries.len()
        );
    }
    Ok(uid.clone())
}

/// Headers of every DICOM image file directly in `folder` (other files are skipped).
fn scan(folder: &Path) -> Result<Vec<Entry>> {
    let listing = std::fs::read_dir(folder).map_err(|e| IoError::io(folder, e))?;
    let mut paths: Vec<PathBuf> = listing.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect();
    paths.sort();
    let entries: Vec<Entry> = paths.into_par_iter().filter_map(read_entry).collect();
    if entries.is_empty() {
        return Err(IoError::corrupt(folder, FORMAT, "the folder holds no DICOM image files"));
    }
    Ok(entries)
}

fn read_entry(path: PathBuf) -> Option<Entry> {
    let parsed = guard(&path, || {
        // Through `parse`, so the length guard protects folder scans too.
        let bytes = std::fs::read(&path).map_err(|e| IoError::io(&path, e))?;
        let (object, layout) = super::parse_with_layout(&bytes, &path, Some(tags::PIXEL_DATA))?;
        let header = Header::from_object(&object, &path)?;
        let uid = super::header::text(&object, tags::SERIES_INSTANCE_UID).unwrap_or_default();
        let instance = super::header::int(&object, tags::INSTANCE_NUMBER).unwrap_or(0);
        Ok((uid, header, instance, layout.native_pixels))
    });
    match parsed {
        Ok((uid, header, instance, native_pixels)) => Some(Entry { path, uid, header, instance, native_pixels }),
        Err(e) => {
            tracing::debug!("skipping {}: {e}", path.display());
            None
        }
    }
}

fn group(entries: Vec<Entry>) -> BTreeMap<String, Vec<Entry>> {
    let mut groups: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    for entry in entries {
        groups.entry(entry.uid.clone()).or_default().push(entry);
    }
    groups
}

/// Sorts by Image Position (Patient) projected on the slice normal (Instance Number when
/// positions are missing) and warns on missing, duplicate or unevenly spaced slices.
fn sort_slices(entries: &mut [Entry], folder: &Path) {
    let normal = entries[0].header.geometry().direction().chunks(3).map(|row| row[2]).collect::<Vec<_>>();
    let normal = [normal[0], normal[1], normal[2]];
    let positioned = entries.iter().all(|e| e.header.frames[0].position.is_some());
    let key = |e: &Entry| match e.header.frames[0].position {
        Some(p) if positioned => dot(p, normal),
        _ => e.instance as f64,
    };
    entries.sort_by(|a, b| key(a).total_cmp(&key(b)).then_with(|| a.path.cmp(&b.path)));
    if !positioned {
        tracing::warn!(folder = %folder.display(), "slices without Image Position (Patient): sorted by Instance Number");
        return;
    }
    let steps: Vec<f64> = entries.windows(2).map(|w| key(&w[1]) - key(&w[0])).collect();
    if steps.iter().any(|s| s.abs() < 1e-6) {
        tracing::warn!(folder = %folder.display(), "several slices share one position");
    }
    if let (Some(min), Some(max)) =
        (steps.iter().copied().reduce(f64::min), steps.iter().copied().reduce(f64::max))
        && max - min > 1e-3 * max.abs().max(1.0)
    {
        tracing::warn!(
            folder = %folder.display(),
            "non-uniform slice spacing ({min:.4} to {max:.4} mm); using the mean spacing"
        );
    }
}

/// Reads one file's stored samples, checking that it matches the series' pixel format.
fn read_samples(path: &Path, first: &Header) -> Result<Samples> {
    let bytes = std::fs::read(path).map_err(|e| IoError::io(path, e))?;
    guard(path, || {
        let object = parse(&bytes, path, None)?;
        let header = Header::from_object(&object, path)?;
        let (a, b) = (&header.pixel, &first.pixel);
        let same = (a.rows, a.columns, a.samples, a.bits_allocated, a.signed, &a.photometric)
            == (b.rows, b.columns, b.samples, b.bits_allocated, b.signed, &b.photometric);
        if !same {
            return Err(IoError::corrupt(path, FORMAT, "slice size or pixel format differs from the rest of the series"));
        }
        pixels::decode_stored(&object, &header, &bytes, path)
    })
}

/// One header for the stacked volume: the first slice's plane, every slice's position/rescale.
fn combined_header(entries: &[Entry]) -> Header {
    let mut header = entries[0].header.clone();
    header.frames = entries.iter().flat_map(|e| e.header.frames.iter().copied()).collect();
    header.pixel.frames = header.frames.len();
    // Frames after the first in a legacy multi-frame file carry no position of their own.
    if header.frames.iter().any(|f| f.position.is_none()) {
        let origin = header.frames[0].position;
        header.frames.iter_mut().for_each(|f| f.position = None);
        header.frames[0].position = origin;
    }
    header
}

fn concatenate(slices: Vec<Samples>, folder: &Path) -> Result<Samples> {
    let mismatch = || IoError::corrupt(folder, FORMAT, "slices of the series decode to different sample types");
    let mut iter = slices.into_iter();
    let Some(mut all) = iter.next() else { return Err(mismatch()) };
    for next in iter {
        match (&mut all, next) {
            (Samples::U8(a), Samples::U8(b)) => a.extend(b),
            (Samples::I8(a), Samples::I8(b)) => a.extend(b),
            (Samples::U16(a), Samples::U16(b)) => a.extend(b),
            (Samples::I16(a), Samples::I16(b)) => a.extend(b),
            (Samples::U32(a), Samples::U32(b)) => a.extend(b),
            (Samples::I32(a), Samples::I32(b)) => a.extend(b),
            _ => return Err(mismatch()),
        }
    }
    Ok(all)
}
