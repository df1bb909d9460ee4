"""The classic UNet (Ronneberger et al. 2015, 'same' padding, configurable width/depth/dropout), its seedable dropout and an input-size check."""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..define.config import check_image_size
from ..define.names import is_int

__all__ = ["UNet", "ConvBlock", "SeededDropout", "dropout_mask", "check_image_size", "count_parameters"]


def dropout_mask(shape, p: float, generator: torch.Generator, dtype: torch.dtype, device) -> Tensor:
    """An element-wise dropout multiplier of ``shape``: 0 with probability ``p``, else ``1/(1-p)``.

    Drawn as one contiguous tensor from ``generator`` (``bernoulli_(1-p)``, then ``div_(1-p)``), so the
    same generator state gives the same mask whatever the memory format of the activations. A pack
    (unettui.core.learn.pack) draws each member's mask with exactly these two ops from the member's own
    generator, which is what makes a packed member's dropout equal to its solo run's.
    """
    return torch.empty(shape, dtype=dtype, device=device).bernoulli_(1.0 - p, generator=generator).div_(1.0 - p)


def check_generator(generator: torch.Generator, device: torch.device) -> None:
    if generator.device.type != device.type:
        raise ValueError(
            f"dropout generator is on {generator.device} but the activations are on {device}; "
            f"create it with torch.Generator(device={str(device)!r})"
        )


class SeededDropout(nn.Dropout):
    """Element-wise dropout (scaled by 1/(1-p) in training, identity in eval) whose masks can come from a per-run generator.

    Without a generator (the default) it is exactly ``nn.Dropout``: masks from the global RNG. With
    ``generator`` set (see :meth:`UNet.set_dropout_generator`) every mask is drawn by
    :func:`dropout_mask` from that generator, which must live on the activations' device type (a
    CUDA generator for CUDA activations). The generator is a plain attribute: not in the state_dict;
    a checkpoint that wants exact resumption saves ``generator.get_state()`` itself.
    """

    generator: torch.Generator | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self.generator is None or not self.training or self.p == 0.0:
            return F.dropout(x, self.p, self.training, self.inplace)
        check_generator(self.generator, x.device)
        return x * dropout_mask(x.shape, self.p, self.generator, x.dtype, x.device)


class ConvBlock(nn.Sequential):
    """(Conv3x3 -> BatchNorm -> ReLU) x 2, then SeededDropout(p) (nn.Identity when p == 0)."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            SeededDropout(dropout) if dropout > 0 else nn.Identity(),
        )


class UNet(nn.Module):
    """Classic UNet with 'same' padding, so the logits have the input's height and width.

    Encoder level ``i`` (``i = 0 .. depth``) is a :class:`ConvBlock` of width
    ``base_channels * 2**i``; levels are joined by MaxPool2d(2), and level
    ``depth`` is the bottleneck. With ``base_channels=16, depth=4`` the widths are
    16, 32, 64, 128, 256: the original 64 .. 1024 divided by 4. Each decoder level
    upsamples with ConvTranspose2d(kernel 2, stride 2) halving the width,
    concatenates the encoder skip of the same level (skip first, then the
    upsampled map) and applies a ConvBlock. A final 1x1 conv (with bias) gives
    ``out_channels`` logits (no sigmoid).

    Each 3x3 conv has ``bias=False`` (BatchNorm follows it) and Kaiming-normal
    init (fan_out, ReLU); the transposed and 1x1 convs keep PyTorch's defaults.

    Dropout: when ``dropout > 0`` a :class:`SeededDropout` (an element-wise
    ``nn.Dropout``) is applied at the end of *every* ConvBlock -- all ``depth``
    encoder blocks, the bottleneck block and all ``depth`` decoder blocks, i.e.
    ``2*depth + 1`` modules, and not after the final 1x1 conv. When
    ``dropout == 0`` no dropout module exists (``nn.Identity`` takes its place).
    Masks come from the global RNG unless :meth:`set_dropout_generator` gave the
    model a per-run generator; then the modules draw, in forward order, one mask
    of the activation's [B, C, H, W] shape each from it.

    Height and width of the input must be multiples of ``2**depth`` (see
    :func:`check_image_size`); ``forward`` raises ValueError otherwise. Works with
    channels_last inputs and under ``torch.autocast``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        base_channels: int = 16,
        depth: int = 4,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        for name, value in (
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("base_channels", base_channels),
            ("depth", depth),
        ):
            if not is_int(value) or value < 1:
                raise ValueError(f"UNet: {name} must be an integer >= 1, got {value!r}")
        if (
            isinstance(dropout, bool)
            or not isinstance(dropout, numbers.Real)
            or not (0.0 <= float(dropout) < 1.0)
        ):
            raise ValueError(f"UNet: dropout must be a number in [0, 1), got {dropout!r}")
        dropout = float(dropout)

        self.in_channels = in_channels
        self.out_channels = out_channels
        self.base_channels = base_channels
        self.depth = depth
        self.dropout = dropout

        widths = [base_channels * 2**i for i in range(depth + 1)]
        self.widths = tuple(widths)
        self.encoders = nn.ModuleList()
        previous = in_channels
        for width in widths:
            self.encoders.append(ConvBlock(previous, width, dropout))
            previous = width
        self.pool = nn.MaxPool2d(2)
        # Decoder lists are ordered from the deepest level (depth-1) up to level 0.
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for i in reversed(range(depth)):
            self.ups.append(nn.ConvTranspose2d(widths[i + 1], widths[i], kernel_size=2, stride=2))
            self.decoders.append(ConvBlock(2 * widths[i], widths[i], dropout))
        self.head = nn.Conv2d(widths[0], out_channels, kernel_size=1)

        for module in self.modules():
            if isinstance(module, nn.Conv2d) and module.kernel_size == (3, 3):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def set_dropout_generator(self, generator: torch.Generator | None) -> None:
        """Draw every dropout mask from ``generator`` (None: back to the global RNG, i.e. nn.Dropout).

        On CUDA pass a CUDA generator, ``torch.Generator(device="cuda").manual_seed(seed)``. Not part of
        the state_dict; no-op without dropout.
        """
        for module in self.modules():
            if isinstance(module, SeededDropout):
                module.generator = generator

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
            f"base_channels={self.base_channels}, depth={self.depth}, dropout={self.dropout}"
        )

    def forward(self, x: Tensor) -> Tensor:
        """Map ``x`` of shape [B, in_channels, H, W] to logits of shape [B, out_channels, H, W]."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"UNet expects input of shape [B, {self.in_channels}, H, W], got {list(x.shape)}"
            )
        for size in (x.shape[-2], x.shape[-1]):
            problem = check_image_size(int(size), self.depth)
            if problem is not None:
                raise ValueError(f"UNet input {list(x.shape)}: {problem}")

        skips: list[Tensor] = []
        for level, encoder in enumerate(self.encoders):
            if level:
                x = self.pool(x)
            x = encoder(x)
            skips.append(x)
        x = skips.pop()  # bottleneck
        for up, decoder in zip(self.ups, self.decoders):
            x = up(x)
            x = decoder(torch.cat([skips.pop(), x], dim=1))
        return self.head(x)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
