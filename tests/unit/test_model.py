"""Tests for unettui.core.learn.model: UNet shapes, size checks, parameter count, dropout, channels_last, autocast, overfitting."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from unettui.core.learn.model import UNet, check_image_size, count_parameters


@pytest.fixture(autouse=True)
def _one_thread():
    # These models are tiny: one intra-op thread is as fast as two, and does not collapse
    # (OpenMP spin-waiting) when the 2 cores are shared with other processes.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
def test_output_shapes_over_depths_sizes_and_channels(depth: int) -> None:
    torch.manual_seed(0)
    sizes = [s for s in (32, 48, 64, 96) if s % 2**depth == 0]
    assert sizes, "every depth should have at least one valid size in the list"
    for in_channels in (1, 3):
        model = UNet(in_channels=in_channels, out_channels=2, base_channels=4, depth=depth).eval()
        for size in sizes:
            assert check_image_size(size, depth) is None
            x = torch.randn(2, in_channels, size, size)
            with torch.no_grad():
                y = model(x)
            assert y.shape == (2, 2, size, size)
            assert y.dtype == torch.float32
            assert torch.isfinite(y).all()


def test_non_square_input_keeps_shape() -> None:
    model = UNet(base_channels=4, depth=3).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 32, 48)).shape == (1, 1, 32, 48)


def test_check_image_size_messages() -> None:
    assert check_image_size(96, 4) is None
    assert check_image_size(16, 4) is None
    assert check_image_size(2, 1) is None

    msg = check_image_size(100, 4)
    assert msg == "image_size 100 is not divisible by 2**4 = 16 (depth 4): use 96 or 112, or change depth"

    msg = check_image_size(50, 3)
    assert msg is not None and "2**3 = 8" in msg and "48" in msg and "56" in msg

    # Smaller than 2**depth: the bottleneck would be below one pixel; the only nearest valid size is 2**depth.
    msg = check_image_size(8, 4)
    assert msg is not None and "smaller than 2**4 = 16" in msg and "1 pixel" in msg and "use 16" in msg
    msg = check_image_size(0, 2)
    assert msg is not None and "use 4" in msg
    msg = check_image_size(-32, 2)
    assert msg is not None

    assert "depth" in (check_image_size(64, 0) or "")
    assert check_image_size(64.0, 2) is not None  # type: ignore[arg-type]
    for msg in (check_image_size(100, 4), check_image_size(8, 4), check_image_size(64, 0)):
        assert msg is not None and "\n" not in msg


def test_forward_rejects_invalid_sizes_with_clear_message() -> None:
    model = UNet(base_channels=4, depth=4)
    with pytest.raises(ValueError, match="use 96 or 112"):
        model(torch.randn(1, 1, 100, 96))
    with pytest.raises(ValueError, match=r"\[B, 1, H, W\]"):
        model(torch.randn(1, 3, 96, 96))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"depth": 0},
        {"base_channels": 0},
        {"in_channels": 0},
        {"out_channels": 0},
        {"depth": 2.5},
        {"dropout": -0.1},
        {"dropout": 1.0},
        {"dropout": float("nan")},
    ],
)
def test_constructor_rejects_invalid_arguments(kwargs: dict) -> None:
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        UNet(**kwargs)


def _block_params(cin: int, cout: int) -> int:
    # (Conv3x3 no bias + BN(weight, bias)) x 2
    return 9 * cin * cout + 2 * cout + 9 * cout * cout + 2 * cout


def test_parameter_count_base16_depth4() -> None:
    model = UNet(in_channels=1, out_channels=1, base_channels=16, depth=4)
    w = [16, 32, 64, 128, 256]
    # Encoder blocks 1->16, 16->32, 32->64, 64->128 and the bottleneck 128->256:
    #   2512 + 13952 + 55552 + 221696 + 885760 = 1_179_472
    encoder = _block_params(1, 16) + sum(_block_params(w[i - 1], w[i]) for i in range(1, 5))
    # ConvTranspose2d(w[i+1] -> w[i], k=2) with bias: 4*w[i+1]*w[i] + w[i]:
    #   131200 + 32832 + 8224 + 2064 = 174_320
    ups = sum(4 * w[i + 1] * w[i] + w[i] for i in range(4))
    # Decoder blocks on the concatenation (2*w[i] -> w[i]): 442880 + 110848 + 27776 + 6976 = 588_480
    decoder = sum(_block_params(2 * w[i], w[i]) for i in range(4))
    head = 16 * 1 + 1  # 1x1 conv with bias
    assert (encoder, ups, decoder, head) == (1_179_472, 174_320, 588_480, 17)
    assert encoder + ups + decoder + head == 1_942_289
    assert count_parameters(model) == 1_942_289
    assert sum(p.numel() for p in model.parameters()) == 1_942_289
    assert model.widths == (16, 32, 64, 128, 256)


def test_conv_layout_matches_classic_unet() -> None:
    model = UNet(base_channels=16, depth=4)
    convs3 = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs3) == 2 * (2 * 4 + 1)
    assert all(m.bias is None and m.padding == (1, 1) for m in convs3)
    ups = [m for m in model.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size, m.stride) for m in ups] == [
        (256, 128, (2, 2), (2, 2)),
        (128, 64, (2, 2), (2, 2)),
        (64, 32, (2, 2), (2, 2)),
        (32, 16, (2, 2), (2, 2)),
    ]
    assert model.head.kernel_size == (1, 1) and model.head.bias is not None
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 18


def test_decoder_concatenates_encoder_skip_and_upsampled_map() -> None:
    torch.manual_seed(0)
    depth = 3
    model = UNet(base_channels=4, depth=depth).eval()
    seen: dict[str, torch.Tensor] = {}
    hooks = []
    for i, encoder in enumerate(model.encoders):
        hooks.append(encoder.register_forward_hook(lambda m, a, out, i=i: seen.__setitem__(f"enc{i}", out)))
    for j, (up, decoder) in enumerate(zip(model.ups, model.decoders)):
        hooks.append(up.register_forward_hook(lambda m, a, out, j=j: seen.__setitem__(f"up{j}", out)))
        hooks.append(decoder.register_forward_pre_hook(lambda m, a, j=j: seen.__setitem__(f"dec{j}", a[0])))
    with torch.no_grad():
        model(torch.randn(2, 1, 32, 32))
    for h in hooks:
        h.remove()
    assert [seen[f"enc{i}"].shape[-1] for i in range(depth + 1)] == [32, 16, 8, 4]
    for j in range(depth):
        level = depth - 1 - j  # decoders run from the deepest level up
        skip, up = seen[f"enc{level}"], seen[f"up{j}"]
        assert up.shape == skip.shape
        assert torch.equal(seen[f"dec{j}"], torch.cat([skip, up], dim=1))


def test_dropout_modules_present_iff_dropout_positive() -> None:
    none = UNet(base_channels=4, depth=3, dropout=0.0)
    assert not any(isinstance(m, nn.Dropout) for m in none.modules())
    some = UNet(base_channels=4, depth=3, dropout=0.3)
    drops = [m for m in some.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 2 * 3 + 1  # every encoder block, the bottleneck and every decoder block
    assert all(m.p == 0.3 for m in drops)

    # Dropout is active in train mode only.
    torch.manual_seed(0)
    x = torch.randn(2, 1, 16, 16)
    some.eval()
    with torch.no_grad():
        assert torch.equal(some(x), some(x))
    some.train()
    with torch.no_grad():
        assert not torch.equal(some(x), some(x))


def test_channels_last_matches_contiguous() -> None:
    torch.manual_seed(0)
    model = UNet(in_channels=3, base_channels=8, depth=3).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        model_cl = model.to(memory_format=torch.channels_last)
        out = model_cl(x.contiguous(memory_format=torch.channels_last))
    assert out.shape == (2, 1, 32, 32)
    assert (out - ref).abs().max().item() < 1e-4


def test_autocast_forward_and_backward() -> None:
    torch.manual_seed(0)
    model = UNet(base_channels=4, depth=2)
    x = torch.randn(2, 1, 32, 32)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        y = model(x)
    assert y.shape == (2, 1, 32, 32) and y.dtype == torch.bfloat16
    y.float().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    with torch.no_grad():
        ref = model.eval()(x)
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            low = model(x)
    # bf16 keeps ~3 significant digits: the logits agree roughly, not exactly.
    assert (low.float() - ref).abs().max().item() < 0.1 * (1 + ref.abs().max().item())


def test_tiny_unet_overfits_one_image() -> None:
    torch.manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    mask = (((yy - 12) ** 2 + (xx - 18) ** 2) < 49).float()  # a disk ...
    mask[22:28, 4:20] = 1.0  # ... and a bar
    mask = mask.view(1, 1, 32, 32)
    image = mask * 0.6 + 0.2 + 0.1 * torch.randn(1, 1, 32, 32)
    model = UNet(in_channels=1, out_channels=1, base_channels=4, depth=2).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(150):
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(model(image), mask)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if loss.item() < 0.1:
            break
    assert losses[0] > 0.3, losses[0]
    assert losses[-1] < 0.1, f"did not overfit: loss {losses[-1]:.3f} after {len(losses)} steps"
    model.eval()
    with torch.no_grad():
        agreement = ((model(image) > 0) == (mask > 0.5)).float().mean().item()
    assert agreement > 0.95
