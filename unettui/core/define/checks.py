"""`check`: every definition of the queue, every dataset it names and every would-be run checked without training —
what `unettui check` prints and the TUI can show."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .config import Config
from .queue import Queue
from .task import classes_of


@dataclass
class CheckReport:
    """Every problem found, one line each (file, entry, key, reason), and the datasets checked."""

    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)  # "synthetic:nuclei: 160 images at 64 px ..."
    experiments: int = 0


def memory_for(cfg: Config) -> tuple[int | None, str]:
    """The memory a run of ``cfg`` would have on this machine: its GPU's when it would train on one, else the RAM."""
    from ..learn.feasible import machine_memory

    if cfg.device.startswith("cuda") or cfg.device == "auto":
        import torch

        if torch.cuda.is_available():
            dev = torch.device("cuda" if cfg.device == "auto" else cfg.device)
            index = dev.index or 0
            if index < torch.cuda.device_count():
                name = torch.cuda.get_device_name(index)
                return torch.cuda.get_device_properties(index).total_memory, f"{name} (cuda:{index})"
    return machine_memory(), "this machine"


def _ids_text(ids: list[str], limit: int = 4) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def check_queue(queue: Queue, project: Path) -> CheckReport:
    """Check ``queue`` (of ``project``): its definitions' problems, then each distinct dataset once (folders are read;
    built-in data needs no generating), then every experiment as its run would check it before training (the split,
    the batch, batch norm's two values, memory). Seconds, whatever the numbers.

    A folder is read as its runs would read it: as binary masks by default, as label maps when the definition's
    classes have pixel values (``num_classes`` >= 3 or ``mask_values``), so a label map pixel value that is no
    class's is reported here, naming the file (the first such file of the dataset), before anything trains; and
    a class no mask of the dataset has is said beside the dataset's line in ``checked``."""
    from ..learn.data import DatasetError
    from ..learn.dataset_id import is_synthetic
    from ..learn.feasible import problems as feasibility_problems

    report = CheckReport(problems=[str(p) for p in queue.problems], experiments=len(queue.experiments))
    name = queue.path.name
    groups: dict[tuple, list] = {}
    for e in queue.experiments:
        if not e.valid:
            continue
        c = e.config
        synthetic = is_synthetic(c.dataset)
        classes = None if synthetic else classes_of(c)
        native = bool(c.patch_size) and not synthetic  # a folder read at its own resolution: no image_size
        key = (c.dataset, None if native else c.image_size, c.num_images if synthetic else None,
               c.data_seed if synthetic else None, None if synthetic else c.tiff_pages,
               classes if classes is not None and classes.values else None)
        groups.setdefault(key, []).append(e)
    for (spec, size, _, _, _, classes), exps in groups.items():
        ids = [e.id for e in exps]
        users = f"{name} {exps[0].origin}" if len(ids) == 1 else f"{name} ({len(ids)} experiments: {_ids_text(ids)})"
        synthetic = is_synthetic(spec)
        channels = 1
        absent: list[str] = []
        try:
            if synthetic:  # nothing to read: the generators cannot fail once their arguments are valid
                from ..learn.synthetic import check_synthetic_args

                check_synthetic_args(exps[0].config.num_images, size)
                n = exps[0].config.num_images
            else:
                from ..learn.datasets import load_dataset

                data = load_dataset(spec, size or exps[0].config.image_size, exps[0].config.num_images,
                                    exps[0].config.data_seed, base_dir=project, tiff_pages=exps[0].config.tiff_pages,
                                    classes=classes, native=size is None)
                n, channels = len(data), data.channels
                absent = [note for note in data.notes if note.startswith("class ")] if classes is not None else []
        except DatasetError as exc:
            report.problems.append(f"{users}: dataset: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - anything else while loading is also a problem of this dataset
            report.problems.append(f"{users}: dataset: cannot load {spec!r}: {type(exc).__name__}: "
                                   f"{' '.join(str(exc).split())}")
            continue
        at = f"at {size} px" if size is not None else _own_sizes(data.sizes)
        report.checked.append(f"{spec}: {n} images {at}" + (" (generated when trained)" if synthetic else "")
                              + (f" ({'; '.join(absent)})" if absent else ""))
        for e in exps:
            memory, where = memory_for(e.config)
            # the run's own checks, in the order it would hit them: the split, the batch, batch norm, memory
            for key, why in feasibility_problems(e.config, n, memory, where, channels, synthetic):
                report.problems.append(f"{name} {e.origin}: {key}: {why}")
                break
    return report


def _own_sizes(sizes: list[tuple[int, int]]) -> str:
    """'at their own sizes (150x300 to 400x180 WxH, 0.4 Mpx)' for a folder read at native resolution."""
    small = min(sizes, key=lambda s: s[0] * s[1])
    large = max(sizes, key=lambda s: s[0] * s[1])
    span = f"{small[1]}x{small[0]}" + (f" to {large[1]}x{large[0]}" if large != small else "")
    pixels = sum(h * w for h, w in sizes)
    amount = f"{pixels / 1e6:.1f} Mpx" if pixels >= 1e6 else f"{pixels / 1e3:.1f} kpx"
    return f"at their own sizes ({span} WxH, {amount})"

