//! `medas dataset import|list|show|split|generate`: registered datasets in the MEDAS data folder
//! (`$MEDAS_DATA`, else `$XDG_DATA_HOME/medas`, else `~/.local/share/medas`).

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use medas_dataset::fingerprint::{self, Fingerprint};
use medas_dataset::split::{self, SplitKind, SplitOptions};
use medas_dataset::store::{self, Manifest};
use medas_dataset::{Layout, SeriesPick, Subset};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum DatasetCommand {
    /// Register a folder as a new dataset version (an unchanged folder keeps its version).
    Import(ImportArgs),
    /// The registered datasets and their versions.
    List,
    /// One version (`NAME` for the latest, `NAME@vN`): summary and a table of its cases.
    Show {
        reference: String,
        /// Print the manifest (or the fingerprint) as JSON.
        #[arg(long)]
        json: bool,
        /// Also the fingerprint: shapes, spacings, foreground intensities, labels, anomalies
        /// (computed once per version, reading every training case).
        #[arg(long)]
        fingerprint: bool,
    },
    /// Split a version's training cases reproducibly and save the split with the version.
    Split(SplitArgs),
    /// Write a synthetic dataset mimicking one of the paper's case studies (deterministic from
    /// the seed) in the layout its importer reads.
    Generate(GenerateArgs),
}

#[derive(Args)]
pub struct GenerateArgs {
    /// nuclei, liver, chest-organs, lung-nodules or brain-classes.
    kind: String,
    /// The folder to write (created; must be empty unless --force).
    out: PathBuf,
    /// Number of cases (tiles or scans).
    #[arg(long, default_value_t = 10)]
    cases: usize,
    /// Seed of every random choice: the same seed gives the same files.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Voxels per axis: one value for all axes or one per axis, e.g. `128` or `160,160,96`
    /// [default: 128³ for volumes, 256² for tiles].
    #[arg(long)]
    size: Option<String>,
    /// Write into a folder that already has files.
    #[arg(long)]
    force: bool,
    /// Also register the folder as a dataset (as `dataset import` would, named after the folder).
    #[arg(long)]
    import: bool,
}

#[derive(Args)]
pub struct ImportArgs {
    /// The dataset folder.
    path: PathBuf,
    /// Layout (msd, nnunet, luna16, monuseg, csv, dicom, generic) [default: detected].
    #[arg(long)]
    layout: Option<String>,
    /// Dataset name [default: the folder's name].
    #[arg(long)]
    name: Option<String>,
    /// Copy the files into the data folder (default: they stay where they are).
    #[arg(long)]
    copy: bool,
    /// DICOM study folders: take the series of this modality (CT, MR, ...).
    #[arg(long)]
    series_modality: Option<String>,
    /// DICOM study folders: take the series whose description contains this text.
    #[arg(long)]
    series_description: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Kfold,
    Holdout,
}

#[derive(Args)]
pub struct SplitArgs {
    /// `NAME` (latest version) or `NAME@vN`.
    reference: String,
    #[arg(long, value_enum, default_value = "kfold")]
    kind: Kind,
    /// Number of folds (k-fold).
    #[arg(long, default_value_t = 5)]
    folds: usize,
    /// Share of the cases to validate on (hold-out), strictly between 0 and 1.
    #[arg(long, default_value_t = 0.2)]
    validation_fraction: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Keep the classes' proportions in every fold.
    #[arg(long)]
    stratify: bool,
    /// Keep each patient's cases in one fold.
    #[arg(long)]
    group_by_patient: bool,
    /// Split name [default: from the options, e.g. kfold5-seed0].
    #[arg(long)]
    name: Option<String>,
}

pub fn run(command: &DatasetCommand) -> Result<()> {
    let data = store::data_dir();
    match command {
        DatasetCommand::Import(args) => import(args, &data),
        DatasetCommand::List => list(&data),
        DatasetCommand::Show { reference, json, fingerprint } => show(reference, *json, *fingerprint, &data),
        DatasetCommand::Split(args) => make_split(args, &data),
        DatasetCommand::Generate(args) => generate(args, &data),
    }
}

fn generate(args: &GenerateArgs, data: &std::path::Path) -> Result<()> {
    let kind: medas_synth::Kind = args.kind.parse()?;
    let size = args.size.as_deref().map(medas_synth::parse_size).transpose()?;
    let options = medas_synth::GenerateOptions { cases: args.cases, seed: args.seed, size, overwrite: args.force };
    let bar = crate::progress::Bar::new(&format!("generating {}", kind.name()));
    let summary = medas_synth::generate(kind, &options, &args.out, &|done, total| bar.update(done, total));
    bar.finish();
    crate::emit(&format!("{}\n", summary?))?;
    if args.import {
        let pick = SeriesPick { modality: None, description: None };
        let imported = medas_dataset::import_with(&args.out, None, None, &pick)?;
        let stored = medas_dataset::register(&imported.dataset, data, false)?;
        let m = &stored.manifest;
        crate::emit(&format!("registered {}@v{}: {} cases, layout {}\n", m.name, m.version, m.cases.len(), m.layout))?;
    }
    Ok(())
}

fn import(args: &ImportArgs, data: &std::path::Path) -> Result<()> {
    let layout = args.layout.as_deref().map(Layout::parse).transpose()?;
    let pick = SeriesPick { modality: args.series_modality.clone(), description: args.series_description.clone() };
    let imported = medas_dataset::import_with(&args.path, layout, args.name.as_deref(), &pick)?;
    let stored = medas_dataset::register(&imported.dataset, data, args.copy)?;
    let m = &stored.manifest;
    let state = if stored.created { "new version" } else { "unchanged, existing version" };
    let mut text = format!(
        "{}@v{} ({state}): {} cases, layout {}, {} files, {:.1} MB{}\n{}\n",
        m.name,
        m.version,
        m.cases.len(),
        m.layout,
        m.files().count(),
        m.total_bytes() as f64 / 1e6,
        if m.copied { ", copied" } else { "" },
        crate::shown(&stored.folder)
    );
    if !imported.unpaired.is_empty() {
        text += &format!("{} file(s) without a partner:\n", imported.unpaired.len());
        text += &imported.unpaired.iter().map(|p| format!("  {}\n", p.display())).collect::<String>();
    }
    crate::emit(&text)?;
    Ok(())
}

fn list(data: &std::path::Path) -> Result<()> {
    let mut rows = Vec::new();
    for (name, versions) in store::list(data)? {
        let latest = store::load(data, &name, None)?;
        let shown: Vec<String> = versions.iter().map(|v| format!("v{v}")).collect();
        rows.push(vec![name, shown.join(" "), latest.layout.to_string(), latest.cases.len().to_string()]);
    }
    if rows.is_empty() {
        crate::emit(&format!("no datasets in {}\n", crate::shown(data)))?;
        return Ok(());
    }
    crate::emit(&table(&["dataset", "versions", "layout", "cases"], &rows))?;
    Ok(())
}

fn show(reference: &str, json: bool, with_fingerprint: bool, data: &std::path::Path) -> Result<()> {
    let (name, version) = store::parse_reference(reference)?;
    let m = store::load(data, &name, version)?;
    let print = if with_fingerprint { Some(fingerprint::load_or_compute(data, &m)?) } else { None };
    let text = match (&print, json) {
        (Some(print), true) => serde_json::to_string_pretty(print)? + "\n",
        (None, true) => serde_json::to_string_pretty(&m)? + "\n",
        (Some(print), false) => summary(&m, data)? + &cases_table(&m) + "\n" + &fingerprint_tables(&m, print),
        (None, false) => summary(&m, data)? + &cases_table(&m),
    };
    crate::emit(&text)?;
    Ok(())
}

fn fingerprint_tables(m: &Manifest, print: &Fingerprint) -> String {
    let range = |r: Option<&fingerprint::AxisRange>| r.map_or_else(|| vec!["-".into(); 3], |r| vec![format!("{}", r.min), format!("{}", r.median), format!("{}", r.max)]);
    let axes: Vec<Vec<String>> = (0..print.shape.len().max(print.spacing.len()))
        .map(|axis| [vec![axis.to_string()], range(print.shape.get(axis)), range(print.spacing.get(axis))].concat())
        .collect();
    let mut text = table(&["axis", "size min", "median", "max", "spacing min (mm)", "median", "max"], &axes);
    text += &match &print.foreground_intensity {
        Some(i) => format!(
            "\nforeground intensity ({} samples): mean {:.4}, std {:.4}, min {}, p0.5 {:.4}, median {:.4}, p99.5 {:.4}, max {}\n\n",
            i.samples, i.mean, i.std, i.min, i.percentile_00_5, i.median, i.percentile_99_5, i.max
        ),
        None => "\nforeground intensity: - (no labelled cases)\n\n".into(),
    };
    let name_of = |value: i64| m.label_names.iter().find(|l| l.values == [value]).map_or("-".to_string(), |l| l.name.clone());
    let labels: Vec<Vec<String>> = print
        .labels
        .iter()
        .map(|(value, l)| vec![value.to_string(), name_of(*value), l.voxels.to_string(), l.components.to_string(), l.cases.to_string()])
        .collect();
    text += &table(&["label", "name", "voxels", "components", "cases"], &labels);
    text += if print.anomalies.is_empty() { "\nanomalies: none\n" } else { "\nanomalies:\n" };
    text += &print.anomalies.iter().map(|a| format!("  {}: {}\n", a.case, a.problem)).collect::<String>();
    text
}

fn summary(m: &Manifest, data: &std::path::Path) -> Result<String> {
    let tests = m.cases.iter().filter(|c| c.subset == Subset::Test).count();
    let labels: Vec<String> = m.label_names.iter().map(|l| format!("{}={}", l.values.iter().map(i64::to_string).collect::<Vec<_>>().join("+"), l.name)).collect();
    let splits = split::list(data, &m.name, m.version)?;
    let none = || "-".to_string();
    Ok(format!(
        "dataset   {}@v{}\nlayout    {}\nsource    {}{}\nmodality  {}\nlabels    {}\ncases     {} ({} training, {tests} test), {} files, {:.1} MB\nsplits    {}\n\n",
        m.name,
        m.version,
        m.layout,
        m.source_root.display(),
        if m.copied { " (copied)" } else { "" },
        if m.modality.is_empty() { none() } else { m.modality.join(", ") },
        if labels.is_empty() { none() } else { labels.join(", ") },
        m.cases.len(),
        m.cases.len() - tests,
        m.files().count(),
        m.total_bytes() as f64 / 1e6,
        if splits.is_empty() { none() } else { splits.join(", ") },
    ))
}

fn cases_table(m: &Manifest) -> String {
    let dash = |v: Option<&String>| v.cloned().unwrap_or_else(|| "-".into());
    let rows: Vec<Vec<String>> = m
        .cases
        .iter()
        .map(|c| {
            vec![
                c.id.clone(),
                if c.subset == Subset::Test { "test" } else { "training" }.into(),
                c.images.len().to_string(),
                dash(c.label.as_ref().map(|l| &l.relative)),
                dash(c.class_label.as_ref()),
                dash(c.patient_id.as_ref()),
                format!("{:.1}", c.images.iter().chain(c.label.iter()).map(|f| f.bytes).sum::<u64>() as f64 / 1e6),
            ]
        })
        .collect();
    table(&["case", "subset", "channels", "label", "class", "patient", "MB"], &rows)
}

fn make_split(args: &SplitArgs, data: &std::path::Path) -> Result<()> {
    let (name, version) = store::parse_reference(&args.reference)?;
    let manifest = store::load(data, &name, version)?;
    let kind = match args.kind {
        Kind::Kfold => SplitKind::Kfold { folds: args.folds },
        Kind::Holdout => SplitKind::Holdout { validation_fraction: args.validation_fraction },
    };
    let options = SplitOptions { kind, seed: args.seed, stratify: args.stratify, group_by_patient: args.group_by_patient };
    let split_name = args.name.clone().unwrap_or_else(|| options.default_name());
    let made = split::split_manifest(&manifest, &split_name, options)?;
    let path = split::save(data, &made)?;
    let rows: Vec<Vec<String>> =
        made.folds.iter().enumerate().map(|(i, f)| vec![i.to_string(), f.train.len().to_string(), f.validation.len().to_string()]).collect();
    let header = format!("split {split_name} of {}@v{}: {}\n", made.dataset, made.version, crate::shown(&path));
    crate::emit(&(header + &table(&["fold", "train", "validation"], &rows)))?;
    Ok(())
}

/// Left-aligned columns separated by two spaces.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len()).map(|c| rows.iter().map(|r| r[c].len()).chain([header[c].len()]).max().unwrap_or(0)).collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut text = line(header.to_vec());
    for row in rows {
        text += &line(row.iter().map(String::as_str).collect());
    }
    text
}
