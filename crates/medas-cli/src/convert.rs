use crate::progress::Bar;
use anyhow::{Context, Result, bail};
use clap::Args;
use medas_image::ScalarType;
use medas_io::{Format, ReadOptions, WriteOptions};
use std::path::PathBuf;

#[derive(Args)]
pub struct ConvertArgs {
    /// Input image file or folder (DICOM series, PNG stack).
    input: PathBuf,
    /// Output path; the format follows the extension (`.nii.gz`, `.mha`, `.nrrd`, `.npy`,
    /// `.png`, ...). A folder (existing, or ending in `/`) becomes a DICOM series.
    output: PathBuf,
    /// Write this format instead of guessing it from the output path
    /// (nifti, dicom, dicom-series, metaimage, nrrd, npy, npz, png, jpeg, tiff, png-stack).
    #[arg(long)]
    format: Option<String>,
    /// Cast voxels to this type first (uint8, int16, float32, ...), rounding and saturating.
    #[arg(long = "type")]
    voxel_type: Option<String>,
    /// For a DICOM folder with several series: the SeriesInstanceUID to convert.
    #[arg(long)]
    series: Option<String>,
    /// Replace the output if it exists.
    #[arg(long)]
    force: bool,
}

pub fn run(args: &ConvertArgs) -> Result<()> {
    let format = match &args.format {
        Some(name) => Some(Format::parse(name).with_context(|| format!("unknown output format '{name}'"))?),
        None => None,
    };
    let voxel_type = match &args.voxel_type {
        Some(name) => Some(ScalarType::parse(name).with_context(|| format!("unknown voxel type '{name}'"))?),
        None => None,
    };
    if args.output.is_file() && !args.force {
        bail!("{} exists; pass --force to replace it", crate::shown(&args.output));
    }
    // A folder output must be new or empty: slices of an older series left beside the new
    // ones would be read back instead of (or mixed with) what we write.
    if args.output.is_dir() && std::fs::read_dir(&args.output)?.next().is_some() {
        bail!("{} is a folder that is not empty; write the series into a new or empty folder", crate::shown(&args.output));
    }
    let bar = Bar::new("reading");
    let progress = |done: usize, total: usize| bar.update(done, total);
    let read_options = ReadOptions { series_uid: args.series.as_deref(), progress: Some(&progress) };
    let mut image = medas_io::read_with(&args.input, &read_options)?;
    bar.finish();
    if let Some(scalar) = voxel_type {
        image = image.cast(scalar);
    }
    let bar = Bar::new("writing");
    let progress = |done: usize, total: usize| bar.update(done, total);
    let write_options = WriteOptions { format, progress: Some(&progress) };
    medas_io::write_with(&image, &args.output, &write_options)?;
    bar.finish();
    let spacing: Vec<String> = image.geometry().spacing().iter().map(|s| format!("{s:.6}")).collect();
    eprintln!(
        "wrote {} ({} {}, spacing {} mm)",
        crate::shown(&args.output),
        image.size().iter().map(|n| n.to_string()).collect::<Vec<_>>().join("x"),
        image.pixel_type(),
        spacing.iter().map(|s| s.trim_end_matches('0').trim_end_matches('.')).collect::<Vec<_>>().join(" x ")
    );
    Ok(())
}
