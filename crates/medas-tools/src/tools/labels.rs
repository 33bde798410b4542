//! Label maps: `annotation.remap_labels` (a value table, or sequential renumbering as
//! scikit-image's `relabel_sequential`) and `annotation.one_hot` (one channel per class).

use super::mask::{failed, fortran_slice};
use crate::context::Context;
use crate::data::{Data, Inputs, Outputs, take_image};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, ParamKind, ParamSpec, PortSpec, PortType, ToolSpec};
use crate::tools::bad_param;
use medas_image::{Image, Scalar, Voxels, with_voxels};
use rayon::prelude::*;
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// An error unless `image` is a label map: one integer per voxel.
fn check_labels(image: &Image, tool: &str) -> Result<(), ToolError> {
    if image.components() != 1 {
        return Err(failed(tool, format!("a label map has one value per voxel, this image has {} components", image.components())));
    }
    if image.scalar_type().is_float() {
        return Err(failed(tool, format!("labels must be integers, this image holds {}", image.scalar_type())));
    }
    Ok(())
}

/// The labels of an integer image in Fortran order, as i64 (exact for every integer type but
/// u64 above 2^63, which no label map holds).
fn label_values(image: &Image) -> Vec<i64> {
    map_labels(image, |v| v)
}

/// The smallest and largest label (`None` for an empty image), reading the voxels in place.
fn label_range(image: &Image) -> Option<(i64, i64)> {
    fn range<T: Scalar>(values: &[T]) -> Option<(i64, i64)> {
        let extremes = |chunk: &[T]| {
            let first = *chunk.first()?;
            let (low, high) = chunk.iter().fold((first, first), |(low, high), &v| (if v < low { v } else { low }, if v > high { v } else { high }));
            Some((low.to_f64() as i64, high.to_f64() as i64))
        };
        values.par_chunks(1 << 16).filter_map(extremes).reduce_with(|a, b| (a.0.min(b.0), a.1.max(b.1)))
    }
    with_voxels!(image.voxels(), a => match a.as_slice_memory_order() {
        // Any memory order will do for the extremes.
        Some(values) => range(values),
        None => range(&a.iter().copied().collect::<Vec<_>>()),
    })
}

/// Labels spanning fewer values than this are looked up in a dense table.
const DENSE_RANGE: i64 = 1 << 20;

/// `finish(entry(label))` for every voxel, in Fortran order, in parallel. `entry` is called
/// once per value of the labels' range when that range is small (the usual label map), so a
/// voxel costs one load from a table instead of a hash lookup.
fn lookup_labels<E: Copy + Send + Sync, O: Send>(image: &Image, entry: impl Fn(i64) -> E + Sync, finish: impl Fn(E) -> O + Sync) -> Vec<O> {
    let dense = label_range(image).filter(|(low, high)| high.checked_sub(*low).is_some_and(|span| span < DENSE_RANGE));
    let table: Vec<E> = dense.map(|(low, high)| (low..=high).map(&entry).collect()).unwrap_or_default();
    match dense {
        Some((low, _)) => map_labels(image, |v| finish(table[(v - low) as usize])),
        None => map_labels(image, |v| finish(entry(v))),
    }
}

/// `f(label)` for every voxel, in Fortran order, in parallel.
fn map_labels<O: Send>(image: &Image, f: impl Fn(i64) -> O + Sync) -> Vec<O> {
    with_voxels!(image.voxels(), a => match fortran_slice(a) {
        Some(values) => values.par_iter().map(|v| f(v.to_f64() as i64)).collect(),
        None => a.view().reversed_axes().iter().map(|v| f(v.to_f64() as i64)).collect(),
    })
}

/// `"1:0, 2:1"` as a table of from -> to.
fn parse_mapping(text: &str, tool: &str) -> Result<HashMap<i64, i64>, ToolError> {
    let mut table = HashMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let parsed = pair.split_once(':').and_then(|(a, b)| Some((a.trim().parse::<i64>().ok()?, b.trim().parse::<i64>().ok()?)));
        let Some((from, to)) = parsed else {
            return Err(bad_param(tool, "mapping", format!("holds {pair:?}; write pairs of integers as \"from:to, from:to\"")));
        };
        if table.insert(from, to).is_some() {
            return Err(bad_param(tool, "mapping", format!("maps label {from} twice")));
        }
    }
    Ok(table)
}

pub struct RemapLabels(ToolSpec);

const UNMAPPED: [&str; 2] = ["keep", "zero"];

impl RemapLabels {
    fn new() -> RemapLabels {
        RemapLabels(
            ToolSpec::new(
                "annotation.remap_labels",
                Category::Annotation,
                "Remap labels",
                "Replaces label values by a table (\"from:to, from:to\"; labels not in it are kept or set \
                 to 0), or, with sequential, renumbers the labels present to 1..N in increasing order \
                 with 0 kept as background, as skimage.segmentation.relabel_sequential. Output int32 on \
                 the same grid.",
            )
            .param(ParamSpec::string("mapping", "Pairs \"from:to\", comma separated (ignored when sequential).").default(""))
            .param(ParamSpec::choice("unmapped", "What labels missing from the table become: keep or zero.", &UNMAPPED).default("keep"))
            .param(ParamSpec::bool("sequential", "Renumber the labels present to 1..N instead of using the table.").default(false))
            .input(PortSpec::new("labels", PortType::LabelImage, "An integer label map."))
            .output(PortSpec::new("labels", PortType::LabelImage, "int32 labels.")),
        )
    }

    /// The table to apply: the given one, or present labels in order onto 1..N.
    fn table(&self, params: &Params, image: &Image) -> Result<HashMap<i64, i64>, ToolError> {
        if !params.bool("sequential")? {
            return parse_mapping(params.text("mapping")?, &self.0.id);
        }
        let values = label_values(image);
        let present: BTreeSet<i64> = values.par_chunks(1 << 16).map(|c| c.iter().copied().collect::<BTreeSet<i64>>()).reduce(BTreeSet::new, |mut a, b| {
            a.extend(b);
            a
        });
        Ok(present.into_iter().filter(|&v| v != 0).zip(1..).chain([(0, 0)]).collect())
    }
}

impl Tool for RemapLabels {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let image = take_image(&mut inputs, id, "labels")?;
        check_labels(&image, id)?;
        let table = self.table(params, &image)?;
        let keep = params.text("unmapped")? == "keep" || params.bool("sequential")?;
        context.progress(0.5);
        let too_big = AtomicI64::new(0);
        let mapped: Vec<i32> = lookup_labels(
            &image,
            |v| table.get(&v).copied().unwrap_or(if keep { v } else { 0 }),
            |to: i64| {
                i32::try_from(to).unwrap_or_else(|_| {
                    too_big.store(to, Ordering::Relaxed);
                    0
                })
            },
        );
        // 0 always fits, so it marks "nothing too big".
        let to = too_big.into_inner();
        if to != 0 {
            return Err(failed(id, format!("label {to} does not fit int32")));
        }
        let voxels = Voxels::from_fortran_vec(image.size(), mapped).map_err(|e| failed(id, e.to_string()))?;
        context.progress(1.0);
        Ok(Outputs::from([("labels".to_string(), Data::Image(image.with_voxels(voxels).map_err(|e| failed(id, e.to_string()))?))]))
    }
}

pub struct OneHot(ToolSpec);

impl OneHot {
    fn new() -> OneHot {
        OneHot(
            ToolSpec::new(
                "annotation.one_hot",
                Category::Annotation,
                "One-hot encode",
                "Turns a label map into one uint8 channel per class (a multi-component image, channel c \
                 is 1 where the label equals classes[c]), as numpy's eye(n)[labels] for labels 0..n-1. \
                 classes defaults to 0..max label; voxels whose label is not listed are 0 in every \
                 channel. Geometry kept.",
            )
            .param(ParamSpec::list("classes", "Label value of each channel, in order (empty: 0 to the largest label).", ParamKind::Int { min: None, max: None }).default(json!([])))
            .input(PortSpec::new("labels", PortType::LabelImage, "An integer label map."))
            .output(PortSpec::new("image", PortType::Image, "uint8 channels, one per class (last axis).")),
        )
    }
}

/// Channels above this many are almost surely a mistake (an intensity image given as labels).
const MAX_CLASSES: usize = 1024;

impl Tool for OneHot {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let image = take_image(&mut inputs, id, "labels")?;
        check_labels(&image, id)?;
        let mut classes: Vec<i64> = params.value("classes").and_then(|v| v.as_array()).into_iter().flatten().filter_map(|v| v.as_i64()).collect();
        if classes.is_empty() {
            let largest = label_range(&image).map_or(0, |(_, high)| high);
            if largest < 0 || largest as usize >= MAX_CLASSES {
                return Err(failed(id, format!("the largest label is {largest}; give `classes` for labels outside 0..{MAX_CLASSES}")));
            }
            classes = (0..=largest).collect();
        }
        if classes.len() > MAX_CLASSES {
            return Err(bad_param(id, "classes", format!("lists {} classes; at most {MAX_CLASSES}", classes.len())));
        }
        let channel: HashMap<i64, u16> = classes.iter().enumerate().map(|(c, &v)| (v, c as u16)).collect();
        if channel.len() != classes.len() {
            return Err(bad_param(id, "classes", "lists a label twice"));
        }
        // Each voxel's channel (NONE when its label is not listed), then one pass per channel.
        const NONE: u16 = u16::MAX;
        let channels: Vec<u16> = lookup_labels(&image, |v| channel.get(&v).copied().unwrap_or(NONE), |c| c);
        let voxels = channels.len();
        let mut encoded = vec![0u8; voxels * classes.len()];
        // Fortran order with the channel axis last: channel c is one contiguous block.
        encoded.par_chunks_mut(voxels.max(1)).enumerate().for_each(|(c, block)| {
            block.par_chunks_mut(1 << 16).zip(channels.par_chunks(1 << 16)).for_each(|(out, of)| {
                out.iter_mut().zip(of).for_each(|(out, &of)| *out = u8::from(usize::from(of) == c));
            });
        });
        context.progress(1.0);
        let mut shape = image.size().to_vec();
        if classes.len() > 1 {
            shape.push(classes.len()); // a single channel is a plain scalar image
        }
        let voxels = Voxels::from_fortran_vec(&shape, encoded).map_err(|e| failed(id, e.to_string()))?;
        let mut out = Image::with_components(voxels, classes.len(), image.geometry().clone()).map_err(|e| failed(id, e.to_string()))?;
        out.metadata = image.metadata.clone();
        Ok(Outputs::from([("image".to_string(), Data::Image(out))]))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(RemapLabels::new()) } }
inventory::submit! { ToolEntry { build: || Arc::new(OneHot::new()) } }

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Registry, run_tool};

    fn labels(values: Vec<i64>) -> Image {
        let n = values.len();
        Image::new(Voxels::from_fortran_vec(&[n, 1], values).unwrap(), medas_image::Geometry::identity(2)).unwrap()
    }

    fn remap(image: Image, given: serde_json::Value) -> Result<Vec<i32>, ToolError> {
        let tool = Registry::global().get("annotation.remap_labels").unwrap();
        let outputs = run_tool(tool.as_ref(), Inputs::from([("labels".to_string(), Data::Image(image))]), given.as_object().unwrap())?;
        let Some(Data::Image(out)) = outputs.get("labels") else { panic!("no labels") };
        Ok(out.voxels().as_array::<i32>().expect("int32 output").view().reversed_axes().iter().copied().collect())
    }

    /// Labels spread over more than DENSE_RANGE values take the hash-map path; both paths agree.
    #[test]
    fn sparse_and_dense_label_ranges_remap_alike() {
        let given = json!({"mapping": "7:1, 5000000:2", "unmapped": "zero"});
        assert_eq!(remap(labels(vec![0, 5_000_000, 7, 3]), given.clone()).unwrap(), [0, 2, 1, 0]);
        assert_eq!(remap(labels(vec![0, 7, 7, 3]), given).unwrap(), [0, 1, 1, 0]);
    }

    #[test]
    fn a_label_beyond_int32_is_an_error_on_both_paths() {
        for values in [vec![0, 1 << 40, 1], vec![(1 << 40) - 2, 1 << 40]] {
            let error = remap(labels(values), json!({})).unwrap_err();
            assert!(error.to_string().contains(&format!("label {} does not fit int32", 1i64 << 40)), "{error}");
        }
    }
}
