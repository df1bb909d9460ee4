"""Whole-batch, on-device data augmentation (random flips and rotations) applied identically to images and masks."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .data import IGNORE_INDEX
from .devices import HOST_WORK

__all__ = ["AugmentSpec", "augment_batch", "augment_pack", "rotate_batch", "VALID_SHARE"]

VALID_SHARE = 0.99  # with ignore: a rotated pixel is valid iff at least this share of it was sampled from valid pixels


@dataclass(frozen=True)
class AugmentSpec:
    """What to do to each training sample; every sample draws its own transform.

    rotate: maximum angle in degrees; each sample is rotated by an angle drawn
        uniformly from [−rotate, +rotate] about the image centre (0 = off).
    hflip: probability that a sample is flipped left↔right.
    vflip: probability that a sample is flipped top↔bottom.
    """

    rotate: float = 0.0
    hflip: float = 0.0
    vflip: float = 0.0

    def __post_init__(self) -> None:
        for name in ("rotate", "hflip", "vflip"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"augment.{name} must be a finite number, got {value!r}")
        if self.rotate < 0:
            raise ValueError(f"augment.rotate must be >= 0 degrees, got {self.rotate!r}")
        for name in ("hflip", "vflip"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"augment.{name} must be a probability in [0, 1], got {value!r}")

    @property
    def active(self) -> bool:
        """True if any transform can change a sample."""
        return self.rotate > 0 or self.hflip > 0 or self.vflip > 0


def _check_batch(images: Tensor, masks: Tensor) -> None:
    if images.dim() != 4 or masks.dim() != 4:
        raise ValueError(
            f"augment: expected images [B, C, H, W] and masks [B, 1, H, W], got {list(images.shape)} and {list(masks.shape)}"
        )
    if images.shape[0] != masks.shape[0] or images.shape[-2:] != masks.shape[-2:]:
        raise ValueError(
            f"augment: images {list(images.shape)} and masks {list(masks.shape)} differ in batch size or H x W"
        )
    if not images.is_floating_point():
        raise TypeError(f"augment: images must be a floating-point tensor, got {images.dtype}")


def rotate_batch(images: Tensor, masks: Tensor, angles_deg: Tensor, num_classes: int = 2,
                 ignore: bool = False) -> tuple[Tensor, Tensor]:
    """Rotate each sample ``i`` of the batch by ``angles_deg[i]`` degrees about the image centre.

    Positive angles turn the picture counter-clockwise as displayed (row 0 at the
    top), like ``torch.rot90(x, 1, dims=(-2, -1))`` for 90°. The rotation is in
    pixel space (correct for non-square images too), done with
    ``F.affine_grid`` + ``F.grid_sample`` (align_corners=False, zeros outside
    the image). Images are sampled bilinearly. Binary masks (``num_classes``
    2: images and masks in a single grid_sample call) are sampled bilinearly
    and then thresholded (> 0.5) back to exactly 0/1, so their boundary follows
    the image's interpolated edge. Label maps of ``num_classes`` K >= 3 (masks
    hold class indices 0 ... K-1) are sampled as one-hot maps of the foreground
    classes, bilinearly, with the background's share 1 minus theirs (so outside
    the image is background, class 0), and each pixel takes the class with the
    largest share (ties to the lower class index): only valid class indices,
    and an angle of 0 returns the map unchanged.

    ``ignore``: masks may hold -1 (``data.IGNORE_INDEX``) on pixels that are not image (any value < 0 counts). The
    valid map (mask >= 0) is rotated with the images, as one more 0/1 channel of the same grid_sample call, and the
    mask with its ignored pixels set to 0; an output pixel is valid iff its rotated valid share v is >= ``VALID_SHARE``
    (0.99), and every other pixel is -1, those rotated in from outside the patch included (zeros padding: v = 0).
    0.99 rather than 0.5: a pixel with 0.5 <= v < 1 is a blend of image and padding (its intensity darkened by the
    padding, its label by no data), so it is left out rather than trained on; 0.99 and not 1 so that float rounding
    of the bilinear weights (angles of exactly 90°, or 0°, whose samples fall on pixel centres up to ~1e-7) keeps a
    valid pixel valid. At 90° steps the -1 region is therefore exactly the rotated padding. A valid pixel's class is
    then read from the valid shares only: binary, foreground iff its share > 0.5·v; K classes, the background's
    share is v minus the foreground classes' (not 1 minus). Default False: the maths above, bit for bit.

    The [B, 2, 3] rotation matrices are built on the CPU in float64 (pass
    ``angles_deg`` as a CPU tensor to avoid a device→host copy) and moved to the
    batch's device in one non-blocking copy.
    """
    _check_batch(images, masks)
    b, c, h, w = images.shape
    rad = angles_deg.detach().to(device="cpu", dtype=torch.float64).reshape(b) * (math.pi / 180.0)
    with torch.profiler.record_function(HOST_WORK):  # the matrices, on the CPU (no kernel in a CUDA run)
        cos, sin = torch.cos(rad), torch.sin(rad)
        zero = torch.zeros_like(rad)
        # affine_grid maps each output pixel to the input point it samples. For a
        # counter-clockwise turn on screen (pixel coordinates x right, y down, origin
        # at the centre) output (x, y) samples input (cos·x − sin·y, sin·x + cos·y).
        # In normalised coordinates x_n = x / (W/2), y_n = y / (H/2) that is
        #   x_in = cos·x_n − sin·(H/W)·y_n,   y_in = sin·(W/H)·x_n + cos·y_n
        theta = torch.stack(
            [
                torch.stack([cos, -sin * (h / w), zero], dim=-1),
                torch.stack([sin * (w / h), cos, zero], dim=-1),
            ],
            dim=1,
        ).to(images.dtype)  # [B, 2, 3]
    theta = theta.to(images.device, non_blocking=True)
    grid = F.affine_grid(theta, [b, c + 1, h, w], align_corners=False)
    if ignore:
        valid = (masks >= 0).to(images.dtype)
        if num_classes > 2:
            out = F.grid_sample(torch.cat([images, valid], dim=1), grid, mode="bilinear", padding_mode="zeros",
                                align_corners=False)
            new_images, share = out[:, :c], out[:, c:]
            labels = _rotate_labels(masks, grid, num_classes, images.dtype, valid_share=share)
        else:
            both = torch.cat([images, masks.clamp_min(0).to(images.dtype), valid], dim=1)
            out = F.grid_sample(both, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            new_images, share = out[:, :c], out[:, c + 1:]
            labels = (out[:, c:c + 1] > 0.5 * share).to(masks.dtype)
        new_masks = torch.where(share >= VALID_SHARE, labels, torch.full_like(labels, IGNORE_INDEX))
    elif num_classes > 2:
        new_images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        new_masks = _rotate_labels(masks, grid, num_classes, images.dtype)
    else:
        both = torch.cat([images, masks.to(images.dtype)], dim=1)
        out = F.grid_sample(both, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        new_images = out[:, :c]
        new_masks = (out[:, c:] > 0.5).to(masks.dtype)
    if images.is_contiguous(memory_format=torch.channels_last):
        new_images = new_images.contiguous(memory_format=torch.channels_last)
    else:
        new_images = new_images.contiguous()
    return new_images, new_masks.contiguous()


_CLASS_CHUNK = 16  # foreground classes sampled per grid_sample call (bounds the one-hot's memory for many classes)


def _rotate_labels(masks: Tensor, grid: Tensor, k: int, dtype: torch.dtype,
                   valid_share: Tensor | None = None) -> Tensor:
    """Label maps [B, 1, H, W] of class indices sampled at ``grid``: each foreground class's one-hot bilinearly (in
    chunks of classes), background = 1 - their sum, the largest share wins (ties to the lower index). With
    ``valid_share`` (the rotated valid map, see rotate_batch's ``ignore``) background = valid_share - their sum:
    ignored pixels (< 0) are in no foreground one-hot, so they count as no class at all."""
    labels = masks.to(torch.long)
    total = best = arg = None
    for start in range(1, k, _CLASS_CHUNK):
        ids = torch.arange(start, min(start + _CLASS_CHUNK, k), device=masks.device).view(1, -1, 1, 1)
        share = F.grid_sample((labels == ids).to(dtype), grid, mode="bilinear", padding_mode="zeros",
                              align_corners=False)
        value, index = share.max(dim=1, keepdim=True)  # the first of equal maxima: the lower class
        index = index + start
        if best is None:
            total, best, arg = share.sum(dim=1, keepdim=True), value, index
        else:
            total = total + share.sum(dim=1, keepdim=True)
            better = value > best
            best, arg = torch.where(better, value, best), torch.where(better, index, arg)
    background = 1.0 - total if valid_share is None else valid_share - total
    return torch.where(best > background, arg, torch.zeros_like(arg)).to(masks.dtype)


def augment_batch(
    images: Tensor, masks: Tensor, spec: AugmentSpec, generator: torch.Generator, num_classes: int = 2,
    ignore: bool = False,
) -> tuple[Tensor, Tensor]:
    """Randomly flip and rotate a whole batch on its own device, images [B, C, H, W] and masks [B, 1, H, W] alike
    (binary 0/1 masks for ``num_classes`` 2, label maps of class indices for K >= 3: see :func:`rotate_batch`).

    Per sample, in this order: horizontal flip with probability ``spec.hflip``,
    vertical flip with probability ``spec.vflip``, rotation by U(−rotate, +rotate)
    degrees (see :func:`rotate_batch`). All random numbers (3·B uniforms per call,
    always, so the stream does not depend on the spec) come from ``generator``,
    which must be a CPU ``torch.Generator``: the same seed gives the same
    transforms on CPU and CUDA. Only those few numbers are moved to the batch's
    device; there is no per-sample Python loop.

    If the spec is not active the inputs are returned as they are (same
    objects). A transform whose parameter is 0 is skipped entirely, so with
    ``rotate == 0`` samples are only ever flipped (bit-exact copies).

    ``ignore``: masks may hold -1 (``data.IGNORE_INDEX``) on pixels that are not image. Flips move those values as
    they move every other (a flip is a copy), so -1 stays exactly on the flipped padding either way; rotations carry
    it with ``rotate_batch(..., ignore=True)``. The random draws do not depend on it.
    """
    if not spec.active:
        return images, masks
    _check_batch(images, masks)
    if generator.device.type != "cpu":
        raise ValueError(f"augment: generator must be a CPU torch.Generator, got one on {generator.device}")
    b = images.shape[0]
    with torch.profiler.record_function(HOST_WORK):  # (no kernel in a CUDA run: see launches.py)
        draws = torch.rand(3, b, generator=generator, dtype=torch.float64)
        # Flip decisions are made on the CPU and moved in one non-blocking copy.
        flags = torch.stack([draws[0] < spec.hflip, draws[1] < spec.vflip])
        angles = (draws[2] * 2.0 - 1.0) * spec.rotate  # stays on the CPU, see rotate_batch
    flags = flags.to(images.device, non_blocking=True)

    def select(flag: Tensor, flipped: Tensor, original: Tensor) -> Tensor:
        return torch.where(flag.view(b, 1, 1, 1), flipped, original)

    if spec.hflip > 0:
        images = select(flags[0], images.flip(-1), images)
        masks = select(flags[0], masks.flip(-1), masks)
    if spec.vflip > 0:
        images = select(flags[1], images.flip(-2), images)
        masks = select(flags[1], masks.flip(-2), masks)
    if spec.rotate > 0:
        images, masks = rotate_batch(images, masks, angles, num_classes=num_classes, ignore=ignore)
    return images, masks


def augment_pack(x: Tensor, y: Tensor, members: list[tuple[AugmentSpec, torch.Generator] | None], *,
                 num_classes: int = 2, ignore: bool = False) -> tuple[Tensor, Tensor]:
    """A pack's batch [N, B, ...] (member i's at [i]) augmented as augment_batch would augment each member's batch
    with its (spec, generator) = ``members[i]`` (the same 3*B draws, the same flips and rotations), in one pass over
    the pack's batch; None: a frozen slot, its batch as it is."""
    specs = [m[0] if m is not None else AugmentSpec() for m in members]
    act = [i for i, s in enumerate(specs) if s.active]
    if not act:
        return x, y
    n, b = x.shape[:2]
    # each member's draws from its own (CPU) generator: host work in a CUDA run (the launch model counts none of it)
    with torch.profiler.record_function(HOST_WORK):
        hflip = torch.zeros(n, b, dtype=torch.bool)
        vflip = torch.zeros(n, b, dtype=torch.bool)
        angles = torch.zeros(n, b, dtype=torch.float64)
        rotating = []
        for i in act:
            spec = specs[i]
            draws = torch.rand(3, b, generator=members[i][1], dtype=torch.float64)  # type: ignore[index]
            hflip[i], vflip[i] = draws[0] < spec.hflip, draws[1] < spec.vflip
            if spec.rotate > 0:
                angles[i] = (draws[2] * 2.0 - 1.0) * spec.rotate
                rotating.append(i)
        flags = torch.stack([hflip.reshape(-1), vflip.reshape(-1)])
        rows = torch.cat([torch.arange(i * b, (i + 1) * b) for i in rotating]) if rotating else None
        turns = angles[rotating].reshape(-1)
    images, masks = x.reshape(n * b, *x.shape[2:]), y.reshape(n * b, *y.shape[2:])
    flags = flags.to(images.device, non_blocking=True)
    for k, (flip_dim, used) in enumerate(((-1, any(s.hflip > 0 for s in specs)), (-2, any(s.vflip > 0 for s in specs)))):
        if used:
            f = flags[k].view(-1, 1, 1, 1)
            images = torch.where(f, images.flip(flip_dim), images)
            masks = torch.where(f, masks.flip(flip_dim), masks)
    if rows is not None:
        rows = rows.to(images.device)
        turned, turned_masks = rotate_batch(images[rows], masks[rows], turns, num_classes=num_classes, ignore=ignore)
        images, masks = images.index_copy(0, rows, turned), masks.index_copy(0, rows, turned_masks)
    return images.reshape(x.shape), masks.reshape(y.shape)
