//! `annotation.polygons_to_labels`: polygon annotations in Aperio ImageScope XML (the format of
//! MoNuSeg and of ImageScope itself) become an instance label image, each polygon rasterised as
//! scikit-image's `draw.polygon(Y, X)` does.

use super::mask::failed;
use crate::context::Context;
use crate::data::{Data, Inputs, Outputs};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, ParamSpec, PortSpec, PortType, ToolSpec};
use medas_image::{Geometry, Image, Voxels};
use rayon::prelude::*;
use std::sync::Arc;

/// A closed polygon in pixel coordinates: `x` along axis i (columns), `y` along axis j (rows),
/// pixel centres at integer coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct Polygon {
    pub x: Vec<f64>,
    pub y: Vec<f64>,
}

/// How close to a vertex a pixel centre counts as on it (scikit-image's tolerance).
const VERTEX_TOLERANCE: f64 = 1e-7;

impl Polygon {
    /// Whether the pixel centre (px, py) is inside, on an edge or on a vertex, by the
    /// ray-crossing test with left and right crossings counted apart (O'Rourke, Computational
    /// Geometry in C, ch. 7), the test scikit-image's `draw.polygon` fills by. Only the edges
    /// listed in `edges` (index pairs) are looked at: the others lie wholly above or below py
    /// and cross neither ray.
    fn covers(&self, edges: &[(usize, usize)], px: f64, py: f64) -> bool {
        let (mut right, mut left) = (0u32, 0u32);
        for &(i, j) in edges {
            let (x0, y0) = (self.x[i] - px, self.y[i] - py);
            if x0.abs() < VERTEX_TOLERANCE && y0.abs() < VERTEX_TOLERANCE {
                return true;
            }
            let (x1, y1) = (self.x[j] - px, self.y[j] - py);
            let crossing = (x0 * y1 - x1 * y0) / (y1 - y0);
            if (y0 > 0.0) != (y1 > 0.0) && crossing > 0.0 {
                right += 1;
            }
            if (y0 < 0.0) != (y1 < 0.0) && crossing < 0.0 {
                left += 1;
            }
        }
        right % 2 != left % 2 || right % 2 == 1
    }

    /// The linear indices (`x + width * y`) of the pixels of a `width` x `height` grid that the
    /// polygon covers, row by row.
    pub fn pixels(&self, width: usize, height: usize) -> Vec<usize> {
        let n = self.x.len();
        if n == 0 || width == 0 || height == 0 {
            return Vec::new();
        }
        let bounds = |v: &[f64]| v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &a| (lo.min(a), hi.max(a)));
        let ((x_min, x_max), (y_min, y_max)) = (bounds(&self.x), bounds(&self.y));
        let clamp = |v: f64, size: usize| v.clamp(0.0, size as f64 - 1.0) as usize;
        if !(x_max >= 0.0 && y_max >= 0.0 && x_min <= (width - 1) as f64 && y_min <= (height - 1) as f64) {
            return Vec::new();
        }
        let (columns, rows) = (clamp(x_min.ceil(), width)..=clamp(x_max.floor(), width), clamp(y_min.ceil(), height)..=clamp(y_max.floor(), height));
        let mut pixels = Vec::new();
        let mut edges = Vec::new();
        for row in rows {
            let py = row as f64;
            let near = |y: f64| (y - py).abs() < VERTEX_TOLERANCE;
            edges.clear();
            edges.extend((0..n).map(|i| (i, if i == 0 { n - 1 } else { i - 1 })).filter(|&(i, j)| {
                let (a, b) = (self.y[i], self.y[j]);
                (a.min(b) <= py && a.max(b) >= py) || near(a) || near(b)
            }));
            if edges.is_empty() {
                continue;
            }
            pixels.extend(columns.clone().filter(|&column| self.covers(&edges, column as f64, py)).map(|column| column + width * row));
        }
        pixels
    }
}

/// The regions of an ImageScope XML document: for each polygon, the 1-based number of the
/// `Annotation` (layer) that holds it; and the microns per pixel, when the file says.
pub struct Annotations {
    pub polygons: Vec<(usize, Polygon)>,
    pub microns_per_pixel: Option<f64>,
}

/// The child elements of `node` named `tag`.
fn children<'a, 'input>(node: roxmltree::Node<'a, 'input>, tag: &'static str) -> Vec<roxmltree::Node<'a, 'input>> {
    node.children().filter(|c| c.has_tag_name(tag)).collect()
}

/// Reads `Annotations/Annotation/Regions/Region/Vertices/Vertex[@X, @Y]`, in document order.
/// Rectangles (Type 1) are polygons of four vertices; regions of fewer than three vertices
/// (rulers, arrows, points) cannot be filled and are an error naming the region.
pub fn parse_imagescope(text: &str) -> Result<Annotations, String> {
    let document = roxmltree::Document::parse(text).map_err(|e| format!("not valid XML: {e}"))?;
    let root = document.root_element();
    if !root.has_tag_name("Annotations") {
        return Err(format!("the root element is <{}>, not <Annotations> (Aperio ImageScope XML)", root.tag_name().name()));
    }
    let microns_per_pixel = root.attribute("MicronsPerPixel").and_then(|v| v.trim().parse::<f64>().ok()).filter(|v| *v > 0.0);
    let mut polygons = Vec::new();
    for (layer, annotation) in children(root, "Annotation").into_iter().enumerate() {
        let regions = children(annotation, "Regions").into_iter().flat_map(|r| children(r, "Region"));
        for region in regions {
            let id = region.attribute("Id").unwrap_or("?").to_string();
            let mut polygon = Polygon { x: Vec::new(), y: Vec::new() };
            for vertex in children(region, "Vertices").into_iter().flat_map(|v| children(v, "Vertex")) {
                let coordinate = |name: &str| -> Result<f64, String> {
                    let text = vertex.attribute(name).ok_or_else(|| format!("region {id}: a vertex has no {name} attribute"))?;
                    text.trim().parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| format!("region {id}: vertex {name}={text:?} is not a number"))
                };
                polygon.x.push(coordinate("X")?);
                polygon.y.push(coordinate("Y")?);
            }
            if polygon.x.len() < 3 {
                return Err(format!("region {id} has {} vertices; a polygon needs at least 3", polygon.x.len()));
            }
            polygons.push((layer + 1, polygon));
        }
    }
    Ok(Annotations { polygons, microns_per_pixel })
}

pub struct PolygonsToLabels(ToolSpec);

impl PolygonsToLabels {
    fn new() -> PolygonsToLabels {
        PolygonsToLabels(
            ToolSpec::new(
                "annotation.polygons_to_labels",
                Category::Annotation,
                "Polygons to instance labels",
                "Rasterises the polygons of an Aperio ImageScope XML file (MoNuSeg's annotation format: \
                 Annotation > Regions > Region > Vertices > Vertex X, Y in level-0 pixels) into a 2-D \
                 instance label image: region n (in file order) becomes label n, a pixel belongs to a \
                 polygon when its centre is inside or on the outline, exactly as \
                 skimage.draw.polygon(Y, X) decides, and where polygons overlap the later one wins. The \
                 `classes` output holds the number of the Annotation (layer) each pixel's region is in. \
                 The grid is the `like` image's (its first two axes and geometry) or width x height with \
                 the file's MicronsPerPixel as spacing.",
            )
            .param(ParamSpec::path("path", "The ImageScope XML file."))
            .param(ParamSpec::int("width", "Grid width in pixels when no `like` image is given.").range(0.0, 1e7).default(0))
            .param(ParamSpec::int("height", "Grid height in pixels when no `like` image is given.").range(0.0, 1e7).default(0))
            .input(PortSpec::new("like", PortType::Image, "Optional: the image the annotations were drawn on (its grid is used).").optional())
            .output(PortSpec::new("labels", PortType::LabelImage, "int32 instance labels, 0 for background."))
            .output(PortSpec::new("classes", PortType::LabelImage, "uint16 annotation layer of each labelled pixel."))
            .output(PortSpec::new("count", PortType::Scalar, "The number of polygons.")),
        )
    }

    /// The output grid: the `like` image's first two axes (with its 2-D geometry), or the size
    /// parameters with the file's pixel size.
    fn grid(&self, like: Option<Image>, params: &Params, microns_per_pixel: Option<f64>) -> Result<(usize, usize, Geometry), ToolError> {
        let id = &self.0.id;
        if let Some(like) = like {
            let size = like.size();
            if size.len() < 2 {
                return Err(failed(id, format!("the `like` image is {}-D; annotations need a 2-D grid", size.len())));
            }
            return Ok((size[0], size[1], like.geometry().with_dimension(2)));
        }
        let (width, height) = (params.int("width")? as usize, params.int("height")? as usize);
        if width == 0 || height == 0 {
            return Err(failed(id, format!("give a `like` image or both width and height (got {width} x {height})")));
        }
        let millimetres = microns_per_pixel.map_or(1.0, |m| m / 1000.0);
        let geometry = Geometry::new(vec![millimetres; 2], vec![0.0; 2], vec![1.0, 0.0, 0.0, 1.0]).map_err(|e| failed(id, e.to_string()))?;
        Ok((width, height, geometry))
    }
}

impl Tool for PolygonsToLabels {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let path = params.text("path")?;
        let text = std::fs::read_to_string(path).map_err(|e| failed(id, format!("cannot read {path}: {e}")))?;
        let annotations = parse_imagescope(&text).map_err(|e| failed(id, format!("{path}: {e}")))?;
        let like = match inputs.remove("like") {
            Some(Data::Image(image)) => Some(image),
            _ => None,
        };
        let (width, height, geometry) = self.grid(like, params, annotations.microns_per_pixel)?;
        if annotations.polygons.len() > i32::MAX as usize {
            return Err(failed(id, "more polygons than int32 labels"));
        }
        context.progress(0.1);
        let covered: Vec<Vec<usize>> = annotations.polygons.par_iter().map(|(_, polygon)| polygon.pixels(width, height)).collect();
        context.check_cancelled(id)?;
        let (mut labels, mut classes) = (vec![0i32; width * height], vec![0u16; width * height]);
        for (n, pixels) in covered.iter().enumerate() {
            let layer = annotations.polygons[n].0.min(u16::MAX as usize) as u16;
            for &p in pixels {
                labels[p] = n as i32 + 1;
                classes[p] = layer;
            }
        }
        context.log(&format!("{} polygons from {path} on a {width} x {height} grid", annotations.polygons.len()));
        context.progress(1.0);
        let image = |voxels: Result<Voxels, medas_image::ImageError>| -> Result<Image, ToolError> {
            let image = Image::new(voxels.map_err(|e| failed(id, e.to_string()))?, geometry.clone());
            image.map_err(|e| failed(id, e.to_string()))
        };
        Ok(Outputs::from([
            ("labels".to_string(), Data::Image(image(Voxels::from_fortran_vec(&[width, height], labels))?)),
            ("classes".to_string(), Data::Image(image(Voxels::from_fortran_vec(&[width, height], classes))?)),
            ("count".to_string(), Data::Scalar(annotations.polygons.len() as f64)),
        ]))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(PolygonsToLabels::new()) } }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixels_on_the_outline_and_vertices_are_covered() {
        // The square with corners (1,1) and (3,3): all nine centres from 1 to 3 are in or on it.
        let square = Polygon { x: vec![1.0, 3.0, 3.0, 1.0], y: vec![1.0, 1.0, 3.0, 3.0] };
        let mut pixels = square.pixels(5, 5);
        pixels.sort();
        assert_eq!(pixels, vec![6, 7, 8, 11, 12, 13, 16, 17, 18]);
        // A triangle: (0,0), (4,0), (0,4); the hypotenuse x + y = 4 is on the outline.
        let triangle = Polygon { x: vec![0.0, 4.0, 0.0], y: vec![0.0, 0.0, 4.0] };
        assert_eq!(triangle.pixels(6, 6).len(), 15);
        // Outside the grid: nothing, and no panic.
        let far = Polygon { x: vec![-9.0, -5.0, -7.0], y: vec![1.0, 1.0, 3.0] };
        assert!(far.pixels(4, 4).is_empty());
    }

    #[test]
    fn imagescope_xml_is_read_in_order_with_layers() {
        let xml = r#"<?xml version="1.0"?><Annotations MicronsPerPixel="0.252"><Annotation Id="1"><Regions>
            <Region Id="7"><Vertices><Vertex X="1" Y="2"/><Vertex X="3.5" Y="2"/><Vertex X="2" Y="4"/></Vertices></Region>
            </Regions></Annotation><Annotation Id="2"><Regions><Region Id="9"><Vertices>
            <Vertex X="0" Y="0" Z="0"/><Vertex X="1" Y="0"/><Vertex X="1" Y="1"/></Vertices></Region></Regions></Annotation></Annotations>"#;
        let read = parse_imagescope(xml).unwrap();
        assert_eq!(read.microns_per_pixel, Some(0.252));
        assert_eq!(read.polygons.len(), 2);
        assert_eq!(read.polygons[0], (1, Polygon { x: vec![1.0, 3.5, 2.0], y: vec![2.0, 2.0, 4.0] }));
        assert_eq!(read.polygons[1].0, 2);
        let line = r#"<Annotations><Annotation><Regions><Region Id="3"><Vertices><Vertex X="1" Y="2"/><Vertex X="3" Y="2"/></Vertices></Region></Regions></Annotation></Annotations>"#;
        assert_eq!(parse_imagescope(line).err().unwrap(), "region 3 has 2 vertices; a polygon needs at least 3");
        let bad = r#"<Annotations><Annotation><Regions><Region Id="4"><Vertices><Vertex X="a" Y="2"/></Vertices></Region></Regions></Annotation></Annotations>"#;
        assert_eq!(parse_imagescope(bad).err().unwrap(), "region 4: vertex X=\"a\" is not a number");
        assert!(parse_imagescope("<svg/>").err().unwrap().contains("not <Annotations>"));
        assert!(parse_imagescope("<Annotations>").err().unwrap().starts_with("not valid XML"));
    }
}
