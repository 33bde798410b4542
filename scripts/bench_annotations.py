"""The Python half of scripts/bench-annotations.

write: the inputs both sides convert, from real data: a 4-class label image on lung1's grid
(HU bands, uint8 NRRD), an Aperio ImageScope XML with the outline of every stardist nucleus
(skimage find_contours, the tile repeated 4 x 4 so that the canvas holds about as many nuclei
as a MoNuSeg tile), and a LUNA16-style CSV of 60 findings inside lung1 (seeded).

compare: times what a Python user writes for each conversion and prints MEDAS's time as a
fraction of it: a numpy lookup table, numpy.eye one-hot, ElementTree + skimage.draw.polygon,
and spheres painted with numpy from SimpleITK's point-to-index mapping (the reference of
tests/annotations.rs)."""
import csv
import json
import sys
import xml.etree.ElementTree as ET

import numpy as np
import SimpleITK as sitk
import tifffile
from skimage import draw, measure

from bench_io import print_ratios  # the ratio table every benchmark prints

TILES = 4


def write(ct_path, mask_path, labels_path, xml_path, csv_path):
    ct = sitk.ReadImage(ct_path)
    bands = np.digitize(sitk.GetArrayFromImage(ct), [-400, 0, 300]).astype(np.uint8)
    labels = sitk.GetImageFromArray(bands)
    labels.CopyInformation(ct)
    sitk.WriteImage(labels, labels_path, useCompression=False)

    mask = tifffile.imread(mask_path)
    h, w = mask.shape
    outlines = []
    for label in np.unique(mask)[1:]:
        padded = np.pad(mask == label, 1)
        outlines.append(max(measure.find_contours(padded.astype(float), 0.5), key=len)[:-1] - 1.0)
    with open(xml_path, "w") as f:
        f.write('<?xml version="1.0"?>\n<Annotations MicronsPerPixel="0.5">\n<Annotation Id="1"><Regions>\n')
        region = 0
        for ty in range(TILES):
            for tx in range(TILES):
                for contour in outlines:
                    region += 1
                    vertices = "".join(f'<Vertex X="{float(c + tx * w)!r}" Y="{float(r + ty * h)!r}" Z="0"/>' for r, c in contour)
                    f.write(f'<Region Id="{region}" Type="0"><Vertices>{vertices}</Vertices></Region>\n')
        f.write("</Regions></Annotation>\n</Annotations>\n")

    rng = np.random.default_rng(4)
    size = np.array(ct.GetSize())
    with open(csv_path, "w") as f:
        f.write("seriesuid,coordX,coordY,coordZ,diameter_mm\n")
        for _ in range(60):
            index = rng.uniform(0.1, 0.9, 3) * (size - 1)
            x, y, z = ct.TransformContinuousIndexToPhysicalPoint(index.tolist())
            f.write(f"lung1,{x!r},{y!r},{z!r},{float(rng.uniform(4, 30))!r}\n")
    print(json.dumps({"width": w * TILES, "height": h * TILES, "polygons": region}))


def polygons(xml_path, width, height):
    labels = np.zeros((height, width), np.int32)
    for n, region in enumerate(ET.parse(xml_path).getroot().iter("Region"), 1):
        points = np.array([(float(v.get("Y")), float(v.get("X"))) for v in region.iter("Vertex")])
        rr, cc = draw.polygon(points[:, 0], points[:, 1], shape=labels.shape)
        labels[rr, cc] = n
    return labels


def spheres(ct, csv_path):
    size = np.array(ct.GetSize())
    origin, spacing = np.array(ct.GetOrigin()), np.array(ct.GetSpacing())
    direction = np.array(ct.GetDirection()).reshape(3, 3)
    painted = np.zeros(ct.GetSize(), np.int32)  # index order i, j, k
    with open(csv_path) as f:
        rows = [r for r in csv.DictReader(f) if r["seriesuid"] == "lung1"]
    for label, row in enumerate(rows, 1):
        centre = np.array([float(row[k]) for k in ("coordX", "coordY", "coordZ")])
        d = float(row["diameter_mm"])
        index = np.array(ct.TransformPhysicalPointToContinuousIndex(centre.tolist()))
        reach = d / 2 / spacing
        lo = np.maximum(np.ceil(index - reach), 0).astype(int)
        hi = np.minimum(np.floor(index + reach), size - 1).astype(int)
        if np.any(hi < lo):
            continue
        i, j, k = np.meshgrid(*[np.arange(a, b + 1) for a, b in zip(lo, hi)], indexing="ij")
        points = origin + (np.stack([i, j, k], -1) * spacing) @ direction.T
        inside = np.sqrt(((points - centre) ** 2).sum(-1)) <= d / 2
        painted[i[inside], j[inside], k[inside]] = label
    return painted


def compare(labels_path, ct_path, xml_path, width, height, csv_path, ours_json, repeats):
    ours = json.load(open(ours_json))
    bands = sitk.GetArrayFromImage(sitk.ReadImage(labels_path))
    ct = sitk.ReadImage(ct_path)
    lut = np.arange(256, dtype=np.int32)
    lut[[1, 2, 3]] = [5, 7, 0]
    rows = [
        ("remap 1:5, 2:7, 3:0", "numpy lookup table", "remap", lambda: lut[bands]),
        ("one-hot, 4 classes", "numpy.eye(4)[labels]", "one_hot", lambda: np.eye(4, dtype=np.uint8)[bands]),
        ("ImageScope XML -> labels", "ElementTree + draw.polygon", "polygons", lambda: polygons(xml_path, width, height)),
        ("60 findings -> spheres", "numpy, as tests/annotations", "spheres", lambda: spheres(ct, csv_path)),
    ]
    size_text = "x".join(str(n) for n in ours["size"])
    print(f"labels {size_text} uint8 (lung1 grid), nuclei canvas {width}x{height}, best of {repeats}, MEDAS {ours['threads']} threads")
    print_ratios(rows, ours, repeats, widths=(26, 30))


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(*sys.argv[2:7])
    else:
        a = sys.argv[2:]
        compare(a[0], a[1], a[2], int(a[3]), int(a[4]), a[5], a[6], int(a[7]))
