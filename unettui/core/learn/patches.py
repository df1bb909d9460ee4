"""Patch sampling at native resolution (issue 25): random P x P crops of images of any size and aspect ratio, with
foreground oversampling as nnU-Net does, and an epoch whose size follows the training pixels.

The trainers (train.py, pack_train.py) use it when a run sets ``patch_size``. How to use it::

    g = torch.Generator().manual_seed(seed)
    sampler = PatchSampler(images, masks, 64, foreground_oversample=1 / 3, generator=g)
    log.extend(sampler.notes)                   # e.g. "3 of 12 training images are smaller than ..."
    for epoch in range(epochs):
        plan = sampler.plan()                   # where this epoch's patches are
        for start in range(0, len(plan), batch_size):
            x, y = sampler.crop(plan[start:start + batch_size])
            ...                                 # to the device, augment, loss (ignoring y == -1)

``images`` is a list of float tensors ``[C, H_i, W_i]`` and ``masks`` a list of ``[1, H_i, W_i]`` holding each pixel's
class index (0 background, 1 ... K-1; the binary task's 0/1), as in ``core.learn.data.SegData`` but one tensor per
image, each at its own size.

**What a batch is** (:class:`PatchBatch`, a named tuple ``(x, y)``): ``x`` ``[B, C, P, P]``, the images' dtype,
zeros on padding; ``y`` ``[B, 1, P, P]`` float32 class indices, ``ignore_index`` (-1, ``data.IGNORE_INDEX``) on
padding, the pixels that are not in the image. The trainers skip them through ``y`` (the task's ``ignore_loss_fn``,
counts that skip ``y < 0``, ``augment_batch(..., ignore=True)``, which carries them through flips and rotations and
marks pixels rotated in from outside the patch as ignored too). Where every image is at least P x P there is no
padding (:attr:`PatchSampler.padded` is 0) and the trainers keep the plain losses and augmentation.

**How a patch is drawn** (all random numbers from ``generator``, a CPU ``torch.Generator``, a fixed number per patch
whatever the settings, so the same seed gives the same patches on any device):

- *Random patch*: an image with probability proportional to its pixel count ``H_i * W_i`` (a big image contributes as
  much as its area: the same as picking a uniformly random training pixel and taking its image), then a uniformly
  random position among the patch positions inside the image.
- *Foreground patch*: an image with probability proportional to its pixel count among the images that have foreground
  (any class > 0), then a uniformly random foreground pixel of that image, then a uniformly random position among the
  patch positions that contain that pixel and stay inside the image. The patch always contains foreground. (nnU-Net
  first picks a class, which favours rare classes; here every foreground pixel is equally likely.)
- *Exact share*: an epoch of ``n`` patches has exactly ``round(foreground_oversample * n)`` foreground patches (half
  up), at random places in the epoch; the rest are random patches (which contain foreground at the data's natural
  rate). If no image has any foreground, every patch is random and ``notes`` says so.
- *Images smaller than P* (in height, width or both): the patch is P x P all the same; along a short side the image
  lies at a uniformly random offset inside the patch (every position where the patch covers the whole side), the rest
  is padding. ``notes`` says once how many images were padded.

**The epoch**: ``patches_per_epoch`` patches; by default ``ceil(total training pixels / P**2)``, the number of patches
that covers the training pixels once in expectation (a random patch of an image at least P x P covers P**2 of its
pixels), so an epoch is the same amount of data for every dataset and patch size, and the numbers stay comparable
across datasets. Padding does not count as training pixels.

Cropping is one slice copy per patch (no per-pixel Python loop); each image's foreground pixels are found once, with
``torch.nonzero``, when the sampler is built. Batches are made on the images' device (keep the images on the CPU and
move each batch, or put them on the accelerator if they fit there).
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["PatchBatch", "PatchPlan", "PatchSampler", "default_patches_per_epoch"]


class PatchBatch(NamedTuple):
    """One batch of patches: ``x`` [B, C, P, P], ``y`` [B, 1, P, P] float32 class indices (``ignore_index`` on
    padding). Unpacks as ``x, y = batch``."""

    x: Tensor
    y: Tensor


@dataclass(frozen=True)
class PatchPlan:
    """Where ``n`` patches are: 1-D CPU tensors of length n. ``image`` (long): the image index; ``top``, ``left``
    (long): the patch's top-left corner in that image's pixel coordinates (negative, or past ``H - P``, only along a
    side shorter than P: the image then lies inside the patch at offset ``-top``); ``forced`` (bool): drawn as a
    foreground patch."""

    image: Tensor
    top: Tensor
    left: Tensor
    forced: Tensor

    def __len__(self) -> int:
        return int(self.image.shape[0])

    def __getitem__(self, index: slice) -> PatchPlan:
        return PatchPlan(self.image[index], self.top[index], self.left[index], self.forced[index])


def default_patches_per_epoch(sizes: Sequence[tuple[int, int]], patch: int) -> int:
    """``ceil(sum(H_i * W_i) / patch**2)``: the patches that cover the training pixels once in expectation."""
    total = sum(int(h) * int(w) for h, w in sizes)
    return max(1, -(-total // (int(patch) ** 2)))


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}") from None
    if number < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return number


def _draw_positions(u: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    """Uniform integers in [lo, hi] (long tensors, lo <= hi) from uniforms ``u`` in [0, 1) (float64)."""
    span = (hi - lo + 1).to(torch.float64)
    return torch.minimum(lo + torch.floor(u * span).to(torch.long), hi)


class PatchSampler:
    """Random P x P training patches of images at their own resolution; see the module's docstring for the batch
    format, how patches are drawn and what an epoch is.

    ``images``: a non-empty sequence of ``[C, H_i, W_i]`` tensors (same C, same device); ``masks``: as many
    ``[1, H_i, W_i]`` tensors of class indices. ``patch``: P >= 1. ``foreground_oversample``: the share of each
    epoch's patches forced to contain foreground, in [0, 1]. ``patches_per_epoch``: patches per epoch (default
    :func:`default_patches_per_epoch`). ``generator``: a CPU ``torch.Generator``, advanced by every epoch drawn (the
    same seed gives the same epochs, in order). ``ignore_index``: the value ``y`` holds on padding.

    Bad arguments raise a one-line ``ValueError``.
    """

    def __init__(
        self,
        images: Sequence[Tensor],
        masks: Sequence[Tensor],
        patch: int,
        *,
        foreground_oversample: float = 1 / 3,
        patches_per_epoch: int | None = None,
        generator: torch.Generator,
        ignore_index: int = -1,
    ) -> None:
        self.patch = _check_int("patch", patch, 1)
        share = foreground_oversample
        if isinstance(share, bool) or not isinstance(share, numbers.Real) or not 0.0 <= float(share) <= 1.0:
            raise ValueError(f"foreground_oversample must be a number in [0, 1], got {foreground_oversample!r}")
        self.foreground_oversample = float(share)
        if not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        if generator.device.type != "cpu":
            raise ValueError(f"generator must be a CPU torch.Generator, got one on {generator.device}")
        self.generator = generator
        self.ignore_index = _check_int("ignore_index", ignore_index, -(2**24))  # float32 holds it exactly
        images, masks = list(images), list(masks)
        if not images:
            raise ValueError("PatchSampler needs at least one image, got none")
        if len(masks) != len(images):
            raise ValueError(f"PatchSampler got {len(images)} images but {len(masks)} masks")
        self._check_pairs(images, masks)
        self.images: list[Tensor] = images
        self.masks: list[Tensor] = masks
        self.channels = int(images[0].shape[0])
        self.device = images[0].device
        self.sizes: list[tuple[int, int]] = [(int(im.shape[-2]), int(im.shape[-1])) for im in images]
        self.total_pixels = sum(h * w for h, w in self.sizes)
        if patches_per_epoch is None:
            self.patches_per_epoch = default_patches_per_epoch(self.sizes, self.patch)
        else:
            self.patches_per_epoch = _check_int("patches_per_epoch", patches_per_epoch, 1)

        p = self.patch
        self._h = torch.tensor([h for h, _ in self.sizes], dtype=torch.long)
        self._w = torch.tensor([w for _, w in self.sizes], dtype=torch.long)
        area = self._h * self._w
        self._cum_area = torch.cumsum(area, 0)
        # each image's foreground pixels, found once: flat indices (row * W + col), all images' concatenated
        flats = [torch.nonzero(m.detach().reshape(-1).cpu() > 0).reshape(-1) for m in masks]
        self.foreground_pixels = torch.tensor([int(f.numel()) for f in flats], dtype=torch.long)
        self._fg_start = torch.cumsum(self.foreground_pixels, 0) - self.foreground_pixels
        index_dtype = torch.int32 if max(h * w for h, w in self.sizes) < 2**31 else torch.long
        self._fg_flat = torch.cat([f.to(index_dtype) for f in flats])
        self._cum_fg_area = torch.cumsum(torch.where(self.foreground_pixels > 0, area, torch.zeros_like(area)), 0)

        self.notes: list[str] = []
        small = [i for i, (h, w) in enumerate(self.sizes) if h < p or w < p]
        self.padded = len(small)
        if small:
            smallest = min(small, key=lambda i: self.sizes[i][0] * self.sizes[i][1])
            h, w = self.sizes[smallest]
            self.notes.append(
                f"{len(small)} of {len(images)} training images are smaller than the {p}x{p} patch (the smallest "
                f"{h}x{w}, image {smallest}); their patches are padded, and the padding is ignored by losses and "
                f"metrics")
        if self.foreground_oversample > 0 and int(self._cum_fg_area[-1]) == 0:
            self.notes.append(
                f"foreground_oversample {self.foreground_oversample:g} has no effect: no training image has "
                f"foreground, so every patch is placed at random")

    @staticmethod
    def _check_pairs(images: list[Tensor], masks: list[Tensor]) -> None:
        first = images[0]
        for i, (im, m) in enumerate(zip(images, masks)):
            if not isinstance(im, Tensor) or im.dim() != 3:
                raise ValueError(f"image {i} must be a [C, H, W] tensor, got "
                                 f"{list(im.shape) if isinstance(im, Tensor) else type(im).__name__}")
            if not isinstance(m, Tensor) or m.dim() != 3 or m.shape[0] != 1:
                raise ValueError(f"mask {i} must be a [1, H, W] tensor, got "
                                 f"{list(m.shape) if isinstance(m, Tensor) else type(m).__name__}")
            if im.shape[-2:] != m.shape[-2:]:
                raise ValueError(f"image {i} is {im.shape[-2]}x{im.shape[-1]} but its mask is "
                                 f"{m.shape[-2]}x{m.shape[-1]}")
            if im.shape[-2] < 1 or im.shape[-1] < 1:
                raise ValueError(f"image {i} is empty ({im.shape[-2]}x{im.shape[-1]})")
            if im.shape[0] != first.shape[0]:
                raise ValueError(f"image {i} has {im.shape[0]} channels but image 0 has {first.shape[0]}")
            if im.device != first.device or m.device != first.device:
                raise ValueError(f"image {i} and its mask are on {im.device} and {m.device}, image 0 on "
                                 f"{first.device}: put them all on one device")

    # ------------------------------------------------------------------ the epoch

    def _forced_count(self, n: int) -> int:
        if int(self._cum_fg_area[-1]) == 0:
            return 0
        return min(n, int(math.floor(self.foreground_oversample * n + 0.5)))

    def plan(self, n: int | None = None) -> PatchPlan:
        """Draw where ``n`` patches (default ``patches_per_epoch``) are, on the CPU: exactly ``round(share * n)``
        foreground patches at random places among them. Advances the generator."""
        n = self.patches_per_epoch if n is None else _check_int("n", n, 1)
        g, p = self.generator, self.patch
        order = torch.randperm(n, generator=g)
        u = torch.rand(4, n, generator=g, dtype=torch.float64)  # image, foreground pixel, top, left
        forced = torch.zeros(n, dtype=torch.bool)
        forced[order[: self._forced_count(n)]] = True

        def pick(cum: Tensor, draw: Tensor) -> Tensor:
            total = int(cum[-1])
            pixel = torch.minimum(torch.floor(draw * total).to(torch.long), torch.tensor(max(total - 1, 0)))
            return torch.searchsorted(cum, pixel, right=True)

        image = pick(self._cum_area, u[0])
        if forced.any():
            image = torch.where(forced, pick(self._cum_fg_area, u[0]), image)
        h, w = self._h[image], self._w[image]
        lo_y, hi_y = torch.clamp(h - p, max=0), torch.clamp(h - p, min=0)
        lo_x, hi_x = torch.clamp(w - p, max=0), torch.clamp(w - p, min=0)
        if forced.any():
            count = self.foreground_pixels[image].clamp(min=1)
            k = torch.minimum(torch.floor(u[1] * count.to(torch.float64)).to(torch.long), count - 1)
            # (an image without foreground, in a random patch, reads some other pixel: unused, torch.where below)
            flat = self._fg_flat[(self._fg_start[image] + k).clamp(max=self._fg_flat.numel() - 1)].to(torch.long)
            row, col = flat // w, flat % w
            lo_y = torch.where(forced, torch.maximum(lo_y, row - p + 1), lo_y)
            hi_y = torch.where(forced, torch.minimum(hi_y, row), hi_y)
            lo_x = torch.where(forced, torch.maximum(lo_x, col - p + 1), lo_x)
            hi_x = torch.where(forced, torch.minimum(hi_x, col), hi_x)
        top = _draw_positions(u[2], lo_y, hi_y)
        left = _draw_positions(u[3], lo_x, hi_x)
        return PatchPlan(image, top, left, forced)

    def crop(self, plan: PatchPlan) -> PatchBatch:
        """The patches of ``plan``, on the images' device (one slice copy per patch)."""
        p, b = self.patch, len(plan)
        x = torch.zeros((b, self.channels, p, p), dtype=self.images[0].dtype, device=self.device)
        y = torch.full((b, 1, p, p), float(self.ignore_index), dtype=torch.float32, device=self.device)
        for j, (i, top, left) in enumerate(zip(plan.image.tolist(), plan.top.tolist(), plan.left.tolist())):
            h, w = self.sizes[i]
            y0, y1 = max(top, 0), min(top + p, h)  # the part of the image inside the patch
            x0, x1 = max(left, 0), min(left + p, w)
            dy, dx = y0 - top, x0 - left  # where it lands in the patch
            x[j, :, dy:dy + y1 - y0, dx:dx + x1 - x0] = self.images[i][:, y0:y1, x0:x1]
            y[j, :, dy:dy + y1 - y0, dx:dx + x1 - x0] = self.masks[i][:, y0:y1, x0:x1]
        return PatchBatch(x, y)
