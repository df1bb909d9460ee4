"""Native-resolution training (patch_size) against the resize path (image_size) on a real image, several seeds.

Usage: python scripts/real_data_native.py --wheel-dir DIR --out DIR [--seeds 0,1,2] [--epochs 200] [--resize 128,64]

The data: the 512x512 nuclei image from DSB2018 and its instance-label mask (foreground: label > 0) that ship in
the stardist 0.9.2 wheel (stardist/data/images/img2d.tif, mask2d.tif), read from the wheel with zipfile and
tifffile; stardist itself is never installed. Get the wheel offline-friendly with
    pip download stardist==0.9.2 --no-deps -d DIR

The split: the LEFT part of the image (columns 0..319) is cut into 4 tiles of 128 rows x 320 columns, the training
folder OUT/train/{images,masks} (train_fraction 0.75: 3 tiles train, 1 validates); the RIGHT part (columns
320..511, one 512x192 image) is the held-out folder OUT/heldout/{images,masks}, never trained or validated on. The
same right part cut into 4 tiles of 128x192 is OUT/heldout_tiles: the same pixels, scored again, because a resize
run shrinks each image by its own long side (a training tile 320 -> image_size, the 512x192 image 512 -> image_size)
and the tiles show how much of its held-out score is that difference of scale.
Images are written as PNG (8-bit when the values fit in 0..255, else 16-bit), masks as 0/255.

The experiments (OUT/project/experiments.toml), per seed: resize (patch_size 0, image_size N for each N of
--resize) and native (patch_size = --patch), the same everything else. Each is trained with
`unettui run --headless --threads 1 --pack off --only ID` and scored on the held-out folder with
`unettui evaluate ID OUT/heldout --json` (the images' own pixels), and on its own validation tile at its own pixels
(`unettui evaluate ID --split val --json`: a resize run records its val Dice on the letterboxed image_size^2
pixels). The table (mode, seed, best val Dice as recorded, val Dice on the tile's own pixels, held-out Dice and
HD95, training wall time; then per mode the mean and the range over the seeds) is printed and written to
OUT/results.json and OUT/results.md. Rerun on the same OUT, finished runs are not trained again (the files are
rewritten only when their content differs, so the dataset keeps its identity) and are evaluated again.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tifffile

WHEEL_GLOB = "stardist-0.9.2-*.whl"
IMAGE_MEMBER = "stardist/data/images/img2d.tif"
MASK_MEMBER = "stardist/data/images/mask2d.tif"
SPLIT_COLUMN = 320  # columns [0, 320) train and validate; [320, W) are held out
TILE_ROWS = 128


def find_wheel(wheel_dir: Path) -> Path:
    found = sorted(Path(wheel_dir).glob(WHEEL_GLOB))
    if not found:
        raise SystemExit(f"error: no {WHEEL_GLOB} in {wheel_dir}; get it with:\n"
                         f"  pip download stardist==0.9.2 --no-deps -d {wheel_dir}")
    return found[-1]


def read_from_wheel(wheel: Path) -> tuple[np.ndarray, np.ndarray]:
    """The 2-D image and its instance-label mask, read from the wheel without installing it."""
    with zipfile.ZipFile(wheel) as z:
        image = tifffile.imread(io.BytesIO(z.read(IMAGE_MEMBER)))
        mask = tifffile.imread(io.BytesIO(z.read(MASK_MEMBER)))
    return image, mask


def png_ready(image: np.ndarray) -> np.ndarray:
    """The image as PNG can hold it: uint8 when every value is an integer in 0..255 (lossless), else uint16 (kept
    as it is when it already is, else min-max scaled to 0..65535)."""
    if np.issubdtype(image.dtype, np.integer) and image.min() >= 0 and image.max() <= 255:
        return image.astype(np.uint8)
    if image.dtype == np.uint16:
        return image
    f = image.astype(np.float64)
    return np.round((f - f.min()) / max(f.max() - f.min(), 1e-12) * 65535).astype(np.uint16)


def write_png(path: Path, array: np.ndarray) -> None:
    """Write ``array`` unless the file already holds exactly it: a rerun keeps the files' times, so unettui sees the
    same dataset and does not train the finished runs again."""
    if path.exists():
        old = iio.imread(path)
        if old.dtype == array.dtype and old.shape == array.shape and np.array_equal(old, array):
            return
    iio.imwrite(path, array)


def tile_regions(height: int, width: int, split_column: int = SPLIT_COLUMN, tile_rows: int = TILE_ROWS
                 ) -> tuple[list[tuple[slice, slice]], tuple[slice, slice]]:
    """The training tiles (row bands of ``tile_rows`` x columns [0, split_column)) and the held-out region
    (every row x columns [split_column, width)), as (rows, columns) slices."""
    if not 0 < split_column < width:
        raise ValueError(f"split column {split_column} must be inside the image's width {width}")
    if height % tile_rows:
        raise ValueError(f"{height} rows do not cut into tiles of {tile_rows} rows")
    tiles = [(slice(r, r + tile_rows), slice(0, split_column)) for r in range(0, height, tile_rows)]
    return tiles, (slice(0, height), slice(split_column, width))


def build_dataset(image: np.ndarray, mask: np.ndarray, out: Path, split_column: int = SPLIT_COLUMN,
                  tile_rows: int = TILE_ROWS) -> dict:
    """Write OUT/train/{images,masks}/tile_RRRR.png (the left tiles), OUT/heldout/{images,masks}/right.png (the
    right part) and OUT/heldout_tiles/{images,masks}/right_RRRR.png (the right part in row bands of ``tile_rows``);
    masks binary 0/255 (label > 0). Returns what was written: {"train": [...], "heldout": [...], "heldout_tiles":
    [...]}, each entry {"name", "rows": [start, stop], "columns": [start, stop], "shape": [h, w], "foreground"}."""
    if image.ndim != 2 or image.shape != mask.shape:
        raise ValueError(f"expected a 2-D image and mask of one size, got {image.shape} and {mask.shape}")
    img = png_ready(image)
    fg = ((mask > 0) * 255).astype(np.uint8)
    tiles, (hr, hc) = tile_regions(*image.shape, split_column=split_column, tile_rows=tile_rows)
    written: dict[str, list[dict]] = {"train": [], "heldout": [], "heldout_tiles": []}
    parts = [("train", f"tile_{rs.start:04d}", rs, cs) for rs, cs in tiles] + [("heldout", "right", hr, hc)]
    parts += [("heldout_tiles", f"right_{rs.start:04d}", rs, hc) for rs, _ in tiles]
    for folder, name, rs, cs in parts:
        for sub in ("images", "masks"):
            (out / folder / sub).mkdir(parents=True, exist_ok=True)
        write_png(out / folder / "images" / f"{name}.png", img[rs, cs])
        write_png(out / folder / "masks" / f"{name}.png", fg[rs, cs])
        written[folder].append({"name": name, "rows": [rs.start, rs.stop], "columns": [cs.start, cs.stop],
                                "shape": list(img[rs, cs].shape), "foreground": float((fg[rs, cs] > 0).mean())})
    return written


def experiments_toml(seeds: list[int], resize_sizes: list[int], patch: int, epochs: int, batch: int = 8,
                     resize_batch: int = 3, suffix: str = "") -> tuple[str, list[dict]]:
    """The project's experiments.toml and its experiments in training order: [{"id", "mode", "seed"}]. The resize
    runs train on whole tiles, of which there are only 3 (unettui refuses a batch larger than the training set):
    their batch is ``resize_batch``; the native runs' batches of ``batch`` patches."""
    lines = [
        "# written by scripts/real_data_native.py: resize against native resolution on a real image",
        "[defaults]",
        'dataset = "../train"',
        "data_seed = 0",
        "train_fraction = 0.75",
        "base_channels = 16",
        "depth = 4",
        f"batch_size = {batch}",
        f"epochs = {epochs}",
        'device = "cpu"',
        "",
    ]
    runs = []
    for seed in seeds:
        entries = [(f"resize{n}", {"image_size": n, "batch_size": resize_batch}) for n in resize_sizes]
        entries.append((f"native{patch}", {"patch_size": patch}))
        for mode, keys in entries:
            rid = f"{mode}{suffix}-s{seed}"
            lines += ["[[experiment]]", f'id = "{rid}"', f"seed = {seed}"]
            lines += [f"{k} = {v}" for k, v in keys.items()] + [""]
            runs.append({"id": rid, "mode": mode, "seed": seed})
    return "\n".join(lines), runs


def run_cli(args: list[str], cli: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run([cli, *args], capture_output=True, text=True, env=env)


def fail(what: list[str], proc: subprocess.CompletedProcess) -> None:
    print(f"FAILED ({proc.returncode}): unettui {' '.join(what)}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}",
          file=sys.stderr)


def evaluate_json(args: list[str], cli: str) -> dict:
    """`unettui evaluate ... --json`'s object; {} (and the command's output on stderr) when it fails."""
    cmd = ["evaluate", *args, "--json", "--device", "cpu"]
    proc = run_cli(cmd, cli)
    if proc.returncode != 0:
        fail(cmd, proc)
        return {}
    return json.loads(proc.stdout)


def spread(values: list[float]) -> dict:
    v = [x for x in values if x is not None]
    if not v:
        return {"mean": None, "min": None, "max": None}
    return {"mean": float(np.mean(v)), "min": float(min(v)), "max": float(max(v))}


def fmt(x, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


COLUMNS = [("best_val_dice", "best val Dice (recorded)", 3), ("val_dice_native", "val Dice, own pixels", 3),
           ("heldout_dice", "held-out Dice", 3), ("heldout_hd95", "held-out HD95 px", 2),
           ("heldout_tiles_dice", "held-out as 4 tiles: Dice", 3), ("wall_s", "train+val s", 0)]


def table(rows: list[dict], modes: list[str]) -> str:
    """Markdown: one row per run, then per mode the mean [min, max] over the seeds."""
    out = ["| mode | seed | " + " | ".join(h for _, h, _ in COLUMNS) + " | best epoch | runner wall s |",
           "|---" * (len(COLUMNS) + 4) + "|"]
    for r in rows:
        cells = [fmt(r[k], d) for k, _, d in COLUMNS] + [str(r["best_epoch"]), fmt(r["runner_wall_s"], 0)]
        out.append(f"| {r['mode']} | {r['seed']} | " + " | ".join(cells) + " |")
    out += ["", "| mode | " + " | ".join(f"{h}: mean [min, max]" for _, h, _ in COLUMNS) + " |",
            "|---" * (len(COLUMNS) + 1) + "|"]
    for mode in modes:
        mine = [r for r in rows if r["mode"] == mode]
        cells = []
        for key, _, d in COLUMNS:
            s = spread([r[key] for r in mine])
            cells.append(f"{fmt(s['mean'], d)} [{fmt(s['min'], d)}, {fmt(s['max'], d)}]")
        out.append(f"| {mode} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel-dir", type=Path, required=True, help="folder holding the stardist 0.9.2 wheel")
    ap.add_argument("--out", type=Path, required=True, help="folder for the data, the project and the results")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=200, help="200: both modes flatten (40: resize has not)")
    ap.add_argument("--resize", default="128,64", help="comma-separated image_size values of the resize runs")
    ap.add_argument("--patch", type=int, default=64, help="patch_size of the native runs")
    ap.add_argument("--batch", type=int, default=8, help="batch_size of the native runs (patches)")
    ap.add_argument("--resize-batch", type=int, default=3,
                    help="batch_size of the resize runs (at most the 3 training tiles)")
    ap.add_argument("--unettui", default=None, help="the unettui executable (default: beside this Python)")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    sizes = [int(s) for s in args.resize.split(",") if s.strip()]
    cli = args.unettui or shutil.which("unettui", path=str(Path(sys.executable).parent)) or "unettui"
    out = args.out.resolve()

    wheel = find_wheel(args.wheel_dir)
    image, mask = read_from_wheel(wheel)
    print(f"data: {wheel.name}: image {image.shape} {image.dtype} ({image.min()}..{image.max()}), "
          f"mask labels 1..{mask.max()}, foreground {(mask > 0).mean():.3f}")
    written = build_dataset(image, mask, out)
    for part, items in written.items():
        print(f"  {part}: " + ", ".join(f"{w['name']} {w['shape'][0]}x{w['shape'][1]} fg {w['foreground']:.3f}"
                                       for w in items))

    proj = out / "project"
    proj.mkdir(parents=True, exist_ok=True)
    toml, runs = experiments_toml(seeds, sizes, args.patch, args.epochs, args.batch, args.resize_batch)
    (proj / "experiments.toml").write_text(toml)
    modes = [f"resize{n}" for n in sizes] + [f"native{args.patch}"]

    before = out / "results.json"
    earlier = {r["id"]: r for r in json.loads(before.read_text())["runs"]} if before.exists() else {}
    rows = []
    for r in runs:
        summary_path = proj / "runs" / r["id"] / "summary.json"
        trained_before = summary_path.exists()
        cmd = ["run", "--headless", "--plain", "--threads", "1", "--pack", "off", "--project", str(proj),
               "--only", r["id"]]
        t0 = time.perf_counter()
        proc = run_cli(cmd, cli)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            fail(cmd, proc)
        if trained_before:  # nothing trained now: the runner's wall time is the earlier one's, if recorded
            wall = earlier.get(r["id"], {}).get("runner_wall_s")
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        result = evaluate_json([r["id"], str(out / "heldout"), "--project", str(proj)], cli)
        tiles_result = evaluate_json([r["id"], str(out / "heldout_tiles"), "--project", str(proj)], cli)
        # the run's own validation tile, counted on its own pixels (a resize run's recorded val Dice is counted on
        # the letterboxed image_size^2 pixels)
        val_native = evaluate_json([r["id"], "--split", "val", "--project", str(proj)], cli)
        row = {**r, "wall_s": summary.get("seconds"), "runner_wall_s": wall,
               "best_val_dice": summary.get("best_val_dice"), "best_epoch": summary.get("best_epoch"),
               "val_dice_native": val_native.get("metrics", {}).get("dice"),
               "heldout_dice": result.get("metrics", {}).get("dice"),
               "heldout_hd95": result.get("boundary", {}).get("hd95"),
               "heldout_tiles_dice": tiles_result.get("metrics", {}).get("dice"),
               "heldout_tiles_hd95": tiles_result.get("boundary", {}).get("hd95"),
               "heldout_pixels": result.get("counts", {}).get("pixels"), "epochs_done": summary.get("epochs_done"),
               "model_input": result.get("counted_at", {}).get("model_input")}
        rows.append(row)
        print(f"{r['id']}: best val Dice {fmt(row['best_val_dice'])} (epoch {row['best_epoch']}), held-out Dice "
              f"{fmt(row['heldout_dice'])}, HD95 {fmt(row['heldout_hd95'], 2)} px, {fmt(wall, 0)} s", flush=True)

    import torch  # only for the record of the machine

    machine = {"torch": torch.__version__, "python": platform.python_version(), "cpu": platform.processor() or
               platform.machine(), "cores": os.cpu_count(), "threads": 1}
    text = table(rows, modes)
    print("\n" + text)
    print(f"\nmachine: {machine}")
    (out / "results.json").write_text(json.dumps({"data": written, "wheel": wheel.name, "epochs": args.epochs,
                                                  "patch": args.patch, "resize": sizes, "seeds": seeds,
                                                  "machine": machine, "runs": rows}, indent=2))
    (out / "results.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
