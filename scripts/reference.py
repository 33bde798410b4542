#!/usr/bin/env python3
"""Reads an image with a reader of record and writes what it saw, for the Rust tests to compare.

usage: reference.py READER PATH OUTDIR [OPTION=VALUE ...]

Writes OUTDIR/meta.json (shape in index order i, j, k[, t][, components], dtype, spacing,
origin and row-major direction in LPS mm, as SimpleITK reports them) and OUTDIR/voxels.npy
(the voxel array in index order, i.e. axis 0 = i). Readers:
  sitk          SimpleITK.ReadImage
  sitk-series   SimpleITK.ImageSeriesReader over a folder (first series, or series=UID)
  nibabel       nibabel.load, scaled data (dataobj), affine converted RAS -> LPS
  pydicom       pydicom.dcmread + pixel_array (+ modality LUT unless raw=1)
  numpy         numpy.load (.npy, or .npz with key=NAME)
  tifffile      tifffile.imread (page=N, level=N for pyramids)
  pillow        PIL.Image.open (libjpeg-turbo for JPEG), as RGB/L/LA/RGBA arrays
  openslide     OpenSlide read_region(level=N, x=, y= in level-0 pixels, w=, h= in level
                pixels), flattened over white (transparent outside-the-slide pixels -> 255)
"""
import json
import os
import sys

import numpy as np


def sitk_meta(img, arr):
    n = img.GetDimension()
    comps = img.GetNumberOfComponentsPerPixel()
    # GetArrayFromImage gives [.., z, y, x(, c)]; reverse the spatial axes to index order.
    axes = list(range(n))[::-1] + ([n] if comps > 1 else [])
    arr = np.transpose(arr, axes)
    return arr, {
        "spacing": list(img.GetSpacing()),
        "origin": list(img.GetOrigin()),
        "direction": list(img.GetDirection()),
        "components": comps,
    }


def read_sitk(path, opts):
    import SimpleITK as sitk

    img = sitk.ReadImage(path)
    return sitk_meta(img, sitk.GetArrayFromImage(img))


def read_sitk_series(path, opts):
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    uids = reader.GetGDCMSeriesIDs(path)
    uid = opts.get("series", uids[0] if uids else "")
    files = reader.GetGDCMSeriesFileNames(path, uid)
    reader.SetFileNames(files)
    img = reader.Execute()
    return sitk_meta(img, sitk.GetArrayFromImage(img))


def read_nibabel(path, opts):
    import nibabel as nib

    img = nib.load(path)
    arr = np.asanyarray(img.dataobj)
    aff = np.diag([-1.0, -1.0, 1.0, 1.0]) @ img.affine  # RAS -> LPS
    zooms = np.sqrt((aff[:3, :3] ** 2).sum(axis=0))
    direction = aff[:3, :3] / zooms
    return arr, {
        "spacing": [float(z) for z in zooms],
        "origin": [float(v) for v in aff[:3, 3]],
        "direction": [float(v) for v in direction.reshape(-1)],
        "affine_lps": [float(v) for v in aff.reshape(-1)],
        "zooms": [float(z) for z in img.header.get_zooms()],
        "components": 1,
    }


def read_pydicom(path, opts):
    import pydicom
    from pydicom.pixels import apply_modality_lut

    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    if opts.get("raw") != "1":
        arr = apply_modality_lut(arr, ds)
    spp = int(getattr(ds, "SamplesPerPixel", 1))
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    # pixel_array is [frame,] row, column[, sample]; index order is column, row[, frame].
    spatial = 3 if frames > 1 else 2
    axes = [2, 1, 0] if frames > 1 else [1, 0]
    if spp > 1:
        axes.append(spatial)
    arr = np.transpose(arr, axes)
    meta = {"components": spp, "photometric": str(getattr(ds, "PhotometricInterpretation", "")),
            "transfer_syntax": str(ds.file_meta.TransferSyntaxUID)}
    if "PixelSpacing" in ds:
        meta["pixel_spacing"] = [float(v) for v in ds.PixelSpacing]
    return arr, meta


def read_numpy(path, opts):
    data = np.load(path)
    if path.endswith(".npz"):
        data = data[opts.get("key", list(data.keys())[0])]
    return data, {"components": 1}


def read_tifffile(path, opts):
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if "level" in opts:
            arr = tif.series[0].levels[int(opts["level"])].asarray()
        else:
            arr = tif.pages[int(opts.get("page", 0))].asarray()
    comps = arr.shape[2] if arr.ndim == 3 else 1
    axes = [1, 0] + ([2] if arr.ndim == 3 else [])
    return np.transpose(arr, axes), {"components": comps}


def read_pillow(path, opts):
    from PIL import Image

    arr = np.asarray(Image.open(path))
    comps = arr.shape[2] if arr.ndim == 3 else 1
    axes = [1, 0] + ([2] if arr.ndim == 3 else [])
    return np.transpose(arr, axes), {"components": comps}


def read_openslide(path, opts):
    import openslide

    slide = openslide.OpenSlide(path)
    level = int(opts.get("level", 0))
    x, y = int(opts.get("x", 0)), int(opts.get("y", 0))
    w = int(opts.get("w", slide.level_dimensions[level][0]))
    h = int(opts.get("h", slide.level_dimensions[level][1]))
    rgba = np.asarray(slide.read_region((x, y), level, (w, h))).astype(np.float64)
    # OpenSlide returns premultiplied-then-unpremultiplied RGBA; composite over white.
    alpha = rgba[..., 3:4] / 255.0
    rgb = np.rint(rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    meta = {"components": 3, "level_count": slide.level_count,
            "level_dimensions": [list(d) for d in slide.level_dimensions],
            "level_downsamples": list(slide.level_downsamples),
            "properties": dict(slide.properties)}
    return np.transpose(rgb, [1, 0, 2]), meta


READERS = {
    "sitk": read_sitk,
    "sitk-series": read_sitk_series,
    "nibabel": read_nibabel,
    "pydicom": read_pydicom,
    "numpy": read_numpy,
    "tifffile": read_tifffile,
    "pillow": read_pillow,
    "openslide": read_openslide,
}


def main():
    reader, path, outdir = sys.argv[1:4]
    opts = dict(a.split("=", 1) for a in sys.argv[4:])
    arr, meta = READERS[reader](path, opts)
    arr = np.asarray(arr)
    if arr.dtype.byteorder not in ("=", "|"):
        arr = arr.astype(arr.dtype.newbyteorder("="))
    os.makedirs(outdir, exist_ok=True)
    # Store in index order with axis 0 fastest (Fortran), the layout of the medical files.
    np.save(os.path.join(outdir, "voxels.npy"), np.asfortranarray(arr))
    meta.update({"reader": reader, "shape": list(arr.shape), "dtype": str(arr.dtype)})
    if arr.size and np.issubdtype(arr.dtype, np.number):
        meta["min"] = float(np.nanmin(arr))
        meta["max"] = float(np.nanmax(arr))
    with open(os.path.join(outdir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)


if __name__ == "__main__":
    main()
