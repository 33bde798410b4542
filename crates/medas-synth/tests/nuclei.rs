//! Nuclei tiles: mask ids are exactly the XML regions, each mask agrees with its polygon
//! rasterised independently here, and the colours are H&E-like.

mod support;

use medas_synth::Kind;
use support::{generated, read, values};

/// Pixels whose centre (integer coordinates) is inside the polygon by the even-odd rule.
fn rasterise(xs: &[f64], ys: &[f64], width: usize, height: usize) -> Vec<usize> {
    let mut inside = Vec::new();
    for y in 0..height {
        for x in 0..width {
            let (px, py) = (x as f64, y as f64);
            let mut odd = false;
            for n in 0..xs.len() {
                let m = (n + 1) % xs.len();
                if (ys[n] > py) != (ys[m] > py) && px < xs[n] + (py - ys[n]) * (xs[m] - xs[n]) / (ys[m] - ys[n]) {
                    odd = !odd;
                }
            }
            if odd {
                inside.push(x + width * y);
            }
        }
    }
    inside
}

#[test]
fn masks_match_polygons_and_colours_look_like_h_and_e() {
    let size = 128;
    let (folder, _) = generated(Kind::Nuclei, 3, 4, size);
    for case in 0..3 {
        let name = format!("nuclei_{case:03}");
        let rgb = read(folder.path(), format!("Tissue Images/{name}.tif"));
        let mask = read(folder.path(), format!("Masks/{name}.tif"));
        assert_eq!((rgb.size(), rgb.components(), rgb.scalar_type()), (&[size, size][..], 3, medas_image::ScalarType::U8));
        assert_eq!(mask.scalar_type(), medas_image::ScalarType::U16);
        for image in [&rgb, &mask] {
            let spacing = image.geometry().spacing();
            assert!(spacing.iter().all(|s| (s - 0.00025).abs() < 1e-7), "0.25 µm pixels, got {spacing:?}");
        }
        let ids = values(&mask);
        let xml = std::fs::read_to_string(folder.path().join(format!("Annotations/{name}.xml"))).unwrap();
        let document = roxmltree::Document::parse(&xml).unwrap();
        let regions: Vec<_> = document.descendants().filter(|n| n.has_tag_name("Region")).collect();
        let max_id = ids.iter().cloned().fold(0.0, f64::max) as usize;
        assert_eq!(regions.len(), max_id, "one region per mask id");
        let mut worst = 1.0f64;
        for region in &regions {
            let id: usize = region.attribute("Id").unwrap().parse().unwrap();
            let vertices: Vec<(f64, f64)> = region
                .descendants()
                .filter(|n| n.has_tag_name("Vertex"))
                .map(|v| (v.attribute("X").unwrap().parse().unwrap(), v.attribute("Y").unwrap().parse().unwrap()))
                .collect();
            let (xs, ys): (Vec<f64>, Vec<f64>) = vertices.into_iter().unzip();
            let polygon = rasterise(&xs, &ys, size, size);
            let in_mask: Vec<usize> = (0..ids.len()).filter(|&p| ids[p] as usize == id).collect();
            let outside_polygon = in_mask.iter().filter(|p| polygon.binary_search(p).is_err()).count();
            // Stated tolerance: mask pixels all inside the polygon (a pixel centre exactly on an
            // edge may go either way: at most 1 % of them), and the mask keeps at least 91 % of
            // the polygon (touching nuclei give up at most 8 % to earlier ones).
            assert!(outside_polygon as f64 <= 0.01 * polygon.len() as f64 + 1.0, "region {id}: {outside_polygon} mask pixels outside");
            let kept = in_mask.len() as f64 / polygon.len() as f64;
            worst = worst.min(kept);
            assert!((0.91..=1.01).contains(&kept), "region {id}: mask {} px vs polygon {} px", in_mask.len(), polygon.len());
        }
        // Colours: nuclei darker and bluer than the pink background.
        let pixels = values(&rgb);
        let mean = |inside: bool, c: usize| {
            let chosen: Vec<f64> = (0..ids.len()).filter(|&p| (ids[p] > 0.0) == inside).map(|p| pixels[c * ids.len() + p]).collect();
            chosen.iter().sum::<f64>() / chosen.len() as f64
        };
        let (nucleus, background) = ([0, 1, 2].map(|c| mean(true, c)), [0, 1, 2].map(|c| mean(false, c)));
        eprintln!("{name}: {} nuclei, worst mask/polygon {worst:.3}; RGB nuclei {nucleus:.0?} background {background:.0?}", regions.len());
        assert!(nucleus[0] + 40.0 < background[0], "nuclei darker in red");
        assert!(nucleus[2] > nucleus[0], "nuclei blue-purple");
        assert!(background[0] > background[1] + 30.0, "background pink");
    }
}
