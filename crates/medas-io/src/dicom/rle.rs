//! DICOM RLE Lossless (PS3.5 Annex G): one PackBits segment per byte plane of each sample.
//! Ours rather than the codec library's, which cannot decode 32-bit samples.

use super::FORMAT;
use super::header::PixelFormat;
use crate::{IoError, Result};
use std::path::Path;

/// Decodes every frame into little-endian, sample-interleaved bytes.
pub(crate) fn decode(fragments: &[&[u8]], fmt: &PixelFormat, name: &Path) -> Result<Vec<u8>> {
    let frames: Vec<Vec<u8>> = if fragments.len() == fmt.frames {
        fragments.iter().map(|f| f.to_vec()).collect()
    } else if fmt.frames == 1 {
        vec![fragments.concat()]
    } else {
        let what = format!("{} RLE fragments for {} frames", fragments.len(), fmt.frames);
        return Err(IoError::corrupt(name, FORMAT, what));
    };
    let width = (fmt.bits_allocated as usize / 8).max(1);
    let pixels = fmt.rows * fmt.columns;
    let mut out = vec![0u8; pixels * fmt.samples * width * fmt.frames];
    for (frame, data) in out.chunks_exact_mut(pixels * fmt.samples * width).zip(&frames) {
        decode_frame(data, frame, fmt.samples, width, pixels, name)?;
    }
    Ok(out)
}

fn decode_frame(data: &[u8], out: &mut [u8], samples: usize, width: usize, pixels: usize, name: &Path) -> Result<()> {
    let corrupt = |what: &str| IoError::corrupt(name, FORMAT, format!("RLE: {what}"));
    let word = |at: usize| -> Option<usize> {
        data.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let count = word(0).ok_or_else(|| corrupt("frame shorter than its header"))?;
    if count != samples * width {
        return Err(corrupt(&format!("{count} segments, {} expected", samples * width)));
    }
    let offsets: Vec<usize> = (0..count).map(|s| word(4 + 4 * s).unwrap_or(0)).collect();
    let mut segment = Vec::with_capacity(pixels);
    for s in 0..count {
        let start = offsets[s];
        let end = offsets.get(s + 1).copied().unwrap_or(data.len()).min(data.len());
        let bytes = data.get(start..end.max(start)).ok_or_else(|| corrupt("segment offset beyond the frame"))?;
        unpack(bytes, pixels, &mut segment);
        if segment.len() < pixels {
            return Err(corrupt(&format!("segment {s} holds {} of {pixels} bytes", segment.len())));
        }
        // Segment order: sample 0 most significant byte first.
        let (sample, byte) = (s / width, width - 1 - s % width);
        for (p, &v) in segment.iter().take(pixels).enumerate() {
            out[(p * samples + sample) * width + byte] = v;
        }
    }
    Ok(())
}

/// PackBits: n in 0..=127 copies n+1 bytes, n in -127..=-1 repeats the next byte 1-n times.
fn unpack(bytes: &[u8], limit: usize, out: &mut Vec<u8>) {
    out.clear();
    let mut at = 0;
    while at < bytes.len() && out.len() < limit {
        let n = bytes[at] as i8;
        at += 1;
        if n >= 0 {
            let end = (at + n as usize + 1).min(bytes.len());
            out.extend_from_slice(&bytes[at..end]);
            at = end;
        } else if n != -128 {
            if let Some(&v) = bytes.get(at) {
                out.extend(std::iter::repeat_n(v, (1 - n as i16) as usize));
            }
            at += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn packbits() {
        let mut out = Vec::new();
        super::unpack(&[2, 1, 2, 3, 0xfe, 9, 0x80, 0, 7], 100, &mut out);
        assert_eq!(out, vec![1, 2, 3, 9, 9, 9, 7]);
    }
}
