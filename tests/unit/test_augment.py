"""Tests for unettui.core.learn.augment: whole-batch flips and rotations that keep images and masks aligned."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from unettui.core.learn.augment import AugmentSpec, augment_batch, rotate_batch

SIZE = 48


def l_mask() -> torch.Tensor:
    """An asymmetric L: no flip or rotation maps it onto itself. Shape [1, 1, SIZE, SIZE]."""
    m = torch.zeros(1, 1, SIZE, SIZE)
    m[0, 0, 8:38, 10:19] = 1.0  # vertical bar
    m[0, 0, 30:38, 10:36] = 1.0  # foot to the right
    m[0, 0, 12:16, 26:30] = 1.0  # a separate dot, upper right
    return m


def l_batch(batch: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    masks = l_mask().repeat(batch, 1, 1, 1)
    images = masks * 0.8 + 0.1  # the image's grey level encodes the mask
    return images, masks


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_spec_active_and_validation() -> None:
    assert not AugmentSpec().active
    assert AugmentSpec(rotate=5).active
    assert AugmentSpec(rotate=360).active  # any non-negative maximum angle is allowed (as in the config)
    assert AugmentSpec(hflip=0.5).active
    assert AugmentSpec(vflip=0.1).active
    for bad in ({"rotate": -1.0}, {"rotate": float("inf")}, {"hflip": 1.5}, {"vflip": -0.1}, {"hflip": float("nan")}):
        with pytest.raises(ValueError):
            AugmentSpec(**bad)
    with pytest.raises(dataclasses.FrozenInstanceError):
        AugmentSpec().rotate = 3.0  # type: ignore[misc]  # frozen


def test_inactive_spec_returns_the_same_objects() -> None:
    images, masks = l_batch(4)
    out_images, out_masks = augment_batch(images, masks, AugmentSpec(), gen())
    assert out_images is images and out_masks is masks


def test_flips_with_probability_one_equal_tensor_flip() -> None:
    gen_ = gen()
    images = torch.rand(5, 3, 8, 12, generator=gen_)
    masks = (torch.rand(5, 1, 8, 12, generator=gen_) > 0.5).float()
    i, m = augment_batch(images, masks, AugmentSpec(hflip=1.0), gen())
    assert torch.equal(i, images.flip(-1)) and torch.equal(m, masks.flip(-1))
    i, m = augment_batch(images, masks, AugmentSpec(vflip=1.0), gen())
    assert torch.equal(i, images.flip(-2)) and torch.equal(m, masks.flip(-2))
    i, m = augment_batch(images, masks, AugmentSpec(hflip=1.0, vflip=1.0), gen())
    assert torch.equal(i, images.flip(-2, -1)) and torch.equal(m, masks.flip(-2, -1))
    # p = 0 for one flip leaves that axis alone.
    i, m = augment_batch(images, masks, AugmentSpec(hflip=0.0, vflip=1.0), gen())
    assert not torch.equal(i, images.flip(-1))
    # The inputs were not modified in place.
    assert not torch.equal(images, images.flip(-1))


def test_random_flips_are_bit_exact_per_sample_and_shared_with_the_mask() -> None:
    images, masks = l_batch(16)
    images = images + 0.01 * torch.rand(images.shape, generator=gen(5))  # distinct images per sample
    out_i, out_m = augment_batch(images, masks, AugmentSpec(hflip=0.5), gen(1))
    flipped = []
    for k in range(16):
        if torch.equal(out_i[k], images[k]):
            assert torch.equal(out_m[k], masks[k])
            flipped.append(False)
        else:
            assert torch.equal(out_i[k], images[k].flip(-1)), "neither the original nor its mirror image"
            assert torch.equal(out_m[k], masks[k].flip(-1))
            flipped.append(True)
    assert any(flipped) and not all(flipped)  # per-sample decisions, not one for the batch


def test_image_and_mask_stay_aligned_under_random_rotation_and_flips() -> None:
    images, masks = l_batch(16)
    out_i, out_m = augment_batch(images, masks, AugmentSpec(rotate=30, hflip=0.5, vflip=0.5), gen(2))
    assert out_i.shape == images.shape and out_m.shape == masks.shape
    assert out_m.dtype == masks.dtype
    assert ((out_m == 0) | (out_m == 1)).all(), "masks must stay exactly 0/1"
    interior = (slice(None), 0, slice(4, SIZE - 4), slice(4, SIZE - 4))
    agreement = ((out_i > 0.5) == (out_m > 0.5))[interior].float().mean(dim=(1, 2))
    assert agreement.min().item() >= 0.98, agreement
    # The transforms really changed the samples (the test would pass trivially otherwise) ...
    changed = (out_m != masks).flatten(1).float().mean(1)
    assert (changed > 0.02).sum().item() >= 14
    # ... and the foreground area is roughly preserved (bilinear + threshold neither grows nor erodes it).
    area_ratio = out_m.flatten(1).sum(1) / masks.flatten(1).sum(1)
    assert ((area_ratio > 0.85) & (area_ratio < 1.15)).all(), area_ratio


def test_misaligned_transforms_would_be_detected() -> None:
    # Guard for the alignment test above: the same check on a mask flipped differently fails clearly.
    images, masks = l_batch(1)
    agreement = ((images > 0.5) == (masks.flip(-1) > 0.5)).float().mean().item()
    assert agreement < 0.9


def test_every_channel_gets_the_same_transform() -> None:
    _, masks = l_batch(8)
    base = masks * 0.8 + 0.1
    images = torch.cat([base, 2 * base, 3 * base], dim=1)
    out_i, out_m = augment_batch(images, masks, AugmentSpec(rotate=45, hflip=0.5, vflip=0.5), gen(3))
    assert out_i.shape == (8, 3, SIZE, SIZE) and out_m.shape == (8, 1, SIZE, SIZE)
    assert (out_i[:, 1] - 2 * out_i[:, 0]).abs().max().item() < 1e-5
    assert (out_i[:, 2] - 3 * out_i[:, 0]).abs().max().item() < 1e-5
    assert ((out_i[:, :1] > 0.5) == (out_m > 0.5))[..., 4:-4, 4:-4].float().mean().item() >= 0.98


def test_rotation_by_multiples_of_90_degrees_matches_rot90() -> None:
    pattern = torch.rand(1, 2, 16, 16, generator=gen(4)).repeat(4, 1, 1, 1)
    mask = (pattern[:, :1] > 0.6).float()
    out_i, out_m = rotate_batch(pattern, mask, torch.tensor([90.0, -90.0, 180.0, 0.0]))
    for k, turns in enumerate((1, -1, 2, 0)):  # positive angle = counter-clockwise as displayed
        expected_i = torch.rot90(pattern[k], turns, dims=(-2, -1))
        expected_m = torch.rot90(mask[k], turns, dims=(-2, -1))
        assert (out_i[k] - expected_i)[..., 1:-1, 1:-1].abs().max().item() < 1e-5
        assert torch.equal(out_m[k][..., 1:-1, 1:-1], expected_m[..., 1:-1, 1:-1])
    # A 90-degree turn is not a flip: the top-left corner goes to the bottom-left.
    corner = torch.zeros(1, 1, 8, 8)
    corner[0, 0, 0:2, 0:2] = 1.0
    _, turned = rotate_batch(corner, corner, torch.tensor([90.0]))
    assert turned[0, 0, 6:8, 0:2].sum().item() == 4 and turned.sum().item() == 4


def test_rotation_of_non_square_images_is_in_pixel_space() -> None:
    # 8x12 image, centre at (row 4, col 6) in pixel-edge coordinates. A 2x2 block spanning rows 3..5,
    # cols 8..10 is centred 3 px right of the centre; turned 90 degrees counter-clockwise it must end up
    # 3 px above the centre (rows 0..2, cols 5..7) and stay 2x2 -- not stretched by the 12/8 aspect ratio.
    image = torch.zeros(1, 1, 8, 12)
    image[0, 0, 3:5, 8:10] = 1.0
    _, out = rotate_batch(image, image, torch.tensor([90.0]))
    assert out.sum().item() == 4
    assert out[0, 0, 0:2, 5:7].sum().item() == 4


def test_same_seed_same_output_and_different_samples_get_different_transforms() -> None:
    images, masks = l_batch(16)
    spec = AugmentSpec(rotate=30, hflip=0.5, vflip=0.5)
    a_i, a_m = augment_batch(images, masks, spec, gen(7))
    b_i, b_m = augment_batch(images, masks, spec, gen(7))
    assert torch.equal(a_i, b_i) and torch.equal(a_m, b_m)
    c_i, _ = augment_batch(images, masks, spec, gen(8))
    assert not torch.equal(a_i, c_i)
    # The generator advances: two calls in a row differ.
    g = gen(7)
    first, _ = augment_batch(images, masks, spec, g)
    second, _ = augment_batch(images, masks, spec, g)
    assert torch.equal(first, a_i) and not torch.equal(first, second)
    # All 16 copies of the same input came out different from each other.
    flat = a_i.flatten(1)
    distinct = {tuple(row.tolist()) for row in flat}
    assert len(distinct) == 16


def test_channels_last_input_gives_the_same_result() -> None:
    images, masks = l_batch(4)
    spec = AugmentSpec(rotate=20, hflip=0.5)
    ref_i, ref_m = augment_batch(images, masks, spec, gen(9))
    cl_i, cl_m = augment_batch(images.contiguous(memory_format=torch.channels_last), masks, spec, gen(9))
    assert (cl_i - ref_i).abs().max().item() < 1e-6
    assert torch.equal(cl_m, ref_m)


def test_bad_inputs_are_rejected() -> None:
    images, masks = l_batch(2)
    spec = AugmentSpec(hflip=0.5)
    with pytest.raises(ValueError):
        augment_batch(images[0], masks[0], spec, gen())
    with pytest.raises(ValueError):
        augment_batch(images, masks[:1], spec, gen())
    with pytest.raises(TypeError):
        augment_batch((images * 255).to(torch.uint8), masks, spec, gen())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_without_syncs() -> None:
    images, masks = l_batch(8)
    spec = AugmentSpec(rotate=30, hflip=0.5, vflip=0.5)
    cpu_i, cpu_m = augment_batch(images, masks, spec, gen(11))
    images, masks = images.cuda(), masks.cuda()  # these copies synchronise; augment_batch must not
    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        gpu_i, gpu_m = augment_batch(images, masks, spec, gen(11))
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    assert gpu_i.device.type == "cuda"
    assert (gpu_i.cpu() - cpu_i).abs().max().item() < 1e-4
    assert (gpu_m.cpu() != cpu_m).float().mean().item() < 0.005  # only ties at the 0.5 threshold may differ
