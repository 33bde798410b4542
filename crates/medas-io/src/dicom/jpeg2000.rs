//! A check of JPEG 2000 codestreams against the header, run before dicom-pixeldata decodes them.
//!
//! dicom-pixeldata sizes each frame from Rows × Columns × Samples per Pixel but writes every
//! sample OpenJPEG returns, so a codestream with a larger image or more components than the
//! header declares writes past the frame and panics (fuzz finding: two components in a
//! one-sample image). OpenJPEG also allocates the image the codestream declares. So the image
//! size and component count in each frame's SIZ marker must agree with the header.

use super::FORMAT;
use super::header::PixelFormat;
use crate::{IoError, Result};
use std::path::Path;

/// Start of codestream (SOC) followed by the image and tile size marker (SIZ), which the
/// standard requires to come first.
const SOC_SIZ: [u8; 4] = [0xff, 0x4f, 0xff, 0x51];
/// The JP2 file signature box, for codestreams wrapped in a JP2 file.
const JP2: [u8; 12] = [0, 0, 0, 0x0c, b'j', b'P', b' ', b' ', 0x0d, 0x0a, 0x87, 0x0a];

/// Checks every fragment that starts a codestream (a frame always starts at a fragment).
pub(crate) fn check_frames(fragments: &[&[u8]], fmt: &PixelFormat, name: &Path) -> Result<()> {
    for fragment in fragments {
        let siz = if fragment.starts_with(&SOC_SIZ) {
            Some(*fragment)
        } else if fragment.starts_with(&JP2) {
            fragment.windows(4).position(|w| w == SOC_SIZ).map(|at| &fragment[at..])
        } else {
            None // a continuation fragment
        };
        if let Some(codestream) = siz {
            check_siz(codestream, fmt, name)?;
        }
    }
    Ok(())
}

/// Compares the SIZ marker at the start of `codestream` with Columns, Rows and Samples per
/// Pixel. Component subsampling only shrinks components, so it needs no check.
fn check_siz(codestream: &[u8], fmt: &PixelFormat, name: &Path) -> Result<()> {
    let u32_at = |p: usize| codestream.get(p..p + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let fields = (u32_at(8), u32_at(12), u32_at(16), u32_at(20), codestream.get(40..42));
    let (Some(x1), Some(y1), Some(x0), Some(y0), Some(components)) = fields else {
        return Err(IoError::corrupt(name, FORMAT, "JPEG 2000 codestream is truncated in its SIZ marker"));
    };
    let components = usize::from(u16::from_be_bytes([components[0], components[1]]));
    let width = x1.checked_sub(x0).map(|w| w as usize);
    let height = y1.checked_sub(y0).map(|h| h as usize);
    if width == Some(fmt.columns) && height == Some(fmt.rows) && components == fmt.samples {
        return Ok(());
    }
    let what = format!(
        "JPEG 2000 codestream holds a {}×{} image with {components} components, but the header declares {}×{} with {} samples per pixel",
        x1.wrapping_sub(x0),
        y1.wrapping_sub(y0),
        fmt.columns,
        fmt.rows,
        fmt.samples
    );
    Err(IoError::corrupt(name, FORMAT, what))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SOC and SIZ marker for a `width × height` image with `components` 8-bit components.
    fn codestream(width: u32, height: u32, components: u16) -> Vec<u8> {
        let mut c = SOC_SIZ.to_vec();
        c.extend((38 + 3 * components).to_be_bytes()); // Lsiz
        c.extend([0, 0]); // Rsiz
        for v in [width, height, 0, 0, width, height, 0, 0] {
            c.extend(v.to_be_bytes());
        }
        c.extend(components.to_be_bytes());
        (0..components).for_each(|_| c.extend([7, 1, 1]));
        c
    }

    fn format(columns: usize, rows: usize, samples: usize) -> PixelFormat {
        let photometric = "MONOCHROME2".into();
        let (frames, bits_allocated, bits_stored, signed, planar) = (1, 8, 8, false, false);
        PixelFormat { rows, columns, frames, samples, bits_allocated, bits_stored, signed, photometric, planar }
    }

    #[test]
    fn siz_must_match_the_header() {
        let name = Path::new("x.dcm");
        let grey = codestream(512, 256, 1);
        assert!(check_frames(&[&grey], &format(512, 256, 1), name).is_ok());
        // The fuzz finding: a second component in a one-sample image.
        let two = codestream(512, 256, 2);
        assert!(check_frames(&[&two], &format(512, 256, 1), name).is_err());
        assert!(check_frames(&[&grey], &format(256, 512, 1), name).is_err());
        // Wrapped in a JP2 file; continuation fragments are not codestreams.
        let mut jp2 = JP2.to_vec();
        jp2.extend(&grey);
        assert!(check_frames(&[&jp2, &[1, 2, 3]], &format(512, 256, 1), name).is_ok());
        assert!(check_frames(&[&jp2], &format(512, 512, 1), name).is_err());
        // Truncated SIZ and an origin beyond the image size never panic.
        assert!(check_frames(&[&grey[..20]], &format(512, 256, 1), name).is_err());
        let mut inverted = grey.clone();
        inverted[16] = 0xff; // XOsiz > Xsiz
        assert!(check_frames(&[&inverted], &format(512, 256, 1), name).is_err());
    }

    /// The fuzz input: dicom-pixeldata panicked writing the second component (a caught panic,
    /// but a crash under the fuzzer); now our check rejects the frame before decoding.
    #[test]
    fn fuzz_regression_is_rejected_before_decoding() {
        let file = include_bytes!("../../../../fuzz/regressions/dicom/jpeg2000-extra-component-overflow");
        let error = super::super::read_bytes(file, Path::new("x.dcm")).unwrap_err();
        assert!(error.to_string().contains("JPEG 2000 codestream holds"), "{error}");
    }
}
