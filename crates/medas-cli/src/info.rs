use crate::progress::Bar;
use anyhow::Result;
use clap::Args;
use medas_image::{Image, keys};
use medas_io::ReadOptions;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct InfoArgs {
    /// Image file or folder.
    path: PathBuf,
    /// For a DICOM folder with several series: the SeriesInstanceUID to describe.
    #[arg(long)]
    series: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &InfoArgs) -> Result<()> {
    let format = medas_io::detect(&args.path)?;
    let bar = Bar::new("reading");
    let progress = |done: usize, total: usize| bar.update(done, total);
    let options = ReadOptions { series_uid: args.series.as_deref(), progress: Some(&progress) };
    let image = medas_io::read_with(&args.path, &options)?;
    bar.finish();
    let mut summary = describe(&args.path, format.name(), &image);
    if format == medas_io::Format::DicomSeries {
        summary["series"] = series_table(&args.path)?;
    }
    if format == medas_io::Format::WholeSlide {
        summary["whole_slide"] = slide_table(&args.path)?;
    }
    if args.json {
        crate::emit(&(serde_json::to_string_pretty(&summary)? + "\n"))?;
    } else {
        crate::emit(&(text(&summary) + &tables(&summary)))?;
    }
    Ok(())
}

fn series_table(folder: &Path) -> Result<Value> {
    let series = medas_io::dicom::list_series(folder)?;
    Ok(Value::Array(
        series
            .iter()
            .map(|s| {
                json!({
                    "series_instance_uid": s.uid,
                    "modality": s.modality,
                    "description": s.description,
                    "files": s.files,
                    "size": s.size,
                })
            })
            .collect(),
    ))
}

fn slide_table(path: &Path) -> Result<Value> {
    let slide = medas_io::wsi::Slide::open(path)?;
    let levels: Vec<Value> = slide
        .levels()
        .iter()
        .enumerate()
        .map(|(k, l)| {
            json!({"level": k, "width": l.width, "height": l.height, "downsample": l.downsample,
                   "tile": [l.tile_width, l.tile_height], "spacing_mm": slide.spacing_mm(k)})
        })
        .collect();
    Ok(json!({
        "levels": levels,
        "objective_power": slide.objective_power(),
        "microns_per_pixel": slide.microns_per_pixel().map(|(x, y)| vec![x, y]),
        "note": format!("size and intensity above describe a thumbnail of at most {} pixels a side",
                        medas_io::WHOLE_SLIDE_THUMBNAIL),
    }))
}

/// Everything `info` reports, as JSON (also the source of the text output).
pub fn describe(path: &Path, format: &str, image: &Image) -> Value {
    let geometry = image.geometry();
    let stats = image.voxels().stats();
    let n = geometry.dimension();
    let direction: Vec<Vec<f64>> =
        (0..n).map(|r| (0..n).map(|c| geometry.direction_at(r, c)).collect()).collect();
    let metadata: serde_json::Map<String, Value> = image.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    json!({
        "path": path.display().to_string(),
        "format": format,
        "size": image.size(),
        "pixel_type": image.pixel_type().to_string(),
        "spacing_mm": geometry.spacing(),
        "origin_mm": geometry.origin(),
        "direction": direction,
        "orientation": geometry.orientation_code(),
        "intensity": {
            "min": finite_or_null(stats.min),
            "max": finite_or_null(stats.max),
            "mean": finite_or_null(stats.mean),
            "non_finite_voxels": stats.non_finite,
        },
        "modality": image.metadata.text(keys::MODALITY),
        "metadata": metadata,
    })
}

fn finite_or_null(v: f64) -> Value {
    if v.is_finite() { json!(v) } else { Value::Null }
}

/// Appends one formatted line to `$out`.
macro_rules! put_line {
    ($out:expr, $($arg:tt)*) => {{
        $out.push_str(&format!($($arg)*));
        $out.push('\n');
    }};
}

fn list(v: &Value) -> String {
    v.as_array().map(|a| a.iter().map(format_number).collect::<Vec<_>>().join(" x ")).unwrap_or_default()
}

/// The summary as text: geometry, intensity and metadata.
fn text(s: &Value) -> String {
    let mut out = String::new();
    put_line!(out, "path:        {}", s["path"].as_str().unwrap_or(""));
    put_line!(out, "format:      {}", s["format"].as_str().unwrap_or(""));
    put_line!(out, "size:        {}", list(&s["size"]));
    put_line!(out, "pixel type:  {}", s["pixel_type"].as_str().unwrap_or(""));
    let spacing: Vec<Value> = s["spacing_mm"].as_array().cloned().unwrap_or_default();
    let spatial = Value::Array(spacing.iter().take(3).cloned().collect());
    let time = spacing.get(3).map(|t| format!(", {} s per time point", format_number(t))).unwrap_or_default();
    put_line!(out, "spacing:     {} mm{time}", list(&spatial));
    put_line!(out, "origin:      ({}) mm", list(&s["origin_mm"]).replace(" x ", ", "));
    put_line!(out, "orientation: {}", s["orientation"].as_str().unwrap_or(""));
    if let Some(rows) = s["direction"].as_array() {
        for (k, row) in rows.iter().enumerate() {
            let label = if k == 0 { "direction:" } else { "" };
            put_line!(out, "{label:13}[{}]", list(row).replace(" x ", ", "));
        }
    }
    let i = &s["intensity"];
    put_line!(
                out,
        "intensity:   min {}  max {}  mean {}",
        format_number(&i["min"]),
        format_number(&i["max"]),
        format_number(&i["mean"])
    );
    if i["non_finite_voxels"].as_u64().unwrap_or(0) > 0 {
        put_line!(out, "             {} NaN/inf voxels", i["non_finite_voxels"]);
    }
    if let Some(m) = s["modality"].as_str() {
        put_line!(out, "modality:    {m}");
    }
    if let Some(meta) = s["metadata"].as_object() {
        for (k, v) in meta.iter().filter(|(k, _)| k.as_str() != keys::MODALITY) {
            let text = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
            put_line!(out, "  {k}: {text}");
        }
    }
    out
}

/// The whole-slide levels and the series of a folder, when there are any.
fn tables(s: &Value) -> String {
    let mut out = String::new();
    if let Some(levels) = s["whole_slide"]["levels"].as_array() {
        put_line!(out, "whole slide: {} level(s); {}", levels.len(), s["whole_slide"]["note"].as_str().unwrap_or(""));
        for l in levels {
            put_line!(
                out,
                "  level {}: {} x {} px, downsample {}, tiles {}",
                l["level"], l["width"], l["height"], format_number(&l["downsample"]), l["tile"]
            );
        }
    }
    if let Some(series) = s["series"].as_array() {
        put_line!(out, "series in folder: {}", series.len());
        for item in series {
            put_line!(
                out,
                "  {}  {}  {} files  {}  {}",
                item["series_instance_uid"].as_str().unwrap_or("?"),
                item["modality"].as_str().unwrap_or("?"),
                item["files"],
                list(&item["size"]),
                item["description"].as_str().unwrap_or("")
            );
        }
    }
    out
}

fn format_number(v: &Value) -> String {
    match v.as_f64().map(|x| if x.abs() < 5e-7 { 0.0 } else { x }) {
        Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{}", x as i64), // also turns -0 into 0
        Some(x) => format!("{:.6}", x).trim_end_matches('0').trim_end_matches('.').to_string(),
        None => v.as_str().map(str::to_string).unwrap_or_else(|| "n/a".into()),
    }
}
