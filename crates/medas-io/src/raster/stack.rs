//! A folder of PNG files, one slice each, read as a 3-D volume (the "series of PNG images"
//! of the paper) and written as `slice_0000.png`, `slice_0001.png`, ...

use super::{codec, make_image, voxels_from};
use crate::{IoError, ReadOptions, Result, WriteOptions};
use medas_image::{Image, VoxelArray, Voxels, with_voxels};
use rayon::prelude::*;
use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

const FORMAT: &str = "png-stack";

/// The `.png` files of a folder in natural order of their names (`slice2` before `slice10`).
pub fn slice_files(folder: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(folder).map_err(|e| IoError::io(folder, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| IoError::io(folder, e))?.path();
        let is_png = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("png"));
        if is_png && path.is_file() {
            files.push(path);
        }
    }
    files.sort_by(|a, b| {
        natural_cmp(
            &a.file_name().unwrap_or_default().to_string_lossy(),
            &b.file_name().unwrap_or_default().to_string_lossy(),
        )
    });
    Ok(files)
}

/// Compares names so that runs of digits compare as numbers: `a2 < a10`, `a02 == a2` (ties
/// then fall back to plain text order so that the order is total).
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    while !x.is_empty() && !y.is_empty() {
        let (dx, dy) = (x[0].is_ascii_digit(), y[0].is_ascii_digit());
        let order = if dx && dy {
            let run = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
            let (nx, ny) = (run(x), run(y));
            let trim = |s: &[u8]| s.iter().skip_while(|c| **c == b'0').count();
            let (tx, ty) = (trim(&x[..nx]), trim(&y[..ny]));
            let o = tx
                .cmp(&ty)
                .then_with(|| x[nx - tx..nx].cmp(&y[ny - ty..ny]));
            x = &x[nx..];
            y = &y[ny..];
            o
        } else {
            let o = x[0].to_ascii_lowercase().cmp(&y[0].to_ascii_lowercase());
            x = &x[1..];
            y = &y[1..];
            o
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    x.len().cmp(&y.len()).then_with(|| a.cmp(b))
}

/// Reads every PNG of `folder` as one slice of a 3-D image. All slices must have the same
/// size, pixel type and number of components; the first that differs from the first slice is
/// named in the error. Spacing in-plane comes from the first slice; slices are 1 mm apart.
pub(super) fn read(folder: &Path, options: &ReadOptions) -> Result<Image> {
    let files = slice_files(folder)?;
    if files.is_empty() {
        return Err(IoError::corrupt(
            folder,
            FORMAT,
            "the folder holds no .png files",
        ));
    }
    let done = AtomicUsize::new(0);
    let slices: Vec<Image> = files
        .par_iter()
        .map(|file| {
            let bytes = std::fs::read(file).map_err(|e| IoError::io(file, e))?;
            let slice = codec::read_png(&bytes, file)?;
            if let Some(progress) = options.progress {
                progress(done.fetch_add(1, AtomicOrdering::Relaxed) + 1, files.len());
            }
            Ok(slice)
        })
        .collect::<Result<_>>()?;
    let first = &slices[0];
    for (slice, file) in slices.iter().zip(&files).skip(1) {
        if slice.size() != first.size() || slice.pixel_type() != first.pixel_type() {
            return Err(IoError::corrupt(
                file,
                FORMAT,
                format!(
                    "slice is {:?} {} but the first slice {} is {:?} {}; all slices of a stack must match",
                    slice.size(),
                    slice.pixel_type(),
                    files[0].display(),
                    first.size(),
                    first.pixel_type()
                ),
            ));
        }
    }
    let spatial = [first.size()[0], first.size()[1], slices.len()];
    let voxels = concatenate(folder, &slices, &spatial, first.components())?;
    let spacing = first.geometry().spacing();
    make_image(
        folder,
        voxels,
        first.components(),
        &[spacing[0], spacing[1], 1.0],
    )
}

fn concatenate_typed<T: VoxelArray + Copy>(
    folder: &Path,
    slices: &[Image],
    spatial: &[usize],
    components: usize,
) -> Result<Voxels> {
    let mut data = Vec::with_capacity(spatial.iter().product::<usize>() * components);
    for slice in slices {
        let array = slice.voxels().as_array::<T>().expect("types checked equal");
        data.extend(super::row_major(array, 2));
    }
    voxels_from(folder, spatial, components, data)
}

fn concatenate(
    folder: &Path,
    slices: &[Image],
    spatial: &[usize],
    components: usize,
) -> Result<Voxels> {
    use medas_image::ScalarType as S;
    match slices[0].scalar_type() {
        S::U8 => concatenate_typed::<u8>(folder, slices, spatial, components),
        S::U16 => concatenate_typed::<u16>(folder, slices, spatial, components),
        S::F32 => concatenate_typed::<f32>(folder, slices, spatial, components),
        other => Err(IoError::unsupported(
            folder,
            FORMAT,
            format!("{other} slices"),
        )),
    }
}

/// Writes each slice of a 3-D image (or the one slice of a 2-D image) as
/// `folder/slice_NNNN.png`. Refuses a folder that already holds other PNG files, because
/// reading the folder back would mix them in.
pub(super) fn write(image: &Image, folder: &Path, options: &WriteOptions) -> Result<()> {
    if !(2..=3).contains(&image.dimension()) {
        return Err(IoError::cannot_write(
            folder,
            FORMAT,
            format!(
                "a PNG stack holds 2-D or 3-D images, this one is {}-D",
                image.dimension()
            ),
        ));
    }
    let depth = if image.dimension() == 3 {
        image.size()[2]
    } else {
        1
    };
    let digits = depth.saturating_sub(1).to_string().len().max(4);
    let names: Vec<String> = (0..depth)
        .map(|k| format!("slice_{k:0digits$}.png"))
        .collect();
    std::fs::create_dir_all(folder).map_err(|e| IoError::io(folder, e))?;
    for existing in slice_files(folder)? {
        let name = existing
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        if !names.contains(&name) {
            return Err(IoError::cannot_write(
                &existing,
                FORMAT,
                "the output folder already holds other PNG files; choose an empty folder",
            ));
        }
    }
    let done = AtomicUsize::new(0);
    (0..depth).into_par_iter().try_for_each(|k| {
        let file = folder.join(&names[k]);
        let slice = slice_of(image, k, &file)?;
        let bytes = codec::encode_png(&slice, &file)?;
        crate::raw::write_file(&file, &bytes)?;
        if let Some(progress) = options.progress {
            progress(done.fetch_add(1, AtomicOrdering::Relaxed) + 1, depth);
        }
        Ok(())
    })
}

/// Slice `k` of a 3-D image as a 2-D image (shares no memory: PNG encoding needs a copy).
fn slice_of(image: &Image, k: usize, file: &Path) -> Result<Image> {
    if image.dimension() == 2 {
        return Ok(image.clone());
    }
    let spacing = image.geometry().spacing();
    let voxels = with_voxels!(image.voxels(), a => Voxels::from(a.index_axis(ndarray::Axis(2), k).to_owned()));
    make_image(file, voxels, image.components(), &spacing[..2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut names = vec![
            "slice10.png",
            "slice2.png",
            "Slice1.png",
            "slice02b.png",
            "a.png",
        ];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            vec![
                "a.png",
                "Slice1.png",
                "slice2.png",
                "slice02b.png",
                "slice10.png"
            ]
        );
        assert_eq!(natural_cmp("x007", "x7"), "x007".cmp("x7"));
    }
}
