"""Times OpenSlide tiling with the tissue rule of pathology.tile_slide on the slide
scripts/bench-wsi tiled with MEDAS and prints MEDAS's time as a fraction of it."""
import json
import math
import os
import sys
from importlib.metadata import version

import numpy as np
import openslide
from skimage import color
from skimage.filters import threshold_otsu

from bench_io import print_ratios


def tile(path, tile_size, min_tissue=0.5):
    """Grid at level 0, tissue share of the smallest level's Otsu mask under each tile (pixel
    centres inside its footprint), read_region of every kept tile as an RGB array."""
    slide = openslide.OpenSlide(path)
    mask_level = slide.level_count - 1
    mw, mh = slide.level_dimensions[mask_level]
    grey = color.rgb2gray(np.asarray(slide.read_region((0, 0), mask_level, (mw, mh)).convert("RGB")))
    mask = grey < threshold_otsu(grey)
    scale = 1.0 / slide.level_downsamples[mask_level]
    w, h = slide.level_dimensions[0]
    tiles = []
    for y in range(0, h - tile_size + 1, tile_size):
        for x in range(0, w - tile_size + 1, tile_size):
            x0, x1 = (min(max(math.ceil(p * scale - 0.5), 0), mw) for p in (x, x + tile_size))
            y0, y1 = (min(max(math.ceil(p * scale - 0.5), 0), mh) for p in (y, y + tile_size))
            if mask[y0:y1, x0:x1].mean() >= min_tissue:
                tiles.append(np.asarray(slide.read_region((x, y), 0, (tile_size, tile_size)).convert("RGB")))
    return tiles


def main():
    path, work, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ours = json.load(open(f"{work}/medas.json"))
    count = len(tile(path, 256))
    assert count == ours["tools"]["tile_slide"]["tiles"], (count, ours["tools"]["tile_slide"]["tiles"])
    slide = openslide.OpenSlide(path)
    print(f"{os.path.basename(path)} level 0 {slide.dimensions[0]}x{slide.dimensions[1]}, 256-pixel tiles, "
          f"{count} kept; best of {repeats}, {os.cpu_count()} cores, MEDAS {ours['threads']} threads, "
          f"openslide-python {version('openslide-python')}, openslide {openslide.__library_version__}")
    rows = [("tile level 0 + tissue", "read_region loop + Otsu mask", "tile_slide", lambda: tile(path, 256))]
    print_ratios(rows, ours, repeats)


if __name__ == "__main__":
    main()
