//! A pre-scan of element lengths, run before the bytes reach dicom-rs.
//!
//! dicom-rs allocates a value's buffer from its declared length before reading it, so one
//! corrupted length field in a 40 kB file made it reserve and touch gigabytes (1.8 GB peak RSS
//! over the single-byte corruptions of CT_small). This walk rejects any value, fragment or
//! defined-length sequence that claims more bytes than remain in the file.

use super::FORMAT;
use crate::{IoError, Result};
use std::ops::Range;
use std::path::Path;

const UNDEFINED: u32 = 0xffff_ffff;
const PIXEL_DATA: (u16, u16) = (0x7fe0, 0x0010);

/// VRs whose explicit-VR header has a 2-byte length. Every other VR, and any two bytes that
/// are not a VR at all, have two reserved bytes and a 4-byte length: dicom-rs reads an unknown
/// VR as UN, and this walk must see the lengths exactly as dicom-rs will.
const SHORT_VRS: [&[u8; 2]; 21] = [
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN", b"SH", b"SL",
    b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
];

/// How the data set after the file meta group is encoded.
#[derive(Clone, Copy)]
struct Encoding {
    explicit: bool,
    big_endian: bool,
}

/// Where the walk found things, in the file's own bytes.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Layout {
    /// The value of the last defined-length Pixel Data element (native pixels), when the data
    /// set is not deflated. The top-level Pixel Data is the last one: nested ones (icons) come
    /// earlier, and only signatures and padding may follow it.
    pub native_pixels: Option<Range<usize>>,
}

/// Checks that no element of the file declares more bytes than the file still holds.
/// Deflated data sets are inflated first. Files without a meta group pass unchecked (their
/// transfer syntax is unknown); dicom-rs then reports what it finds.
pub(crate) fn check(bytes: &[u8], name: &Path) -> Result<Layout> {
    let start = if bytes.get(128..132) == Some(b"DICM") { 132 } else { 0 };
    if bytes.get(start..start + 2) != Some(&[0x02, 0x00]) {
        return Ok(Layout::default()); // no file meta group: the transfer syntax is unknown
    }
    let meta = Encoding { explicit: true, big_endian: false };
    let meta_walk = walk(bytes, start, meta, Some(0x0002), name)?;
    let (after_meta, syntax) = (meta_walk.end, meta_walk.syntax.unwrap_or_default());
    let syntax = syntax.trim_end_matches(['\0', ' ']);
    let data_set = match syntax {
        "1.2.840.10008.1.2.1.99" => return check_deflated(bytes, after_meta, name),
        "1.2.840.10008.1.2" => Encoding { explicit: false, big_endian: false },
        "1.2.840.10008.1.2.2" => Encoding { explicit: true, big_endian: true },
        _ => Encoding { explicit: true, big_endian: false },
    };
    walk(bytes, after_meta, data_set, None, name).map(|walked| Layout { native_pixels: walked.native_pixels })
}

/// The same check for the retry that reads the data set as plain Implicit VR Little Endian
/// whatever the declared syntax (see `parse`): lengths are then read as implicit ones.
pub(crate) fn check_as_implicit(bytes: &[u8], name: &Path) -> Result<()> {
    let start = if bytes.get(128..132) == Some(b"DICM") { 132 } else { 0 };
    if bytes.get(start..start + 2) != Some(&[0x02, 0x00]) {
        return walk(bytes, start, Encoding { explicit: false, big_endian: false }, None, name).map(|_| ());
    }
    let meta = Encoding { explicit: true, big_endian: false };
    let after_meta = walk(bytes, start, meta, Some(0x0002), name)?.end;
    walk(bytes, after_meta, Encoding { explicit: false, big_endian: false }, None, name).map(|_| ())
}

/// True when the standard dictionary knows `tag` as a sequence (SQ).
fn dictionary_sequence((group, element): (u16, u16)) -> bool {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
    dicom_dictionary_std::StandardDataDictionary
        .by_tag(dicom_core::Tag(group, element))
        .is_some_and(|entry| entry.vr().relaxed() == dicom_core::VR::SQ)
}

/// Deflated data sets: lengths refer to the inflated bytes, so inflate (raw deflate, bounded
/// by deflate's maximum ratio) and walk those.
fn check_deflated(bytes: &[u8], after_meta: usize, name: &Path) -> Result<Layout> {
    use std::io::Read;
    let compressed = bytes.get(after_meta..).unwrap_or_default();
    let limit = compressed.len().saturating_mul(crate::raw::MAX_DEFLATE_RATIO) as u64;
    let mut inflated = Vec::new();
    flate2::read::DeflateDecoder::new(compressed)
        .take(limit)
        .read_to_end(&mut inflated)
        .map_err(|e| IoError::corrupt(name, FORMAT, format!("deflated data set is damaged: {e}")))?;
    walk(&inflated, 0, Encoding { explicit: true, big_endian: false }, None, name).map(|_| Layout::default())
}

/// What one walk saw.
struct Walked {
    /// Where it stopped.
    end: usize,
    /// The Transfer Syntax UID, if it passed one.
    syntax: Option<String>,
    native_pixels: Option<Range<usize>>,
}

/// Walks elements from `at` (descending into sequences and items, skipping values and pixel
/// fragments) until the end, or until a group other than `only_group`.
fn walk(bytes: &[u8], mut at: usize, encoding: Encoding, only_group: Option<u16>, name: &Path) -> Result<Walked> {
    let (mut in_pixels, mut syntax, mut native_pixels) = (false, None, None);
    let u16_at = |p: usize, big: bool| {
        bytes.get(p..p + 2).map(|b| if big { u16::from_be_bytes([b[0], b[1]]) } else { u16::from_le_bytes([b[0], b[1]]) })
    };
    let u32_at = |p: usize, big: bool| {
        bytes.get(p..p + 4).map(|b| {
            let b = [b[0], b[1], b[2], b[3]];
            if big { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) }
        })
    };
    while at + 8 <= bytes.len() {
        let big = encoding.big_endian;
        let (Some(group), Some(element)) = (u16_at(at, big), u16_at(at + 2, big)) else { break };
        if only_group.is_some_and(|g| g != group) {
            break;
        }
        let tag = (group, element);
        // Items and delimiters always have an implicit-style 4-byte length.
        let vr = bytes.get(at + 4..at + 6).filter(|_| encoding.explicit && group != 0xfffe);
        let (length, header) = match vr {
            Some(vr) if SHORT_VRS.iter().any(|s| s.as_slice() == vr) => (u16_at(at + 6, big).map(u32::from), 8),
            Some(_) => (u32_at(at + 8, big), 12),
            None => (u32_at(at + 4, big), 8),
        };
        let Some(length) = length else { break };
        let value = at + header;
        let remaining = bytes.len().saturating_sub(value);
        // dicom-rs descends into sequences it knows from the VR or, in implicit VR, from the
        // data dictionary; so must this walk, or nested lengths would go unchecked.
        let is_sequence = vr == Some(b"SQ".as_slice()) || (vr.is_none() && group != 0xfffe && dictionary_sequence(tag));
        if length != UNDEFINED && length as usize > remaining {
            let what = format!(
                "element ({group:04x},{element:04x}) declares {length} bytes but only {remaining} remain: the file is corrupt or truncated"
            );
            return Err(IoError::corrupt(name, FORMAT, what));
        }
        if tag == (0x0002, 0x0010) {
            syntax = bytes.get(value..value + length as usize).map(|v| String::from_utf8_lossy(v).into_owned());
        }
        if tag == PIXEL_DATA && length != UNDEFINED {
            native_pixels = Some(value..value + length as usize);
        }
        if tag == PIXEL_DATA && length == UNDEFINED {
            in_pixels = true;
        } else if tag == (0xfffe, 0xe0dd) {
            in_pixels = false;
        }
        let descend = length == UNDEFINED || is_sequence || (group == 0xfffe && !in_pixels);
        at = if descend { value } else { value + length as usize };
    }
    Ok(Walked { end: at, syntax, native_pixels })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A preamble, a meta group naming `syntax`, then `data_set`.
    fn file(syntax: &str, data_set: &[u8]) -> Vec<u8> {
        let mut uid = syntax.as_bytes().to_vec();
        if uid.len() % 2 == 1 {
            uid.push(0);
        }
        let mut bytes = vec![0u8; 128];
        bytes.extend(b"DICM");
        bytes.extend([0x02, 0x00, 0x10, 0x00, b'U', b'I', uid.len() as u8, 0]);
        bytes.extend(uid);
        bytes.extend(data_set);
        bytes
    }

    /// Explicit VR little endian element with a 4-byte length (OB).
    fn ob(length: u32, value: &[u8]) -> Vec<u8> {
        let mut e = vec![0x09, 0x00, 0x10, 0x00, b'O', b'B', 0, 0];
        e.extend(length.to_le_bytes());
        e.extend(value);
        e
    }

    #[test]
    fn deflated_data_sets_are_checked_after_inflating() {
        use std::io::Write;
        let name = Path::new("x.dcm");
        let deflate = |data: &[u8]| {
            let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(data).unwrap();
            enc.finish().unwrap()
        };
        let syntax = "1.2.840.10008.1.2.1.99";
        assert!(check(&file(syntax, &deflate(&ob(4, &[1, 2, 3, 4]))), name).is_ok());
        // The fuzzer's case: a tiny deflated stream whose element claims gigabytes.
        let error = check(&file(syntax, &deflate(&ob(0xc000_0000, &[0; 16]))), name).unwrap_err();
        assert!(error.to_string().contains("declares"), "{error}");
        assert!(check(&file(syntax, &[0xff, 0xff, 0x00]), name).is_err());
    }

    /// Inputs the `dicom` fuzz target found making dicom-rs allocate over 3 GB.
    #[test]
    fn fuzz_regressions_are_rejected_before_parsing() {
        let name = Path::new("x.dcm");
        let deflated = include_bytes!("../../../../fuzz/regressions/dicom/deflated-huge-length");
        assert!(check(deflated, name).is_err());
        let retry = include_bytes!("../../../../fuzz/regressions/dicom/implicit-retry-huge-length");
        assert!(check_as_implicit(retry, name).is_err());
        assert!(super::super::parse(retry, name, None).is_err());
        // Two bytes that are no VR: dicom-rs reads UN with a 4-byte length, and so must we.
        let unknown = include_bytes!("../../../../fuzz/regressions/dicom/unknown-vr-huge-length");
        assert!(check(unknown, name).is_err());
    }

    #[test]
    fn rejects_a_length_beyond_the_file() {
        let name = Path::new("x.dcm");
        let explicit = "1.2.840.10008.1.2.1";
        assert!(check(&file(explicit, &ob(4, &[1, 2, 3, 4])), name).is_ok());
        let error = check(&file(explicit, &ob(0xff00_0004, &[1, 2, 3, 4])), name).unwrap_err();
        assert!(error.to_string().contains("declares 4278190084 bytes"), "{error}");
        // Implicit VR: tag, then a 4-byte length.
        let mut implicit = vec![0x09, 0x00, 0x10, 0x00];
        implicit.extend(0x7fff_0000u32.to_le_bytes());
        assert!(check(&file("1.2.840.10008.1.2", &implicit), name).is_err());
        // An explicit-VR syntax over implicit-VR data: the implicit-VR retry checks it as such.
        let mut mislabelled = vec![0x09, 0x00, 0x10, 0x00];
        mislabelled.extend(2u32.to_le_bytes());
        mislabelled.extend([7, 7]);
        assert!(check_as_implicit(&file(explicit, &mislabelled), name).is_ok());
    }

    #[test]
    fn descends_into_sequences_and_skips_pixel_fragments() {
        let name = Path::new("x.dcm");
        // SQ of undefined length holding one item with a bad OB length inside.
        let mut sq = vec![0x08, 0x00, 0x00, 0x11, b'S', b'Q', 0, 0, 0xff, 0xff, 0xff, 0xff];
        sq.extend([0xfe, 0xff, 0x00, 0xe0, 0xff, 0xff, 0xff, 0xff]);
        sq.extend(ob(1000, &[0; 4]));
        assert!(check(&file("1.2.840.10008.1.2.1", &sq), name).is_err());
        // Encapsulated pixel data: fragments are skipped by length, and checked.
        let mut pixels = vec![0xe0, 0x7f, 0x10, 0x00, b'O', b'B', 0, 0, 0xff, 0xff, 0xff, 0xff];
        pixels.extend([0xfe, 0xff, 0x00, 0xe0, 0, 0, 0, 0]);
        pixels.extend([0xfe, 0xff, 0x00, 0xe0, 4, 0, 0, 0, 0xff, 0xd8, 0xff, 0xd9]);
        pixels.extend([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]);
        assert!(check(&file("1.2.840.10008.1.2.4.50", &pixels), name).is_ok());
        pixels[24] = 0x40; // second fragment now claims 64 bytes
        assert!(check(&file("1.2.840.10008.1.2.4.50", &pixels), name).is_err());
        // Garbage and empty input never panic.
        assert!(check(&[0xff; 300], name).is_ok());
        assert!(check(&[], name).is_ok());
    }
}
