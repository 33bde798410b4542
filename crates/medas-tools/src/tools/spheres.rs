//! `annotation.points_to_spheres`: world-coordinate point lists with diameters (LUNA16's
//! `annotations.csv`) become voxel centres and sphere masks on an image's grid.

use super::mask::failed;
use crate::context::Context;
use crate::data::{Data, Inputs, Outputs, take_image};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, ParamSpec, PortSpec, PortType, ToolSpec};
use medas_image::{Geometry, Image, Voxels, keys};
use rayon::prelude::*;
use std::sync::Arc;

/// One finding: a centre in LPS millimetres (the image's physical space) and a diameter in mm.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub centre: [f64; 3],
    pub diameter: f64,
}

const COLUMNS: [&str; 5] = ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"];

/// The rows of a LUNA16-style CSV (header `seriesuid,coordX,coordY,coordZ,diameter_mm`, any
/// column order, other columns ignored) for the series `uid`, or every row when `uid` is None.
pub fn read_findings(text: &str, uid: Option<&str>) -> Result<Vec<Finding>, String> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
    let header = reader.headers().map_err(|e| format!("cannot read the header: {e}"))?.clone();
    let column = |name: &str| header.iter().position(|h| h == name).ok_or_else(|| format!("no {name:?} column (the header must name {})", COLUMNS.join(", ")));
    let at: Vec<usize> = COLUMNS.iter().map(|name| column(name)).collect::<Result<_, _>>()?;
    let mut findings = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let line = row + 2;
        let record = record.map_err(|e| format!("line {line}: {e}"))?;
        if uid.is_some_and(|uid| record.get(at[0]) != Some(uid)) {
            continue;
        }
        let number = |n: usize| -> Result<f64, String> {
            let text = record.get(at[n]).unwrap_or("");
            text.parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| format!("line {line}: {} {text:?} is not a number", COLUMNS[n]))
        };
        let finding = Finding { centre: [number(1)?, number(2)?, number(3)?], diameter: number(4)? };
        if finding.diameter < 0.0 {
            return Err(format!("line {line}: diameter_mm {} is negative", finding.diameter));
        }
        findings.push(finding);
    }
    Ok(findings)
}

/// The Fortran-order indices of the voxels whose centres lie within `radius` mm of `centre`
/// (inclusive), on a grid of `size` with `geometry` (orthonormal direction).
fn ball_voxels(geometry: &Geometry, size: [usize; 3], centre: [f64; 3], radius: f64) -> Vec<usize> {
    let (spacing, origin, direction) = (geometry.spacing(), geometry.origin(), geometry.direction());
    let index = geometry.point_to_index(&centre);
    // An orthonormal direction moves a point at most `radius` along any axis's unit vector.
    if (0..3).any(|a| index[a] + radius / spacing[a] < 0.0 || index[a] - radius / spacing[a] > size[a] as f64 - 1.0) {
        return Vec::new();
    }
    // Inside the grid on every axis (checked above), so both ends lie in 0..size.
    let range = |a: usize| {
        let reach = radius / spacing[a];
        let low = (index[a] - reach).ceil().max(0.0);
        let high = (index[a] + reach).floor().min(size[a] as f64 - 1.0);
        (low as usize)..=(high as usize)
    };
    let mut voxels = Vec::new();
    for k in range(2) {
        for j in range(1) {
            for i in range(0) {
                let step = [i as f64 * spacing[0], j as f64 * spacing[1], k as f64 * spacing[2]];
                let squared: f64 = (0..3)
                    .map(|r| {
                        let point = origin[r] + direction[3 * r] * step[0] + direction[3 * r + 1] * step[1] + direction[3 * r + 2] * step[2];
                        (point - centre[r]).powi(2)
                    })
                    .sum();
                if squared.sqrt() <= radius {
                    voxels.push(i + size[0] * (j + size[1] * k));
                }
            }
        }
    }
    voxels
}

pub struct PointsToSpheres(ToolSpec);

impl PointsToSpheres {
    fn new() -> PointsToSpheres {
        PointsToSpheres(
            ToolSpec::new(
                "annotation.points_to_spheres",
                Category::Annotation,
                "Points to spheres",
                "Reads findings given in world coordinates with a diameter (LUNA16 annotations.csv: \
                 seriesuid, coordX, coordY, coordZ, diameter_mm, in the physical space of the scan's \
                 MetaImage, i.e. LPS mm) and marks them on the `like` image's 3-D grid: finding n (in \
                 file order) paints label n on every voxel whose centre lies within diameter/2 mm of its \
                 centre (later findings win where spheres overlap), and the voxel nearest the centre in \
                 `centres`. Rows are those of series_uid, or of the image's Series Instance UID when \
                 series_uid is empty and the image has one, or all rows. Findings outside the grid are \
                 logged and left out.",
            )
            .param(ParamSpec::path("path", "The CSV file."))
            .param(ParamSpec::string("series_uid", "Use the rows of this series (empty: the image's own UID, or every row).").default(""))
            .input(PortSpec::new("like", PortType::Image, "The 3-D image the coordinates refer to."))
            .output(PortSpec::new("labels", PortType::LabelImage, "int32 spheres, finding n painted n."))
            .output(PortSpec::new("centres", PortType::LabelImage, "int32: the voxel nearest finding n's centre is n."))
            .output(PortSpec::new("count", PortType::Scalar, "The findings read for the series (inside the grid or not).")),
        )
    }
}

impl Tool for PointsToSpheres {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let like = take_image(&mut inputs, id, "like")?;
        let size: [usize; 3] = like.size().try_into().map_err(|_| failed(id, format!("the `like` image must be 3-D, it is {}-D", like.size().len())))?;
        let path = params.text("path")?;
        let text = std::fs::read_to_string(path).map_err(|e| failed(id, format!("cannot read {path}: {e}")))?;
        let own_uid = like.metadata.get(keys::SERIES_UID).and_then(|v| v.as_str()).map(str::to_string);
        let uid = params.optional_text("series_uid")?.map(str::to_string).or(own_uid);
        let findings = read_findings(&text, uid.as_deref()).map_err(|e| failed(id, format!("{path}: {e}")))?;
        let geometry = like.geometry();
        let spheres: Vec<Vec<usize>> = findings.par_iter().map(|f| ball_voxels(geometry, size, f.centre, f.diameter / 2.0)).collect();
        context.check_cancelled(id)?;
        let (mut labels, mut centres) = (vec![0i32; size.iter().product()], vec![0i32; size.iter().product()]);
        for (n, (finding, voxels)) in findings.iter().zip(&spheres).enumerate() {
            let label = n as i32 + 1;
            let nearest: Vec<f64> = geometry.point_to_index(&finding.centre).iter().map(|c| c.round()).collect();
            if nearest.iter().zip(size).any(|(&c, n)| c < 0.0 || c >= n as f64) {
                context.log(&format!("finding {label} at {:?} mm lies outside the image", finding.centre));
            } else {
                centres[nearest[0] as usize + size[0] * (nearest[1] as usize + size[1] * nearest[2] as usize)] = label;
            }
            voxels.iter().for_each(|&v| labels[v] = label);
        }
        context.log(&format!("{} findings{} from {path}", findings.len(), uid.map(|u| format!(" of series {u}")).unwrap_or_default()));
        let image = |values: Vec<i32>| -> Result<Image, ToolError> {
            let voxels = Voxels::from_fortran_vec(&size, values).map_err(|e| failed(id, e.to_string()))?;
            like.with_voxels(voxels).map_err(|e| failed(id, e.to_string()))
        };
        Ok(Outputs::from([
            ("labels".to_string(), Data::Image(image(labels)?)),
            ("centres".to_string(), Data::Image(image(centres)?)),
            ("count".to_string(), Data::Scalar(findings.len() as f64)),
        ]))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(PointsToSpheres::new()) } }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_are_read_by_column_name_and_series() {
        let csv = "seriesuid,coordX,coordY,coordZ,diameter_mm\n1.2.3,-10.5,20,30,5.25\n9.9,1,2,3,4\n1.2.3, 0 ,0,0,0\n";
        let all = read_findings(csv, None).unwrap();
        assert_eq!(all.len(), 3);
        let ours = read_findings(csv, Some("1.2.3")).unwrap();
        assert_eq!(ours, vec![Finding { centre: [-10.5, 20.0, 30.0], diameter: 5.25 }, Finding { centre: [0.0; 3], diameter: 0.0 }]);
        let reordered = "diameter_mm,coordZ,coordY,coordX,seriesuid,extra\n2,3,2,1,a,x\n";
        assert_eq!(read_findings(reordered, None).unwrap(), vec![Finding { centre: [1.0, 2.0, 3.0], diameter: 2.0 }]);
        assert_eq!(read_findings("x,y\n", None).unwrap_err(), "no \"seriesuid\" column (the header must name seriesuid, coordX, coordY, coordZ, diameter_mm)");
        assert_eq!(read_findings("seriesuid,coordX,coordY,coordZ,diameter_mm\na,1,b,3,4\n", None).unwrap_err(), "line 2: coordY \"b\" is not a number");
        assert_eq!(read_findings("seriesuid,coordX,coordY,coordZ,diameter_mm\na,1,2,3,-4\n", None).unwrap_err(), "line 2: diameter_mm -4 is negative");
    }

    #[test]
    fn a_ball_on_an_anisotropic_grid() {
        let geometry = Geometry::new(vec![1.0, 1.0, 2.0], vec![0.0; 3], vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]).unwrap();
        // Radius 2 mm around voxel (5,5,5) = (5,5,10) mm: 2 slices away on k is 4 mm, outside.
        let voxels = ball_voxels(&geometry, [11, 11, 11], [5.0, 5.0, 10.0], 2.0);
        let on_k = |k: usize| voxels.iter().filter(|&&v| v / 121 == k).count();
        assert_eq!((on_k(4), on_k(5), on_k(6)), (1, 13, 1));
        assert!(ball_voxels(&geometry, [11, 11, 11], [-50.0, 5.0, 10.0], 2.0).is_empty());
    }
}
