"""Cut one large annotated image and its mask into square tiles: a folder dataset for unettui.

Usage: python scripts/tile_pairs.py IMAGE MASK OUT_DIR [--tile 64]
Writes OUT_DIR/images/tile_RRR_CCC.png and OUT_DIR/masks/tile_RRR_CCC.png (masks 0/255).
Used for the real-data check of docs/experiments.md on the nuclei image and labels that ship in the stardist wheel.
"""

import argparse
from pathlib import Path

import imageio.v3 as iio
import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("image", type=Path)
    ap.add_argument("mask", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--tile", type=int, default=64)
    args = ap.parse_args()
    img, mask = iio.imread(args.image), iio.imread(args.mask)
    if img.shape[:2] != mask.shape[:2]:
        raise SystemExit(f"error: {args.image} is {img.shape[:2]} but {args.mask} is {mask.shape[:2]}")
    img = img.astype(np.float64)
    img = ((img - img.min()) / max(img.max() - img.min(), 1e-12) * 255).astype(np.uint8)
    fg = ((mask > 0) if mask.ndim == 2 else (mask > 0).any(axis=-1)).astype(np.uint8) * 255
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    (args.out / "masks").mkdir(parents=True, exist_ok=True)
    t, n = args.tile, 0
    for r in range(0, img.shape[0] - t + 1, t):
        for c in range(0, img.shape[1] - t + 1, t):
            name = f"tile_{r:04d}_{c:04d}.png"
            iio.imwrite(args.out / "images" / name, img[r : r + t, c : c + t])
            iio.imwrite(args.out / "masks" / name, fg[r : r + t, c : c + t])
            n += 1
    print(f"wrote {n} pairs of {t}x{t} tiles to {args.out}")


if __name__ == "__main__":
    main()
