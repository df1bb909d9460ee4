"""The classic UNet (Ronneberger et al. 2015, 'same' padding, configurable width/depth/dropout) and an input-size check."""

from __future__ import annotations

import numbers

import torch
from torch import Tensor, nn

from .config import _is_int, check_image_size

__all__ = ["UNet", "ConvBlock", "check_image_size", "count_parameters"]


class ConvBlock(nn.Sequential):
    """(Conv3x3 -> BatchNorm -> ReLU) x 2, then Dropout(p) (nn.Identity when p == 0)."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
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

    Dropout: when ``dropout > 0`` an ``nn.Dropout(dropout)`` (element-wise) is
    applied at the end of *every* ConvBlock -- all ``depth`` encoder blocks, the
    bottleneck block and all ``depth`` decoder blocks, i.e. ``2*depth + 1``
    modules, and not after the final 1x1 conv. When ``dropout == 0`` no dropout
    module exists (``nn.Identity`` takes its place).

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
            if not _is_int(value) or value < 1:
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
