"""Study templates for `unettui study new --template NAME`: ready-made [[study]] tables appended to experiments.toml.

Each template pins the keys that decide its cost (dataset, image size, model width, epochs), so it runs in
the time it promises whatever the project's [defaults] say; everything else comes from [defaults].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .edit import EditError, check_id, editing, queue_path
from .queue import parse_queue, tomllib

__all__ = ["TEMPLATES", "Template", "render_template", "add_study"]


@dataclass(frozen=True)
class Template:
    name: str
    summary: str
    runtime: str  # measured, on 2 CPU cores (docs/benchmarks.md has the measurements)
    body: str  # the [[study]] table, with {id} for the study's id


QUICK = Template(
    name="quick",
    summary="learning rate for adam and sgd (decades, then one bisection step), optimizer x scheduler with successive "
            "halving, then the loss: a first look at every stage kind",
    runtime="about 3.5 minutes",
    body='''\
# Study "{id}" (template quick): a few minutes on 2 CPU cores.
# `unettui run --headless` trains it stage by stage; `unettui study show {id}` and
# `unettui report {id}` show the tables, the winners and the figures.
[[study]]
id = "{id}"
dataset = "synthetic:ventricle"
num_images = 96               # 19 held out for testing; of the other 77, 62 train and 15 validate
test_fraction = 0.2           # the final configuration's honest score: never used to choose anything
train_fraction = 0.8
image_size = 64
base_channels = 16            # baseline UNet widths / 4
depth = 4
batch_size = 8
epochs = 8
scheduler = "none"
loss = "dice_bce"

[[study.stage]]
name = "lr"                   # per optimizer: 1e-4, 1e-3, 1e-2, then one bisection step in the best decade
optimizer = ["adam", "sgd"]
lr_search = {{ from = 1e-4, to = 1e-2, steps = 1 }}

[[study.stage]]
name = "opt-sched"            # each optimizer at its own best lr; the weaker half stop after 4 epochs
optimizer = ["adam", "sgd"]
scheduler = ["none", "plateau"]
halving = {{ min_epochs = 4, eta = 2 }}

[[study.stage]]
name = "loss"
loss = ["dice_bce", "dice"]
''')

SEED = Template(
    name="seed",
    summary="the course study: lr per optimizer (six optimizers), optimizer x scheduler (none/step/plateau), "
            "weight decay and dropout at 20/50/80 % training data, five losses (halved), augmentation on/off",
    runtime="about 26 minutes",
    body='''\
# Study "{id}" (template seed): the course study "Image Segmentation Using UNET: Strategic
# Hyper-parameter Tuning", in small, on the built-in ventricle data; well under an hour on 2 CPU cores.
# Each stage carries its winner forward. `unettui study show {id}`, `unettui report {id}`.
[[study]]
id = "{id}"
dataset = "synthetic:ventricle"
num_images = 96
test_fraction = 0.2           # 19 images held out for the final configuration's honest score, never used to choose
train_fraction = 0.8          # of the other 77, 62 train and 15 validate (stages may use several fractions)
image_size = 64
base_channels = 16            # baseline UNet widths / 4
depth = 4
batch_size = 8
epochs = 12
scheduler = "none"
loss = "dice_bce"

[[study.stage]]
name = "lr"                   # the study's method: the order of magnitude, then the multiplier by bisection
optimizer = ["adam", "adamw", "sgd", "rmsprop", "adagrad", "adamax"]
lr_search = {{ from = 1e-4, to = 1e-1, steps = 2 }}

[[study.stage]]
name = "opt-sched"            # every optimizer at its own best lr (no pruning: Adam-like ones start late here)
optimizer = ["adam", "adamw", "sgd", "rmsprop", "adagrad", "adamax"]
scheduler = ["none", "step", "plateau"]
lr_step_size = 4

[[study.stage]]
name = "weight-decay"         # scored by the mean over three amounts of training data
weight_decay = [0.1, 0.01, 0.001]
train_fraction = [0.2, 0.5, 0.8]

[[study.stage]]
name = "dropout"
dropout = [0.0, 0.2, 0.5]
train_fraction = [0.2, 0.5, 0.8]

[[study.stage]]
name = "loss"
loss = ["bce", "dice", "dice_bce", "inv_dice_bce", "switching"]
halving = {{ min_epochs = 6, eta = 2 }}  # all five to 6 epochs, the best two on to 12
repeats = 3                   # seeds decide here: measured margins (0.003-0.08) are often within seed noise

[[study.stage]]
name = "augment"              # off / on: random rotations up to 20 degrees, left-right flips, and both
augment.rotate = [0.0, 20.0]
augment.hflip = [0.0, 0.5]
repeats = 3                   # single runs picked a different winner in 2 of 3 seeds (margins ~0.005)
''')

TEMPLATES = {t.name: t for t in (QUICK, SEED)}

HEADER = """\
# unettui queue. `unettui run --headless` trains every experiment and study below that has no
# finished run yet; `unettui results`, `unettui study ls` and `unettui report STUDY` show the outcome.
# Every key is documented in docs/experiments.md ("Configuration keys").
"""


def render_template(name: str, study_id: str | None = None) -> str:
    """The template's [[study]] text with its id (default: the template's name)."""
    if name not in TEMPLATES:
        raise EditError(f"unknown template {name!r}; templates: {', '.join(TEMPLATES)}")
    return TEMPLATES[name].body.format(id=check_id(study_id or name))


def add_study(project: Path, name: str, study_id: str | None = None) -> tuple[Path, str, bool]:
    """Append the template's study to ``project``'s experiments.toml (created when missing), under the edit lock,
    keeping the file's text as it is. Returns (file, study id, created). Refuses a study id already in use."""
    study_id = study_id or name
    text = render_template(name, study_id)
    project = Path(project)
    path = queue_path(project)
    if project.exists() and not project.is_dir():
        raise EditError(f"{project} is a file, not a folder")
    project.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    with editing(project, create=True) as edit:
        old_text, old = edit.text, edit.data
        used = {s.get("id") for s in old.get("study", []) if isinstance(s, dict)}
        if study_id in used:
            raise EditError(f"{path}: a study '{study_id}' is already defined; pick another id with --id")
        nl = "\r\n" if "\r\n" in old_text else "\n"
        base = HEADER if created else (old_text if not old_text or old_text.endswith("\n") else old_text + nl)
        if base.strip() and not base.endswith(nl + nl):
            base += nl
        new_text = base + text.replace("\n", nl)
        edit.verify(new_text, lambda new: [s for s in new.get("study", []) if s.get("id") != study_id] == old.get("study", []),
                    f"cannot append a [[study]] safely to this file's layout; paste it by hand "
                    f"(`unettui study new --template {name} --print`)")
        queue = parse_queue(tomllib.loads(new_text), path, new_text)
        mine = [p for p in queue.problems if f"[[study]] '{study_id}'" in p.where]
        if mine:
            raise EditError(f"the template does not fit this project: {mine[0]}")
    return path, study_id, created
