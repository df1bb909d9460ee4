"""`unettui init`: a commented starter experiments.toml, written whole or not at all, never over a user's file."""

from __future__ import annotations

from pathlib import Path

from ..runs.store import atomic_write_text
from .edit import EditError, locked, queue_path

STARTER = '''\
# unettui queue: the experiments of this project.
#
# `unettui run --headless` trains, in file order, every experiment below that has no
# finished run yet, writes each run to runs/<id>/ and resumes interrupted ones.
# Then: `unettui results` for a table, `unettui export results.csv` for a CSV.
# Add entries with `unettui add --set key=value`, `unettui sweep --set key=a,b,c`,
# or by hand; every key is documented in docs/experiments.md ("Configuration keys").

[defaults]                      # applied to every experiment unless it overrides them
dataset = "synthetic:ventricle" # built-in, nothing to download; or a folder with images/ and masks/
image_size = 64
test_fraction = 0.2             # held out for an honest final score: never trained on, never used to choose
train_fraction = 0.8            # of the rest: share used for training; the others validate
base_channels = 16              # 16 = the original UNet widths divided by 4
depth = 4
epochs = 20
batch_size = 8
loss = "dice_bce"
seed = 0

# The reference: Adam at its usual learning rate.
[[experiment]]
id = "baseline"                 # optional: generated from the keys an entry sets
optimizer = "adam"
lr = 1e-3

# A sweep is a grid: every list expands, scalars are shared. Uncomment to queue
# opt-at-1e-4-adam, opt-at-1e-4-sgd and opt-at-1e-4-adagrad:
# [[sweep]]
# id = "opt-at-1e-4"
# optimizer = ["adam", "sgd", "adagrad"]
# lr = 1e-4
'''


def init_project(directory: Path) -> Path:
    """Write a commented starter experiments.toml in ``directory`` (created if needed); never overwrites."""
    directory = Path(directory)
    path = queue_path(directory)
    if directory.exists() and not directory.is_dir():
        raise EditError(f"{directory} is a file, not a folder")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with locked(directory):
            if path.is_symlink() or (path.exists() and (not path.is_file() or path.read_bytes().strip())):
                raise EditError(f"{path} already exists; edit it, or add to it with `unettui add` / `unettui sweep`")
            # written whole or not at all; an empty file (nothing a user could have written) is replaced
            atomic_write_text(path, STARTER)
    except OSError as exc:
        raise EditError(f"cannot create {path}: {exc.strerror or exc}") from None
    return path
