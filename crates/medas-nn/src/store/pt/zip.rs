//! The part of the zip format `torch.save` writes: uncompressed ("stored") entries listed in a
//! central directory, with zip64 sizes and offsets where present. Every size and offset is
//! checked against the file's length; compressed or encrypted entries are refused.

use std::collections::BTreeMap;

use super::PtError;

const LOCAL_HEADER: u32 = 0x0403_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const END_OF_DIRECTORY: u32 = 0x0605_4b50;
const ZIP64_END_OF_DIRECTORY: u32 = 0x0606_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
const ZIP64_EXTRA: u16 = 0x0001;

fn corrupt(message: impl Into<String>) -> PtError {
    PtError::Zip(message.into())
}

/// `len` bytes at `at`, or an error naming what was being read.
fn bytes<'a>(data: &'a [u8], at: u64, len: u64, what: &str) -> Result<&'a [u8], PtError> {
    let start = usize::try_from(at).ok();
    let end = start.zip(usize::try_from(len).ok()).and_then(|(s, l)| s.checked_add(l));
    match (start, end) {
        (Some(start), Some(end)) if end <= data.len() => Ok(&data[start..end]),
        _ => Err(corrupt(format!("{what} ({len} bytes at {at}) lies beyond the end of the file ({} bytes)", data.len()))),
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Where the central directory lies: (offset, size, number of entries).
fn central_directory(data: &[u8]) -> Result<(u64, u64, u64), PtError> {
    if data.len() < 22 {
        return Err(corrupt(format!("{} bytes are too few for a zip file", data.len())));
    }
    // The end record (22 bytes) is followed by a comment of at most 65535 bytes.
    let earliest = data.len().saturating_sub(22 + 65_535);
    let end = (earliest..=data.len().saturating_sub(22))
        .rev()
        .find(|&at| u32_at(data, at) == END_OF_DIRECTORY)
        .ok_or_else(|| corrupt("no end of central directory record: not a zip file"))?;
    let record = &data[end..end + 22];
    let (entries, size, offset) = (u16_at(record, 10), u32_at(record, 12), u32_at(record, 16));
    if entries != u16::MAX && size != u32::MAX && offset != u32::MAX {
        return Ok((offset.into(), size.into(), entries.into()));
    }
    // Zip64: a locator right before the end record points at the zip64 end record.
    let locator = if end >= 20 { &data[end - 20..end] } else { &[0; 20][..] };
    if u32_at(locator, 0) != ZIP64_LOCATOR {
        return Err(corrupt("the end record asks for zip64 but there is no zip64 locator"));
    }
    let record = bytes(data, u64_at(locator, 8), 56, "zip64 end record")?;
    if u32_at(record, 0) != ZIP64_END_OF_DIRECTORY {
        return Err(corrupt("the zip64 locator does not point at a zip64 end record"));
    }
    Ok((u64_at(record, 48), u64_at(record, 40), u64_at(record, 32)))
}

/// Sizes and offset from a zip64 extra field, for the 32-bit fields that are saturated.
fn zip64_values(extra: &[u8], mut wanted: [Option<&mut u64>; 3]) -> Result<(), PtError> {
    let mut at = 0;
    while at + 4 <= extra.len() {
        let (id, len) = (u16_at(extra, at), usize::from(u16_at(extra, at + 2)));
        let body = extra.get(at + 4..at + 4 + len).ok_or_else(|| corrupt("an extra field runs past its entry"))?;
        if id == ZIP64_EXTRA {
            let mut read = 0;
            for value in wanted.iter_mut().flatten() {
                let field = body.get(read..read + 8).ok_or_else(|| corrupt("a zip64 extra field is too short"))?;
                **value = u64_at(field, 0);
                read += 8;
            }
            return Ok(());
        }
        at += 4 + len;
    }
    Err(corrupt("an entry's size or offset needs zip64 but it has no zip64 extra field"))
}

/// One central directory entry: name, local header offset and stored size; the offset of the next.
fn entry(data: &[u8], at: u64) -> Result<(String, u64, u64, u64), PtError> {
    let header = bytes(data, at, 46, "central directory entry")?;
    if u32_at(header, 0) != CENTRAL_HEADER {
        return Err(corrupt(format!("no central directory entry at offset {at}")));
    }
    let (flags, method) = (u16_at(header, 8), u16_at(header, 10));
    let (mut compressed, mut size) = (u64::from(u32_at(header, 20)), u64::from(u32_at(header, 24)));
    let (name_len, extra_len, comment_len) = (u16_at(header, 28), u16_at(header, 30), u16_at(header, 32));
    let mut local = u64::from(u32_at(header, 42));
    let name = bytes(data, at + 46, name_len.into(), "entry name")?;
    let name = String::from_utf8(name.to_vec()).map_err(|_| corrupt("an entry name is not UTF-8"))?;
    let extra = bytes(data, at + 46 + u64::from(name_len), extra_len.into(), "extra field")?;
    let saturated = |v: u64| v == u64::from(u32::MAX);
    let (s, c, l) = (saturated(size), saturated(compressed), saturated(local));
    if s || c || l {
        zip64_values(extra, [s.then_some(&mut size), c.then_some(&mut compressed), l.then_some(&mut local)])?;
    }
    if flags & 1 != 0 {
        return Err(corrupt(format!("{name} is encrypted")));
    }
    if method != 0 || compressed != size {
        return Err(corrupt(format!("{name} is compressed (method {method}); torch.save stores entries uncompressed")));
    }
    let next = at + 46 + u64::from(name_len) + u64::from(extra_len) + u64::from(comment_len);
    Ok((name, local, size, next))
}

/// Every entry's name with its (uncompressed) bytes, borrowed from `data`.
pub fn entries(data: &[u8]) -> Result<BTreeMap<String, &[u8]>, PtError> {
    let (mut at, size, count) = central_directory(data)?;
    bytes(data, at, size, "central directory")?;
    let mut files = BTreeMap::new();
    for _ in 0..count {
        let (name, local, size, next) = entry(data, at)?;
        let header = bytes(data, local, 30, "local header")?;
        if u32_at(header, 0) != LOCAL_HEADER {
            return Err(corrupt(format!("{name}: no local header at offset {local}")));
        }
        let skip = 30 + u64::from(u16_at(header, 26)) + u64::from(u16_at(header, 28));
        let contents = bytes(data, local + skip, size, &name)?;
        if files.insert(name.clone(), contents).is_some() {
            return Err(corrupt(format!("{name} appears twice")));
        }
        at = next;
    }
    Ok(files)
}
