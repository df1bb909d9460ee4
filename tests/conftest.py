"""Shared fixtures: tiny projects whose real training takes a second or two on the CPU."""

from pathlib import Path

import pytest

TINY_DEFAULTS = """
[defaults]
dataset = "synthetic:nuclei"
num_images = 16
image_size = 32
base_channels = 4
depth = 2
epochs = 2
batch_size = 4
preview_count = 2
device = "cpu"  # CPU numbers are reproducible; the CUDA paths have their own tests
"""


@pytest.fixture
def make_project(tmp_path):
    """make_project(body, defaults=TINY_DEFAULTS) -> project folder with that experiments.toml."""

    def make(body: str = "[[experiment]]\nid = 'a'\n", defaults: str = TINY_DEFAULTS, name: str = "proj") -> Path:
        proj = tmp_path / name
        proj.mkdir(exist_ok=True)
        (proj / "experiments.toml").write_text(defaults + "\n" + body)
        return proj

    return make


@pytest.fixture
def one_thread():
    """The project's exact CPU comparisons run on one thread (reductions split over threads round differently); a
    module uses it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
