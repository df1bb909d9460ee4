"""Tests for unettui.core.learn.sliding: sliding-window inference at native resolution (issue 25).

The grid covers every pixel with the last window flush; one window equals a whole-image forward pass; a pointwise model
gives the whole-image output on a large non-square image and a constant model gives its constant (no seams, Gaussian
or uniform); small images are padded and cropped back; the batch size does not change the result; windows go through
the model a batch at a time; bad arguments are refused in one line."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from unettui.core.learn.model import UNet
from unettui.core.learn.sliding import (
    GAUSSIAN_FLOOR,
    gaussian_map,
    sliding_window,
    weight_map,
    window_grid,
    window_starts,
    window_step,
)


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def tiny_unet(in_channels: int = 1, out_channels: int = 2, depth: int = 2) -> UNet:
    torch.manual_seed(0)
    model = UNet(in_channels, out_channels, base_channels=4, depth=depth).eval()
    # Non-trivial BatchNorm statistics, so eval mode is not the identity.
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return model


class Constant(nn.Module):
    """A model whose logits are ``value`` everywhere, whatever the input."""

    def __init__(self, value: float, channels: int = 1) -> None:
        super().__init__()
        self.value, self.channels = value, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], self.channels, x.shape[2], x.shape[3]), self.value)


class Recorder:
    """Wraps a forward and records each batch's shape."""

    def __init__(self, forward) -> None:
        self.forward, self.shapes = forward, []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        return self.forward(x)


# --- the grid -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [1, 5, 31, 32, 33, 47, 48, 64, 70, 97, 133, 500])
@pytest.mark.parametrize("patch,step", [(32, 16), (32, 32), (32, 1), (32, 24), (16, 7), (1, 1)])
def test_window_starts_cover_the_axis_exactly_with_the_last_flush(length: int, patch: int, step: int) -> None:
    starts = window_starts(length, patch, step)
    if length <= patch:
        assert starts == [0]
        return
    assert starts[0] == 0
    assert starts[-1] == length - patch  # flush with the far edge: no window hangs over the image
    assert starts == sorted(set(starts))  # increasing, no repeats
    assert all(b - a == step for a, b in zip(starts[:-2], starts[1:-1]))  # a regular grid ...
    assert 0 < starts[-1] - starts[-2] <= step  # ... up to the last window, moved back
    covered = torch.zeros(length, dtype=torch.int64)
    for start in starts:
        covered[start:start + patch] += 1
    assert covered.min() >= 1  # every pixel in [0, length) covered, none outside (the slices would clip)
    assert all(0 <= s and s + patch <= length for s in starts)


def test_window_step_from_overlap() -> None:
    assert window_step(256, 0.5) == 128
    assert window_step(256, 0.25) == 192
    assert window_step(256, 0.0) == 256
    assert window_step(100, 0.7) == 30
    assert window_step(4, 0.99) == 1  # at least 1
    assert window_step(1, 0.5) == 1


def test_window_grid_is_row_by_row() -> None:
    grid = window_grid(70, 133, 32, 0.5)
    assert grid[:3] == [(0, 0), (0, 16), (0, 32)]
    assert grid[-1] == (70 - 32, 133 - 32)
    assert len(grid) == len(window_starts(70, 32, 16)) * len(window_starts(133, 32, 16))
    assert window_grid(10, 12, 32) == [(0, 0)]


def test_gaussian_map_is_nnunet_style() -> None:
    g = gaussian_map(32, 0.125)
    assert g.shape == (32, 32) and g.dtype == torch.float32
    assert g.max().item() == 1.0
    assert g.min().item() == pytest.approx(GAUSSIAN_FLOOR)  # zero-free, corners at the floor
    assert torch.equal(g, g.T) and torch.equal(g, g.flip(0)) and torch.equal(g, g.flip(1))
    assert g[15, 15] == g[16, 16] == 1.0  # centred on (P - 1) / 2
    # sigma = P * sigma_scale: one sigma from the centre along an axis the weight is exp(-1/2).
    odd = gaussian_map(33, 0.125, floor=1e-12)
    sigma = 33 * 0.125
    x = torch.arange(33, dtype=torch.float64) - 16
    expected = torch.exp(-(x**2) / (2 * sigma**2))
    torch.testing.assert_close(odd[16].double(), expected, rtol=1e-6, atol=1e-7)
    assert (gaussian_map(33, 0.25) >= gaussian_map(33, 0.125)).all()  # wider sigma, flatter map


@pytest.mark.parametrize("gaussian", [True, False])
@pytest.mark.parametrize("height,width", [(70, 133), (32, 32), (33, 97), (10, 5), (200, 31)])
def test_weight_map_positive_everywhere(height: int, width: int, gaussian: bool) -> None:
    w = weight_map(height, width, 32, 0.5, gaussian=gaussian)
    assert w.shape == (max(height, 32), max(width, 32))
    assert (w > 0).all()
    if not gaussian:  # counts of windows: each pixel at least once, at most (1 + ceil(P/step))^2 with the flush window
        assert w.min() >= 1 and w.max() <= 9 and torch.equal(w, w.round())


def test_uniform_weights_without_overlap_count_each_pixel_once() -> None:
    # Sizes a multiple of the patch and overlap 0: the windows tile the image, each pixel counted exactly once.
    assert torch.equal(weight_map(64, 96, 32, 0.0, gaussian=False), torch.ones(64, 96))


# --- equal to the whole-image forward pass ----------------------------------------------------------------------------


@pytest.mark.parametrize("gaussian", [True, False])
def test_one_window_equals_the_whole_image_forward(gaussian: bool) -> None:
    model = tiny_unet(in_channels=3, out_channels=2)
    torch.manual_seed(1)
    image = torch.randn(3, 32, 32)
    with torch.no_grad():
        whole = model(image[None])[0]
    out = sliding_window(model, image, patch=32, gaussian=gaussian)
    assert out.shape == (2, 32, 32) and out.dtype == torch.float32 and out.device.type == "cpu"
    torch.testing.assert_close(out, whole, rtol=0, atol=1e-6)


@pytest.mark.parametrize("gaussian", [True, False])
@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5, 0.75])
def test_pointwise_model_equals_whole_image_on_a_large_non_square_image(gaussian: bool, overlap: float) -> None:
    # A 1x1 conv has no padding effects: every window sees each pixel as the whole image does, so any seam or
    # mis-weighted window border would show up as a difference.
    torch.manual_seed(2)
    model = nn.Conv2d(3, 4, kernel_size=1).eval()
    image = torch.randn(3, 70, 133)
    with torch.no_grad():
        whole = model(image[None])[0]
    out = sliding_window(model, image, patch=32, overlap=overlap, gaussian=gaussian)
    assert out.shape == (4, 70, 133)
    torch.testing.assert_close(out, whole, rtol=0, atol=1e-5)


@pytest.mark.parametrize("gaussian", [True, False])
@pytest.mark.parametrize("height,width", [(70, 133), (97, 33), (32, 32), (64, 64), (7, 90)])
def test_constant_model_gives_its_constant_everywhere(height: int, width: int, gaussian: bool) -> None:
    image = torch.randn(1, height, width)
    out = sliding_window(Constant(2.5, channels=3), image, patch=32, overlap=0.5, gaussian=gaussian)
    assert out.shape == (3, height, width)
    torch.testing.assert_close(out, torch.full_like(out, 2.5), rtol=0, atol=1e-6)
    # No seams: neither the window borders nor the image border differ from the rest.
    for top, left in window_grid(height, width, 32, 0.5):
        for row in (top, min(top + 31, height - 1)):
            assert (out[:, row, :] - 2.5).abs().max() <= 1e-6
        for col in (left, min(left + 31, width - 1)):
            assert (out[:, :, col] - 2.5).abs().max() <= 1e-6


def test_an_image_smaller_than_the_patch_is_padded_and_cropped_back() -> None:
    model = tiny_unet(in_channels=1, out_channels=1)
    image = torch.randn(1, 11, 20)
    seen = Recorder(model)
    out = sliding_window(seen, image, patch=32)
    assert out.shape == (1, 11, 20)
    assert seen.shapes == [(1, 1, 32, 32)]  # one padded window
    # It is exactly the padded image's forward pass, cropped: padding 21 rows (10 above, 11 below), 12 columns (6, 6).
    padded = torch.nn.functional.pad(image, (6, 6, 10, 11), value=-1.0)
    with torch.no_grad():
        expected = model(padded[None])[0, :, 10:21, 6:26]
    out = sliding_window(model, image, patch=32, pad_value=-1.0)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    # A pointwise model does not see the padding at all.
    conv = nn.Conv2d(1, 2, 1)
    with torch.no_grad():
        torch.testing.assert_close(sliding_window(conv, image, patch=32), conv(image[None])[0], rtol=0, atol=1e-6)


def test_one_axis_shorter_than_the_patch() -> None:
    conv = nn.Conv2d(2, 1, 1)
    image = torch.randn(2, 9, 150)
    seen = Recorder(conv)
    out = sliding_window(seen, image, patch=32, overlap=0.5, batch=64)
    assert out.shape == (1, 9, 150)
    assert seen.shapes == [(len(window_starts(150, 32, 16)), 2, 32, 32)]
    with torch.no_grad():
        torch.testing.assert_close(out, conv(image[None])[0], rtol=0, atol=1e-6)


# --- batches and memory -----------------------------------------------------------------------------------------------


def test_batch_size_does_not_change_the_result() -> None:
    model = tiny_unet(in_channels=1, out_channels=2)
    torch.manual_seed(3)
    image = torch.randn(1, 70, 133)
    outs = {b: sliding_window(model, image, patch=32, batch=b) for b in (1, 3, 4, 100)}
    for b in (3, 4, 100):
        torch.testing.assert_close(outs[b], outs[1], rtol=0, atol=1e-6)
    # With a per-pixel model the order of accumulation is all that could differ, and it does not: bit for bit.
    conv = nn.Conv2d(1, 2, 1)
    assert torch.equal(sliding_window(conv, image, patch=32, batch=1), sliding_window(conv, image, patch=32, batch=4))


def test_windows_go_through_the_model_a_batch_at_a_time() -> None:
    seen = Recorder(nn.Conv2d(1, 1, 1))
    image = torch.randn(1, 70, 133)
    sliding_window(seen, image, patch=32, overlap=0.5, batch=4)
    n = len(window_grid(70, 133, 32, 0.5))
    assert n == 4 * 8
    assert seen.shapes == [(4, 1, 32, 32)] * 8  # never all windows at once
    seen.shapes.clear()
    sliding_window(seen, image, patch=32, overlap=0.5, batch=5)
    assert [s[0] for s in seen.shapes] == [5] * 6 + [2]


def test_output_is_k_h_w_float32_on_out_device_whatever_the_model_returns() -> None:
    image = torch.randn(1, 40, 50)

    def half(x: torch.Tensor) -> torch.Tensor:  # as under autocast: a low-precision output
        return torch.ones(x.shape[0], 3, x.shape[2], x.shape[3], dtype=torch.bfloat16)

    out = sliding_window(half, image, patch=16, out_channels=3, out_device="cpu")
    assert out.shape == (3, 40, 50) and out.dtype == torch.float32 and out.is_contiguous()
    torch.testing.assert_close(out, torch.ones(3, 40, 50), rtol=0, atol=1e-6)


def test_no_autograd_graph_is_built() -> None:
    model = nn.Conv2d(1, 1, 1)
    out = sliding_window(model, torch.randn(1, 40, 40), patch=16)
    assert not out.requires_grad and out.grad_fn is None


def test_device_defaults_to_the_models_then_the_images() -> None:
    seen_devices = []

    def forward(x: torch.Tensor) -> torch.Tensor:
        seen_devices.append(x.device.type)
        return x[:, :1]

    sliding_window(forward, torch.randn(2, 20, 20), patch=16)
    assert set(seen_devices) == {"cpu"}


def test_real_unet_with_depth_4_on_odd_sizes() -> None:
    model = tiny_unet(in_channels=1, out_channels=1, depth=4)
    out = sliding_window(model, torch.randn(1, 77, 51), patch=32, overlap=0.25, batch=2)
    assert out.shape == (1, 77, 51) and torch.isfinite(out).all()


# --- bad arguments ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,words", [
    ({"overlap": 1.0}, "overlap must be a number in [0, 1)"),
    ({"overlap": -0.1}, "overlap"),
    ({"overlap": True}, "overlap"),
    ({"patch": 0}, "patch must be an integer >= 1"),
    ({"patch": 32.0}, "patch"),
    ({"batch": 0}, "batch must be an integer >= 1"),
    ({"sigma_scale": 0.0}, "sigma_scale must be a number > 0"),
    ({"sigma_scale": float("nan")}, "sigma_scale"),
    ({"out_channels": 0}, "out_channels"),
    ({"out_channels": 3}, "out_channels is 3 but forward gives 1 channels"),
])
def test_bad_arguments_are_refused_in_one_line(kwargs: dict, words: str) -> None:
    args = {"patch": 16, **kwargs}
    with pytest.raises(ValueError) as info:
        sliding_window(nn.Conv2d(1, 1, 1), torch.randn(1, 20, 20), **args)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_bad_images_and_forwards_are_refused() -> None:
    conv = nn.Conv2d(1, 1, 1)
    for image in (torch.randn(20, 20), torch.randn(1, 1, 20, 20), torch.randn(1, 0, 20)):
        with pytest.raises(ValueError, match="image"):
            sliding_window(conv, image, patch=16)
    with pytest.raises(ValueError, match=r"forward must map \[1, 1, 16, 16\]"):
        sliding_window(lambda x: x[:, :, :8], torch.randn(1, 16, 16), patch=16)
    with pytest.raises(ValueError, match="step 40 is larger than the patch 32"):
        window_starts(100, 32, 40)
    # A patch the UNet cannot take is the model's error, not hidden.
    with pytest.raises(ValueError, match="UNet input"):
        sliding_window(tiny_unet(depth=2), torch.randn(1, 40, 40), patch=30)
