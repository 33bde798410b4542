//! A pre-scan of element lengths, run before the bytes reach dicom-rs.
//!
//! dicom-rs allocates a value's buffer from its declared length before reading it, so one
//! corrupted length field in a 40 kB file made it reserve and touch gigabytes (1.8 GB peak RSS
//! over the single-byte corruptions of CT_small). This walk rejects any value, fragment or
//! defined-length sequence that claims more bytes than remain in the file.

use super::FORMAT;
use crate::{IoError, Result};
use dicom_core::VR;
use std::ops::Range;
use std::path::Path;

const UNDEFINED: u32 = 0xffff_ffff;
const PIXEL_DATA: (u16, u16) = (0x7fe0, 0x0010);

/// VRs whose explicit-VR header has a 2-byte length. Every other VR, and any two bytes that
/// are not a VR at all, have two reserved bytes and a 4-byte length: dicom-rs reads an unknown
/// VR as UN, and this walk must see the lengths exactly as dicom-rs will.
const SHORT_VRS: [VR; 21] = [
    VR::AE, VR::AS, VR::AT, VR::CS, VR::DA, VR::DS, VR::DT, VR::FL, VR::FD, VR::IS, VR::LO, VR::LT, VR::PN,
    VR::SH, VR::SL, VR::SS, VR::ST, VR::TM, VR::UI, VR::UL, VR::US,
];

/// How the data set after the file meta group is encoded.
#[derive(Clone, Copy)]
struct Encoding {
    explicit: bool,
    big_endian: bool,
}

const EXPLICIT_LE: Encoding = Encoding { explicit: true, big_endian: false };
const IMPLICIT_LE: Encoding = Encoding { explicit: false, big_endian: false };

/// One element or item header, decoded as dicom-rs decodes it.
struct Header {
    tag: (u16, u16),
    vr: VR,
    length: u32,
    size: usize,
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
/// Deflated data sets are inflated first. Files that dicom-rs refuses before reading any value
/// (no `DICM`, no group length, a transfer syntax it does not know) pass unchecked.
pub(crate) fn check(bytes: &[u8], name: &Path) -> Result<Layout> {
    use dicom_encoding::transfer_syntax::{Codec, Endianness, TransferSyntaxIndex};
    let Some((after_meta, syntax)) = walk_meta(bytes, name)? else { return Ok(Layout::default()) };
    let Some(ts) = dicom_transfer_syntax_registry::TransferSyntaxRegistry.get(&syntax) else {
        return Ok(Layout::default());
    };
    match ts.codec() {
        // Deflated syntaxes (Explicit VR LE and the two JPIP ones) inflate the whole data set.
        Codec::Dataset(Some(_)) => check_deflated(bytes, after_meta, name).map(|()| Layout::default()),
        Codec::Dataset(None) => Ok(Layout::default()), // dicom-rs cannot read the data set at all
        _ => {
            let explicit = ts.uid() != dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN.uid();
            let encoding = Encoding { explicit, big_endian: ts.endianness() == Endianness::Big };
            walk(bytes, after_meta, encoding, name).map(|native_pixels| Layout { native_pixels })
        }
    }
}

/// The same check for the retry that reads the data set as plain Implicit VR Little Endian
/// whatever the declared syntax (see `parse`): lengths are then read as implicit ones.
pub(crate) fn check_as_implicit(bytes: &[u8], name: &Path) -> Result<()> {
    match walk_meta(bytes, name)? {
        Some((after_meta, _)) => walk(bytes, after_meta, IMPLICIT_LE, name).map(|_| ()),
        None => Ok(()),
    }
}

/// Walks the file meta group as dicom-rs reads it: `DICM` at 128 (after the preamble) or at 0,
/// then (0002,0000) with the group length, then elements of any group, each taken whole, until
/// that length is used up. Trusting the first non-0002 tag instead made a deflated file's data
/// set start elsewhere for the walk than for dicom-rs (fifth fuzz finding). Returns where the
/// data set starts and the transfer syntax UID; None where dicom-rs refuses the meta group
/// before reading any value.
fn walk_meta(bytes: &[u8], name: &Path) -> Result<Option<(usize, String)>> {
    let start = match (bytes.get(128..132), bytes.get(..4)) {
        (Some(b"DICM"), _) => 132,
        (_, Some(b"DICM")) => 4,
        _ => return Ok(None),
    };
    let first = read_header(bytes, start, EXPLICIT_LE).filter(|h| h.tag == (0x0002, 0x0000) && h.length == 4);
    let Some(first) = first else { return Ok(None) };
    let at = start + first.size;
    let Some(group_length) = bytes.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])) else {
        return Ok(None);
    };
    let (mut at, mut read, mut syntax) = (at + 4, 0u32, String::new());
    while read < group_length {
        let Some(header) = read_header(bytes, at, EXPLICIT_LE).filter(|h| h.length != UNDEFINED) else { break };
        let value = at + header.size;
        check_length(bytes, value, &header, name)?;
        if header.tag == (0x0002, 0x0010) {
            let uid = String::from_utf8_lossy(&bytes[value..value + header.length as usize]);
            syntax = uid.trim_end_matches(|c: char| c.is_whitespace() || c == '\0').to_owned();
        }
        at = value + header.length as usize;
        read = read.saturating_add(header.size as u32).saturating_add(header.length);
    }
    Ok(Some((at, syntax)))
}

/// The VR dicom-rs gives an element in Implicit VR: the data dictionary's, OW for pixel and
/// overlay data, UN for tags it does not know.
fn implicit_vr((group, element): (u16, u16)) -> VR {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
    if (group, element) == PIXEL_DATA || (group >> 8 == 0x60 && element == 0x3000) {
        return VR::OW;
    }
    dicom_dictionary_std::StandardDataDictionary
        .by_tag(dicom_core::Tag(group, element))
        .map_or(VR::UN, |entry| entry.vr().relaxed())
}

/// Decodes the element or item header at `at`; None where the bytes run out.
fn read_header(bytes: &[u8], at: usize, encoding: Encoding) -> Option<Header> {
    let big = encoding.big_endian;
    let u16_at = |p: usize| {
        let b = bytes.get(p..p + 2)?;
        Some(if big { u16::from_be_bytes([b[0], b[1]]) } else { u16::from_le_bytes([b[0], b[1]]) })
    };
    let u32_at = |p: usize| {
        let b = bytes.get(p..p + 4)?;
        let b = [b[0], b[1], b[2], b[3]];
        Some(if big { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) })
    };
    let tag = (u16_at(at)?, u16_at(at + 2)?);
    // Items and delimiters always have an implicit-style 4-byte length and no VR.
    if tag.0 == 0xfffe || !encoding.explicit {
        let vr = if tag.0 == 0xfffe { VR::UN } else { implicit_vr(tag) };
        return Some(Header { tag, vr, length: u32_at(at + 4)?, size: 8 });
    }
    let code = bytes.get(at + 4..at + 6)?;
    let vr = VR::from_binary([code[0], code[1]]).unwrap_or(VR::UN);
    if SHORT_VRS.contains(&vr) {
        Some(Header { tag, vr, length: u32::from(u16_at(at + 6)?), size: 8 })
    } else {
        Some(Header { tag, vr, length: u32_at(at + 8)?, size: 12 })
    }
}

/// Rejects a defined length that runs past the end of the bytes.
fn check_length(bytes: &[u8], value: usize, header: &Header, name: &Path) -> Result<()> {
    let remaining = bytes.len().saturating_sub(value);
    if header.length == UNDEFINED || header.length as usize <= remaining {
        return Ok(());
    }
    let ((group, element), length) = (header.tag, header.length);
    let what = format!(
        "element ({group:04x},{element:04x}) declares {length} bytes but only {remaining} remain: the file is corrupt or truncated"
    );
    Err(IoError::corrupt(name, FORMAT, what))
}

/// How many bytes dicom-rs consumes for a value it reads whole. For binary VRs it reads
/// `length / size` numbers, so a length that is no multiple of the size leaves the rest
/// unread and every later header is read from there (the JPEG 2000 fuzz finding: an SL of
/// 38 bytes shifted the next header onto a UN "length" of 4 GB).
fn consumed(vr: VR, length: u32) -> usize {
    let size = match vr {
        VR::US | VR::SS | VR::OW => 2,
        VR::AT | VR::UL | VR::SL | VR::FL | VR::OF | VR::OL => 4,
        VR::FD | VR::OD | VR::SV | VR::UV | VR::OV => 8,
        _ => 1,
    };
    length as usize / size * size
}

/// Deflated data sets: lengths refer to the inflated bytes, so inflate (raw deflate, bounded
/// by deflate's maximum ratio) and walk those.
fn check_deflated(bytes: &[u8], after_meta: usize, name: &Path) -> Result<()> {
    use std::io::Read;
    let compressed = bytes.get(after_meta..).unwrap_or_default();
    let limit = compressed.len().saturating_mul(crate::raw::MAX_DEFLATE_RATIO) as u64;
    let mut inflated = Vec::new();
    flate2::read::DeflateDecoder::new(compressed)
        .take(limit)
        .read_to_end(&mut inflated)
        .map_err(|e| IoError::corrupt(name, FORMAT, format!("deflated data set is damaged: {e}")))?;
    walk(&inflated, 0, EXPLICIT_LE, name).map(|_| ())
}

/// Walks the data set from `at` to the end as dicom-rs reads it, descending into sequences and
/// items and skipping values and pixel fragments, and checks every length on the way. Returns
/// where the last defined-length Pixel Data value lies.
fn walk(bytes: &[u8], mut at: usize, encoding: Encoding, name: &Path) -> Result<Option<Range<usize>>> {
    let (mut in_pixels, mut native_pixels) = (false, None);
    while at + 8 <= bytes.len() {
        let Some(header) = read_header(bytes, at, encoding) else { break };
        let (tag, length) = (header.tag, header.length);
        let value = at + header.size;
        check_length(bytes, value, &header, name)?;
        if tag == PIXEL_DATA && length != UNDEFINED {
            native_pixels = Some(value..value + length as usize);
        }
        if tag == PIXEL_DATA && length == UNDEFINED {
            in_pixels = true;
        } else if tag == (0xfffe, 0xe0dd) {
            in_pixels = false;
        }
        // dicom-rs descends into sequences it knows from the VR or, in implicit VR, from the
        // data dictionary, and into every undefined-length value; so must this walk, or nested
        // lengths would go unchecked.
        let descend = length == UNDEFINED || header.vr == VR::SQ || (tag.0 == 0xfffe && !in_pixels);
        at = if descend { value } else { value + consumed(header.vr, length) };
    }
    Ok(native_pixels)
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
        // dicom-rs requires the group length first and reads the meta group by it.
        bytes.extend([0x02, 0x00, 0x00, 0x00, b'U', b'L', 4, 0]);
        bytes.extend((8 + uid.len() as u32).to_le_bytes());
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
        // An SL of 38 bytes: dicom-rs reads nine numbers and the next header 2 bytes early.
        let remainder = include_bytes!("../../../../fuzz/regressions/dicom/binary-value-remainder-huge-length");
        assert!(check(remainder, name).is_err());
        assert!(super::super::parse(remainder, name, None).is_err());
        // An off-group element inside the meta group's length: the deflated data set starts after it.
        let meta = include_bytes!("../../../../fuzz/regressions/dicom/meta-group-length-deflated-huge-length");
        assert!(check(meta, name).is_err());
        assert!(super::super::parse(meta, name, None).is_err());
    }

    #[test]
    fn follows_dicom_rs_through_short_binary_values() {
        let name = Path::new("x.dcm");
        // US of 3 bytes: dicom-rs consumes 2, so the next header starts at the third byte.
        let mut data = vec![0x28, 0x00, 0x10, 0x00, b'U', b'S', 3, 0, 1, 0];
        data.extend([0x09, 0x00, 0x10, 0x00, b'O', b'B', 0, 0]); // read from here by dicom-rs
        data.extend([0xff, 0xff, 0xff, 0x7f]);
        assert!(check(&file("1.2.840.10008.1.2.1", &data), name).is_err());
        // Implicit VR takes the VR from the dictionary: Rows is US there too.
        let mut implicit = vec![0x28, 0x00, 0x10, 0x00, 3, 0, 0, 0, 1, 0];
        implicit.extend([0x09, 0x00, 0x10, 0x00, 0xff, 0xff, 0xff, 0x7f]);
        assert!(check(&file("1.2.840.10008.1.2", &implicit), name).is_err());
    }

    #[test]
    fn reads_the_meta_group_as_dicom_rs_does() {
        let name = Path::new("x.dcm");
        let bad = ob(0x7fff_0000, &[0; 4]);
        // No preamble: `DICM` at the start.
        assert!(check(&file("1.2.840.10008.1.2.1", &bad)[128..], name).is_err());
        // An off-group element inside the group length belongs to the meta group.
        let mut meta = file("1.2.840.10008.1.2.1", &[]);
        meta[140] += 12;
        meta.extend([0x03, 0x00, 0x10, 0x00, b'O', b'B', 0, 0, 0, 0, 0, 0]);
        meta.extend(&bad);
        assert!(check(&meta, name).is_err());
        // The JPIP deflate syntaxes are deflated too; without a group length dicom-rs reads nothing.
        assert!(check(&file("1.2.840.10008.1.2.4.95", &[0xff, 0xff, 0x00]), name).is_err());
        let mut no_group_length = file("1.2.840.10008.1.2.1", &bad);
        no_group_length.drain(132..144);
        assert!(check(&no_group_length, name).is_ok());
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
