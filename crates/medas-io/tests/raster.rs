//! PNG, JPEG, TIFF and PNG-stack readers and writers against the readers of record
//! (SimpleITK, tifffile) on real files from scikit-image, stardist and files made here.
//!
//! Tolerances: integer and float voxels must be identical, except for JPEG, where decoders
//! legitimately differ (IDCT rounding and chroma upsampling); the bounds and the measured
//! differences are stated in `jpeg_matches_libjpeg_turbo_within_decoder_rounding`.

use medas_image::{Image, ScalarType};
use medas_io::raster;
use medas_io::{Format, ReadOptions, WriteOptions};
use medas_testkit::{max_mean_difference, python_script, 
    assert_geometry, assert_voxels, image_voxels, reference, scratch_dir,
};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

fn read(path: &Path) -> Image {
    raster::read(path, &ReadOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn write(image: &Image, path: &Path, format: Format) {
    raster::write(image, path, format, &WriteOptions::default()).unwrap_or_else(|e| panic!("{e}"));
}

/// Copies a file to a name holding its content hash, so cached references never go stale.
fn by_content(path: &Path) -> PathBuf {
    let bytes = std::fs::read(path).unwrap();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    let name = format!(
        "{}-{:016x}.{}",
        path.file_stem().unwrap().to_string_lossy(),
        h.finish(),
        path.extension().unwrap().to_string_lossy()
    );
    let out = path.with_file_name(name);
    std::fs::write(&out, bytes).unwrap();
    out
}

/// Exact voxels and geometry versus SimpleITK.
fn same_as_sitk(path: &Path) -> Image {
    let image = read(path);
    let r = reference("sitk", path, &[]);
    assert_voxels(&image, &r, 0.0);
    assert_geometry(&image, &r, 1e-9);
    image
}

/// Max and mean absolute difference to a reference, for lossy codecs.
fn assert_close(image: &Image, r: &medas_testkit::Reference, max_allowed: f64, mean_allowed: f64) {
    let (max, mean) = max_mean_difference(&image_voxels(image.voxels()), &r.voxels());
    eprintln!("max |diff| {max}, mean |diff| {mean:.4}");
    assert!(
        max <= max_allowed && mean <= mean_allowed,
        "max |diff| {max} (allowed {max_allowed}), mean {mean} (allowed {mean_allowed})"
    );
}

#[test]
fn png_grey_rgb_rgba_match_simpleitk() {
    let Some(camera) = medas_testkit::file("skimage/camera.png") else {
        return;
    };
    let image = same_as_sitk(&camera);
    assert_eq!(
        (image.size(), image.components(), image.scalar_type()),
        (&[512usize, 512][..], 1, ScalarType::U8)
    );
    // (i, j) = (column, row): pixel at column 10, row 3 is numpy's [3, 10].
    let ihc = same_as_sitk(&medas_testkit::file("skimage/ihc.png").unwrap());
    assert_eq!(ihc.components(), 3);
    for name in [
        "skimage/horse.png",
        "skimage/logo.png",
        "skimage/coins.png",
        "skimage/chelsea.png",
    ] {
        same_as_sitk(&medas_testkit::file(name).unwrap());
    }
}

#[test]
fn tiff_uint16_and_multipage_match_references() {
    let Some(img2d) = medas_testkit::file("stardist/img2d.tif") else {
        return;
    };
    let image = same_as_sitk(&img2d);
    assert_eq!(image.scalar_type(), ScalarType::U16);
    assert_voxels(&image, &reference("tifffile", &img2d, &["page=0"]), 0.0);
    let mask = same_as_sitk(&medas_testkit::file("stardist/mask2d.tif").unwrap());
    assert_eq!(
        mask.voxels().stats().max,
        reference(
            "tifffile",
            &medas_testkit::file("stardist/mask2d.tif").unwrap(),
            &[]
        )
        .meta["max"]
            .as_f64()
            .unwrap()
    );
    // 31 deflate-compressed pages -> 57 x 61 x 31 volume.
    let stack = same_as_sitk(&medas_testkit::file("stardist/img3d.tif").unwrap());
    assert_eq!(stack.size(), &[57, 61, 31]);
    // Two uncompressed pages at 72 dpi -> 0.3528 mm spacing.
    let pages = same_as_sitk(&medas_testkit::file("skimage/multipage.tif").unwrap());
    assert!((pages.geometry().spacing()[0] - 25.4 / 72.0).abs() < 1e-9);
}

#[test]
fn jpeg_matches_libjpeg_turbo_within_decoder_rounding() {
    // 4:2:0 (histo, retina) and 4:4:4 (rocket) files. JPEG decoders are allowed to differ: IDCT
    // rounding, and above all the chroma upsampling of subsampled files. Measured here:
    // - against Pillow (libjpeg-turbo, the decoder OpenSlide and most of Python use):
    //   max 7 / mean 0.36 (histo), max 4 / mean 0.08 (retina), max 2 / mean 0.008 (rocket);
    // - SimpleITK bundles IJG libjpeg, whose upsampling differs from libjpeg-turbo itself by
    //   up to 28 levels on the same files (max 28 / mean 0.77 on histo), so it is only checked
    //   loosely, and for geometry (JFIF density -> spacing), which must be exact.
    // A wrong colour conversion or channel order gives mean differences of tens of levels.
    let Some(histo) = medas_testkit::file("stardist/histo.jpg") else {
        return;
    };
    for path in [
        histo,
        medas_testkit::file("skimage/retina.jpg").unwrap(),
        medas_testkit::file("skimage/rocket.jpg").unwrap(),
    ] {
        let image = read(&path);
        assert_close(&image, &reference("pillow", &path, &[]), 8.0, 0.4);
        let r = reference("sitk", &path, &[]);
        assert_geometry(&image, &r, 1e-9);
        assert_close(&image, &r, 32.0, 1.0);
    }
}

#[test]
fn generated_16bit_png_float_tiff_and_multipage_match_references() {
    if medas_testkit::file("skimage/camera.png").is_none() {
        return;
    }
    let dir = scratch_dir("raster-generated");
    python_script(&format!(
        r#"
import numpy as np, SimpleITK as sitk, tifffile
from PIL import Image
d = "{dir}"
rng = np.random.default_rng(7)
g16 = rng.integers(0, 65536, (37, 53), dtype=np.uint16)
im = sitk.GetImageFromArray(g16); im.SetSpacing((0.5, 0.25)); sitk.WriteImage(im, d + "/grey16.png")
rgb16 = rng.integers(0, 65536, (20, 30, 3), dtype=np.uint16)
sitk.WriteImage(sitk.GetImageFromArray(rgb16, isVector=True), d + "/rgb16.png")
Image.fromarray(rng.integers(0, 256, (11, 13, 2), dtype=np.uint8), "LA").save(d + "/grey_alpha.png")
tifffile.imwrite(d + "/float32.tif", rng.normal(size=(19, 23)).astype(np.float32), resolution=(40.0, 20.0), resolutionunit="CENTIMETER")
tifffile.imwrite(d + "/pages.tif", rng.integers(0, 256, (5, 17, 12), dtype=np.uint8))
tifffile.imwrite(d + "/rgb16.tif", rgb16, photometric="rgb")
tifffile.imwrite(d + "/int16_deflate.tif", rng.integers(-3000, 3000, (33, 31), dtype=np.int16), compression="zlib")
tifffile.imwrite(d + "/tiled.tif", rng.integers(0, 256, (100, 90), dtype=np.uint8), tile=(32, 32))
"#,
        dir = dir.display()
    ));
    let grey16 = same_as_sitk(&dir.join("grey16.png"));
    assert_eq!(grey16.geometry().spacing(), &[0.5, 0.25], "sCAL spacing");
    same_as_sitk(&dir.join("rgb16.png"));
    // SimpleITK cannot convert a grey+alpha PNG to an array; Pillow is the reference here.
    let la = dir.join("grey_alpha.png");
    let grey_alpha = read(&la);
    assert_eq!(grey_alpha.components(), 2);
    assert_voxels(&grey_alpha, &reference("pillow", &la, &[]), 0.0);
    let float = same_as_sitk(&dir.join("float32.tif"));
    assert_eq!(
        (float.scalar_type(), float.geometry().spacing()),
        (ScalarType::F32, &[0.25, 0.5][..])
    );
    assert_eq!(same_as_sitk(&dir.join("pages.tif")).size(), &[12, 17, 5]);
    for name in ["rgb16.tif", "int16_deflate.tif", "tiled.tif"] {
        let path = dir.join(name);
        assert_voxels(
            &read(&path),
            &reference("tifffile", &path, &["page=0"]),
            0.0,
        );
    }
}

#[test]
fn our_writers_are_read_back_by_simpleitk_and_tifffile() {
    let Some(ihc) = medas_testkit::file("skimage/ihc.png") else {
        return;
    };
    let dir = scratch_dir("raster-roundtrip");
    let rgb = read(&ihc);
    let grey16 = read(&medas_testkit::file("stardist/img2d.tif").unwrap());
    let rgba = read(&medas_testkit::file("skimage/logo.png").unwrap());
    let stack = read(&medas_testkit::file("stardist/img3d.tif").unwrap());
    let float = grey16.cast(ScalarType::F32);
    let cases: [(&Image, &str, Format); 8] = [
        (&rgb, "rgb.png", Format::Png),
        (&grey16, "grey16.png", Format::Png),
        (&rgba, "rgba.png", Format::Png),
        (&rgb, "rgb.tif", Format::Tiff),
        (&grey16, "grey16.tif", Format::Tiff),
        (&float, "float.tif", Format::Tiff),
        (&stack, "stack.tif", Format::Tiff),
        (&rgba.cast(ScalarType::U16), "rgba16.png", Format::Png),
    ];
    for (image, name, format) in cases {
        let path = dir.join(name);
        write(image, &path, format);
        let path = by_content(&path);
        let r = reference("sitk", &path, &[]);
        assert_voxels(image, &r, 0.0);
        assert_geometry(image, &r, 1e-6);
        if format == Format::Tiff {
            assert_voxels(&read(&path), &r, 0.0);
        }
    }
    // Spacing survives: PNG via sCAL, TIFF via resolution in pixels per cm.
    let mut spaced = grey16.clone();
    let g = medas_image::Geometry::new(vec![0.499, 0.25], vec![0.0, 0.0], vec![1.0, 0.0, 0.0, 1.0])
        .unwrap();
    spaced.set_geometry(g).unwrap();
    for name in ["spaced.png", "spaced.tif"] {
        let path = dir.join(name);
        write(&spaced, &path, medas_io::format_for_output(&path).unwrap());
        assert_geometry(&spaced, &reference("sitk", &by_content(&path), &[]), 1e-6);
    }
    // JPEG is lossy: quality 95 stays within a few levels of the source.
    let path = dir.join("rgb.jpg");
    write(&rgb, &path, Format::Jpeg);
    let back = reference("sitk", &by_content(&path), &[]);
    assert_close(&rgb, &back, 40.0, 2.0);
    assert_geometry(&rgb, &back, 1e-9);
}

#[test]
fn writers_refuse_what_the_format_cannot_hold() {
    let Some(img2d) = medas_testkit::file("stardist/img2d.tif") else {
        return;
    };
    let dir = scratch_dir("raster-refuse");
    let float = read(&img2d).cast(ScalarType::F32);
    let err = raster::write(
        &float,
        &dir.join("f.png"),
        Format::Png,
        &WriteOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, medas_io::IoError::CannotWrite { .. }) && err.to_string().contains("f.png"),
        "{err}"
    );
    let err = raster::write(
        &read(&img2d),
        &dir.join("g.jpg"),
        Format::Jpeg,
        &WriteOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("uint16"), "{err}");
    let stack = read(&medas_testkit::file("stardist/img3d.tif").unwrap());
    assert!(
        raster::write(
            &stack,
            &dir.join("s.png"),
            Format::Png,
            &WriteOptions::default()
        )
        .is_err()
    );
}

#[test]
fn png_stack_round_trip_in_natural_order_with_progress() {
    let Some(img3d) = medas_testkit::file("stardist/img3d.tif") else {
        return;
    };
    let stack = read(&img3d);
    let dir = scratch_dir("raster-stack").join("slices");
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let progress = |_done: usize, total: usize| {
        assert_eq!(total, 31);
        calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    let options = WriteOptions {
        format: Some(Format::PngStack),
        progress: Some(&progress),
    };
    raster::write(&stack, &dir, Format::PngStack, &options).unwrap();
    assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 31);
    assert!(dir.join("slice_0030.png").exists());
    // Each slice file is what SimpleITK sees.
    let slice = by_content(&dir.join("slice_0007.png"));
    let r = reference("sitk", &slice, &[]);
    let ours = image_voxels(stack.voxels());
    let theirs = r.voxels();
    for i in 0..57 {
        for j in 0..61 {
            assert_eq!(ours[[i, j, 7]], theirs[[i, j]]);
        }
    }
    std::fs::remove_file(slice).unwrap();
    let back = medas_io::read(&dir).unwrap();
    assert_eq!(back.voxels(), stack.voxels());
    // Natural order: rename to slice1..slice31 (slice10 must come after slice9).
    let renamed = dir.with_file_name("renamed");
    std::fs::create_dir_all(&renamed).unwrap();
    for k in 0..31 {
        std::fs::copy(
            dir.join(format!("slice_{k:04}.png")),
            renamed.join(format!("slice{}.png", k + 1)),
        )
        .unwrap();
    }
    assert_eq!(read(&renamed).voxels(), stack.voxels());
}

#[test]
fn broken_inputs_are_errors_not_panics() {
    let Some(camera) = medas_testkit::file("skimage/camera.png") else {
        return;
    };
    let dir = scratch_dir("raster-broken");
    let name = |n: &str| dir.join(n);
    let png = std::fs::read(&camera).unwrap();
    let tif = std::fs::read(medas_testkit::file("stardist/img2d.tif").unwrap()).unwrap();
    let jpg = std::fs::read(medas_testkit::file("stardist/histo.jpg").unwrap()).unwrap();
    for cut in [9, 30, 100, png.len() / 2, png.len() - 20] {
        assert!(
            raster::read_bytes(&png[..cut], &name("cut.png")).is_err(),
            "png cut at {cut}"
        );
    }
    for cut in [4, 9, 200, tif.len() / 2, tif.len() - 1] {
        assert!(
            raster::read_bytes(&tif[..cut], &name("cut.tif")).is_err(),
            "tiff cut at {cut}"
        );
    }
    for cut in [3, 100, jpg.len() / 3] {
        let _ = raster::read_bytes(&jpg[..cut], &name("cut.jpg")); // may decode partially; must not panic
    }
    let mut seed = 12345u64;
    for len in [0usize, 1, 8, 64, 4096] {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (seed >> 56) as u8
            })
            .collect();
        assert!(raster::read_bytes(&bytes, &name("random.png")).is_err());
        let mut with_magic = b"II*\0".to_vec();
        with_magic.extend(&bytes);
        assert!(raster::read_bytes(&with_magic, &name("random.tif")).is_err());
    }
    // A hostile TIFF header claiming 65535 x 65535 RGB of 64-bit samples.
    let mut hostile = tif.clone();
    let ifd = u32::from_le_bytes(hostile[4..8].try_into().unwrap()) as usize;
    let count = u16::from_le_bytes(hostile[ifd..ifd + 2].try_into().unwrap()) as usize;
    for e in 0..count {
        let at = ifd + 2 + 12 * e;
        let tag = u16::from_le_bytes(hostile[at..at + 2].try_into().unwrap());
        if tag == 256 || tag == 257 {
            hostile[at + 2..at + 4].copy_from_slice(&4u16.to_le_bytes()); // LONG
            hostile[at + 8..at + 12].copy_from_slice(&1_000_000u32.to_le_bytes());
        }
    }
    assert!(raster::read_bytes(&hostile, &name("hostile.tif")).is_err());
    // A PNG stack with one slice of another size: the error names that file.
    let stack = dir.join("stack");
    std::fs::create_dir_all(&stack).unwrap();
    for k in 0..3 {
        std::fs::write(stack.join(format!("s{k}.png")), &png).unwrap();
    }
    std::fs::copy(
        medas_testkit::file("skimage/coins.png").unwrap(),
        stack.join("s3.png"),
    )
    .unwrap();
    let err = raster::read(&stack, &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("s3.png") && err.contains("first slice"),
        "{err}"
    );
    std::fs::copy(
        medas_testkit::file("skimage/ihc.png").unwrap(),
        stack.join("s3.png"),
    )
    .unwrap();
    let err = raster::read(&stack, &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("s3.png"), "{err}");
}
