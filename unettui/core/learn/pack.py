"""Packs: N UNets trained as ONE fused network (PackedUNet) and their losses in one pass (PackLoss).

Layout: every pack tensor stacks the members along dim 0 of the member's tensor (conv weight [O, I, k, k]
-> [N*O, I, k, k], member i owning rows [i*O, (i+1)*O); BatchNorm vectors -> [N*C]; num_batches_tracked
-> [N]), under UNet's module tree and state_dict keys. Activations are [B, N*C, H, W], member i owning
channels [i*C, (i+1)*C): all convs (3x3, 2x2 transposed, 1x1 head) are groups=N, BatchNorm over N*C
channels is per channel hence per member, and the decoder's skip concatenation is per member (a plain
cat along dim 1 would feed member 1's channels to member 0). Input [B, N*Cin, H, W] or [N, B, Cin, H, W];
output logits [N, B, out_channels, H, W], contiguous, so logits[i] is laid out like a solo UNet's output.
channels_last (pack.to(memory_format=...)) and torch.autocast work. Dropout (PackedUNet.dropout_mode): "exact"
(the default), member i draws each mask of its own [B, C, H, W] shape from its generator with model.dropout_mask's
ops, i.e. its solo run's masks, one draw per member; "fused", one draw per layer for the whole pack from the first
member-with-dropout's generator, each member's channels dropped with its own p (masks depend on the pack).

Exactness contract: a member is its solo run's maths. Its loss sees logits[i] only; the pack's loss is
the SUM of member losses, whose backward gives each member exactly 1 (a NaN member touches no other; a
mean would scale every gradient by 1/N). On the CPU in float64 a pack equals N solo runs bit for bit
(tests/unit/test_pack.py); in fp32/bf16 and on GPUs grouped kernels round differently from solo ones, as
any change of convolution algorithm does. The optimizer step over the stacked tensors is pack_optim.py's.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..define.config import check_image_size
from .losses import make_loss
from .model import SeededDropout, UNet, check_generator

__all__ = ["PackedUNet", "PackLoss", "member_losses"]


class _GConv(nn.Module):
    """N convs (or stride-2 transposed convs) as one ``groups=N`` conv, weight stacked along dim 0."""

    def __init__(self, n: int, cin: int, cout: int, k: int, bias: bool, transposed: bool = False):
        super().__init__()
        self.n, self.k, self.transposed = n, k, transposed
        shape = (n * cin, cout, k, k) if transposed else (n * cout, cin, k, k)
        self.weight = nn.Parameter(torch.empty(shape))
        self.bias = nn.Parameter(torch.empty(n * cout)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        if self.transposed:
            return F.conv_transpose2d(x, self.weight, self.bias, stride=2, groups=self.n)
        return F.conv2d(x, self.weight, self.bias, padding=self.k // 2, groups=self.n)


class _GBatchNorm(nn.Module):
    """BatchNorm2d over N*C channels; num_batches_tracked is [N] (PackedUNet.forward counts them all at once)."""

    _version = 2  # nn.BatchNorm2d's, so member state_dict metadata matches UNet's

    def __init__(self, n: int, c: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n * c))
        self.bias = nn.Parameter(torch.zeros(n * c))
        self.register_buffer("running_mean", torch.zeros(n * c))
        self.register_buffer("running_var", torch.ones(n * c))
        self.register_buffer("num_batches_tracked", torch.zeros(n, dtype=torch.long))

    def forward(self, x: Tensor) -> Tensor:  # exactly nn.BatchNorm2d's call (momentum 0.1, eps 1e-5)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, self.training, 0.1, 1e-5)


DROPOUT_MODES = ("exact", "fused")  # PackedUNet.dropout_mode


class _PackedDropout(nn.Module):
    """Member i's channels dropped with probability ps[i], kept ones scaled by 1/(1-ps[i]); ``mode`` (PackedUNet's
    ``dropout_mode``): "exact", member i's mask drawn from generators[i] (global RNG if None) as its solo run's;
    "fused", ONE draw for all members from the generator of the first member with p > 0."""

    mode = "exact"

    def __init__(self, ps: Sequence[float]):
        super().__init__()
        self.ps = tuple(ps)
        self.generators: list[torch.Generator | None] = [None] * len(self.ps)
        self._per_channel: dict[tuple, tuple[Tensor, Tensor]] = {}  # fused: (keep [1, NC, 1, 1], scale [1, NC, 1, 1])

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        if self.mode == "fused":
            return self._fused(x)
        n = len(self.ps)
        b, nc, h, w = x.shape
        masks = torch.ones((n, b, nc // n, h, w), dtype=x.dtype, device=x.device)
        rows, drawn = masks.unbind(0), [i for i, p in enumerate(self.ps) if p > 0]
        for i in drawn:  # the two ops of model.dropout_mask, the division batched over members
            if self.generators[i] is not None:
                check_generator(self.generators[i], x.device)
            rows[i].bernoulli_(1.0 - self.ps[i], generator=self.generators[i])
        torch._foreach_div_([rows[i] for i in drawn], [1.0 - self.ps[i] for i in drawn])
        return (x.reshape(b, n, nc // n, h, w) * masks.transpose(0, 1)).reshape(b, nc, h, w)

    def _fused(self, x: Tensor) -> Tensor:
        """Three kernels whatever N: a [B, N*C, H, W] bernoulli of per-channel keep probabilities (1 for p = 0, so
        those members' channels are kept and scaled by exactly 1), the per-channel 1/(1-p), the product with x."""
        n, (b, nc, h, w) = len(self.ps), x.shape
        gen = next((g for g, p in zip(self.generators, self.ps) if p > 0), None)
        if gen is not None:
            check_generator(gen, x.device)
        key = (x.device, x.dtype, nc, self.ps)  # (ps too: a slot's p may be set to 0 after construction)
        if key not in self._per_channel:
            # keep in float32 at least (bf16 would turn 0.9 into 0.898); the scale with dropout_mask's own division
            keep = torch.tensor([1.0 - p for p in self.ps], dtype=torch.promote_types(x.dtype, torch.float32))
            scale = torch.stack([torch.ones((), dtype=x.dtype).div_(1.0 - p) for p in self.ps])
            self._per_channel[key] = tuple(t.repeat_interleave(nc // n).view(1, nc, 1, 1).to(x.device)
                                           for t in (keep, scale))
        keep, scale = self._per_channel[key]
        mask = torch.empty((b, nc, h, w), dtype=x.dtype, device=x.device).bernoulli_(keep, generator=gen)
        return x * mask.mul_(scale)


def _block(n: int, cin: int, cout: int, ps: Sequence[float]) -> nn.Sequential:
    """ConvBlock's layout (same child indices, hence the same state_dict keys)."""
    return nn.Sequential(
        _GConv(n, cin, cout, 3, bias=False), _GBatchNorm(n, cout), nn.ReLU(inplace=True),
        _GConv(n, cout, cout, 3, bias=False), _GBatchNorm(n, cout), nn.ReLU(inplace=True),
        _PackedDropout(ps) if any(p > 0 for p in ps) else nn.Identity(),
    )


def _member_cat(skip: Tensor, up: Tensor, n: int) -> Tensor:
    """Per member [skip_i, up_i] along channels, for [B, N*Cs, H, W] and [B, N*Cu, H, W]; keeps channels_last."""
    b, cs, h, w = skip.shape
    cu = up.shape[1]
    if skip.is_contiguous(memory_format=torch.channels_last) and not skip.is_contiguous():
        both = [t.permute(0, 2, 3, 1).reshape(b, h, w, n, c // n) for t, c in ((skip, cs), (up, cu))]
        return torch.cat(both, dim=4).view(b, h, w, cs + cu).permute(0, 3, 1, 2)
    both = [t.reshape(b, n, c // n, h, w) for t, c in ((skip, cs), (up, cu))]
    return torch.cat(both, dim=2).view(b, cs + cu, h, w)


class PackedUNet(nn.Module):
    """N UNets of one architecture as one network; see the module docstring for layout and contract.

    ``PackedUNet(n, ...)`` initialises member i like a fresh ``UNet`` built i-th from the global RNG;
    ``from_members`` packs existing UNets (seed each with ``torch.manual_seed`` before building it, as
    the trainer does). ``dropouts[i]`` is member i's dropout p; ``dropout_mode`` how its masks are drawn.
    """

    _dropout_mode = "exact"

    def __init__(self, n: int, in_channels: int = 1, out_channels: int = 1, base_channels: int = 16,
                 depth: int = 4, dropouts: Sequence[float] | None = None, *, _members: Sequence[UNet] | None = None):
        super().__init__()
        dropouts = [0.0] * n if dropouts is None else [float(p) for p in dropouts]
        if n < 1 or len(dropouts) != n:
            raise ValueError(f"PackedUNet: need n >= 1 and one dropout per member, got n={n}, dropouts={dropouts}")
        members = _members or [UNet(in_channels, out_channels, base_channels, depth, p) for p in dropouts]
        self.n, self.in_channels, self.out_channels = n, in_channels, out_channels
        self.base_channels, self.depth, self.dropouts = base_channels, depth, tuple(dropouts)
        widths = members[0].widths
        self.encoders = nn.ModuleList(_block(n, c, w, dropouts) for c, w in zip((in_channels, *widths), widths))
        self.pool = nn.MaxPool2d(2)
        self.ups, self.decoders = nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(depth)):
            self.ups.append(_GConv(n, widths[i + 1], widths[i], 2, bias=True, transposed=True))
            self.decoders.append(_block(n, 2 * widths[i], widths[i], dropouts))
        self.head = _GConv(n, widths[0], out_channels, 1, bias=True)
        self._bns = [m for m in self.modules() if isinstance(m, _GBatchNorm)]
        self._drops = [m for m in self.modules() if isinstance(m, _PackedDropout)]
        first = next(members[0].parameters())
        self.to(device=first.device, dtype=first.dtype)
        for i, member in enumerate(members):
            self.load_member_state_dict(i, member.state_dict())

    @classmethod
    def from_members(cls, members: Sequence[UNet]) -> PackedUNet:
        """Pack UNets of one architecture (weights, BN buffers and dropout p are copied; they may differ)."""
        archs = {(u.in_channels, u.out_channels, u.base_channels, u.depth) for u in members}
        if len(archs) != 1:
            raise ValueError(f"PackedUNet.from_members: members differ in architecture: {sorted(archs)}")
        pack = cls(len(members), *archs.pop(), dropouts=[u.dropout for u in members], _members=members)
        pack.set_dropout_generators([next((d.generator for d in u.modules() if isinstance(d, SeededDropout)), None)
                                     for u in members])
        return pack

    def extra_repr(self) -> str:
        return (f"n={self.n}, in_channels={self.in_channels}, out_channels={self.out_channels}, "
                f"base_channels={self.base_channels}, depth={self.depth}, dropouts={list(self.dropouts)}")

    # ---- member views --------------------------------------------------------------------------
    @staticmethod
    def member_rows(key: str, t: Tensor, i: int, n: int) -> Tensor:
        """Member i's part (a view) of ``t``, the pack tensor under state_dict key ``key`` of a pack of ``n``
        (also of a copy of a pack's state_dict, e.g. a trainer's snapshot of its best weights)."""
        if key.endswith("num_batches_tracked"):
            return t[i]
        r = t.shape[0] // n
        return t.narrow(0, i * r, r)

    def _rows(self, key: str, t: Tensor) -> Callable[[int], Tensor]:
        return lambda i: self.member_rows(key, t, i, self.n)

    def member_parameters(self, i: int) -> list[Tensor]:
        """Member i's parameters in ``UNet.parameters()`` order: leaf views of its rows, for its optimizer."""
        return [self._rows(k, p.detach())(i) for k, p in self.named_parameters()]

    def member_state_dict(self, i: int) -> OrderedDict[str, Tensor]:
        """Exactly ``UNet.state_dict()`` of member i (same keys, shapes, metadata); copies, not views
        (``torch.save`` of a view would write the whole pack's storage)."""
        sd = self.state_dict()
        out = OrderedDict((k, self._rows(k, v)(i).clone()) for k, v in sd.items())
        out._metadata = sd._metadata  # type: ignore[attr-defined]
        return out

    @torch.no_grad()
    def load_member_state_dict(self, i: int, state_dict: dict[str, Tensor]) -> None:
        """Load a ``UNet.state_dict()`` (a solo checkpoint's "model") into member i; strict."""
        own = self.state_dict()
        if set(own) != set(state_dict):
            raise KeyError(f"member state_dict keys differ: missing {sorted(set(own) - set(state_dict))}, "
                           f"unexpected {sorted(set(state_dict) - set(own))}")
        for k, v in own.items():
            dst = self._rows(k, v)(i)
            if dst.shape != state_dict[k].shape:
                raise ValueError(f"{k}: member shape {list(dst.shape)}, got {list(state_dict[k].shape)}")
            dst.copy_(state_dict[k])

    @property
    def dropout_mode(self) -> str:
        """How the dropout layers draw their masks: "exact" (default; each member's own generator, its solo run's
        masks, one draw per member per layer) or "fused" (one draw per layer for the whole pack, from the generator
        of the first member with dropout; each member's p and 1/(1-p) its own, but its masks depend on the pack)."""
        return self._dropout_mode

    @dropout_mode.setter
    def dropout_mode(self, mode: str) -> None:
        if mode not in DROPOUT_MODES:
            raise ValueError(f"pack dropout mode {mode!r}: use {' or '.join(DROPOUT_MODES)}")
        self._dropout_mode = mode
        for m in self._drops:
            m.mode = mode

    def set_dropout_generators(self, generators: Sequence[torch.Generator | None]) -> None:
        """Member i draws its dropout masks from generators[i] (on the activations' device type)."""
        if len(generators) != self.n:
            raise ValueError(f"need {self.n} generators, got {len(generators)}")
        for m in self._drops:
            m.generators = list(generators)

    def freeze_slot(self, i: int) -> None:
        """Slot i trains no more (its member left the pack): its dropout draws nothing (p 0, no generator), so
        nobody's generator moves for it (PackOptimizer.release stops its steps)."""
        self.dropouts = tuple(0.0 if j == i else p for j, p in enumerate(self.dropouts))
        for m in self._drops:
            m.ps = self.dropouts
            m.generators[i] = None
            m._per_channel.clear()  # (fused mode's per-channel probabilities of the old ps)

    # ---- forward -------------------------------------------------------------------------------
    def pack_inputs(self, xs: Tensor) -> Tensor:
        """[N, B, Cin, H, W] (member i's batch at xs[i]) -> [B, N*Cin, H, W] (one copy)."""
        n, b, c, h, w = xs.shape
        return xs.transpose(0, 1).reshape(b, n * c, h, w)

    def forward(self, x: Tensor) -> Tensor:
        """Members' batches [B, N*Cin, H, W] or [N, B, Cin, H, W] -> logits [N, B, out_channels, H, W]."""
        if x.dim() == 5 and x.shape[0] == self.n:
            x = self.pack_inputs(x)
        if x.dim() != 4 or x.shape[1] != self.n * self.in_channels:
            raise ValueError(f"PackedUNet expects [B, {self.n * self.in_channels}, H, W] or "
                             f"[{self.n}, B, {self.in_channels}, H, W], got {list(x.shape)}")
        for size in x.shape[-2:]:
            problem = check_image_size(int(size), self.depth)
            if problem is not None:
                raise ValueError(f"PackedUNet input {list(x.shape)}: {problem}")
        if self.training:  # every BatchNorm's counters, in one op instead of one per layer
            torch._foreach_add_([m.num_batches_tracked for m in self._bns], 1)
        skips: list[Tensor] = []
        for level, encoder in enumerate(self.encoders):
            if level:
                x = self.pool(x)
            x = encoder(x)
            skips.append(x)
        x = skips.pop()
        for up, decoder in zip(self.ups, self.decoders):
            x = decoder(_member_cat(skips.pop(), up(x), self.n))
        out = self.head(x)
        b, _, h, w = out.shape
        return out.view(b, self.n, self.out_channels, h, w).transpose(0, 1).contiguous()


def member_losses(logits: Tensor, targets: Tensor, loss_fns: Sequence[Callable[[Tensor, Tensor], Tensor]]) -> Tensor:
    """[N] per-member losses, ``loss_fns[i](logits[i], targets[i])``; backprop their ``.sum()`` (not a mean)."""
    return torch.stack([fn(logits[i], targets[i]) for i, fn in enumerate(loss_fns)])


class _MemberMeanBCE(torch.autograd.Function):
    """Per-member mean BCE with logits, [N, ...] -> [N], whose gradient is computed as
    F.binary_cross_entropy_with_logits(reduction="mean") computes its own: ((sigmoid(x) - y) * grad) / numel.
    (Autograd through ``reduction="none"`` then ``.mean`` would compute (sigmoid(x) - y) * (grad / numel), which
    rounds differently whenever numel is not a power of two: an odd last batch.)"""

    @staticmethod
    def forward(ctx, x: Tensor, y: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, y)
        return F.binary_cross_entropy_with_logits(x, y, reduction="none").mean(tuple(range(1, x.dim())))

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        x, y = ctx.saved_tensors
        per_member = x[0].numel()
        return (x.sigmoid() - y) * grad.view(-1, *[1] * (x.dim() - 1)) / per_member, None


# the losses with a fused fast path for binary, unweighted members: (c, a, b) of c*bce + a*(1 - dice(p, y)) +
# b*(1 - dice(1-p, 1-y)) (switching's a and b are chosen per batch); any other loss or task takes the generic path
FUSED = {"bce": (1, 0, 0), "dice": (0, 1, 0), "dice_bce": (1, 1, 0), "inv_dice_bce": (1, 1, 1), "switching": (1, 1, 1)}


class PackLoss:
    """Every member's project loss: [N] float32, backprop its ``.sum()``.

    Generic path (any loss, any task): each member's own loss function (its Task's: losses.make_loss or
    losses.multiclass_loss) on its logits, stacked. Fused path, taken when every member is binary without class
    weights and its loss is in FUSED: ONE set of ops, each loss c*bce + a*(1 - dice(p, y)) + b*(1 - dice(1-p, 1-y))
    per member, each sum over the member's whole batch as make_loss's: bce (c,a,b) = (1,0,0), dice (0,1,0), dice_bce
    (1,1,0), inv_dice_bce (1,1,1), switching (1, w, 1-w) with w = lambda if mean(y) > tau else 1-lambda. The terms
    are added in make_loss's order and 1*t + 0 = t, so it is make_loss's maths; on the CPU at 32-64 px it is
    bit-identical (a reduction split over threads or GPU blocks rounds differently). tests/unit/test_pack_tasks.py
    checks both paths against solo losses for every loss in LOSSES and every task.
    """

    def __init__(self, specs: Sequence[tuple[str, float, float]], fns: Sequence[Callable[[Tensor, Tensor], Tensor]]
                 | None = None, fused: bool | None = None):
        """``specs``: each member's (loss, switch_lambda, switch_tau); ``fns``: each member's loss function (None:
        make_loss's, the binary task's); ``fused``: take the fused path (None: when every loss has one and every
        member is binary and unweighted, i.e. ``fns`` not given)."""
        for name, lam, tau in specs:
            make_loss(name, lam, tau)  # validates
        self.fns = list(fns) if fns is not None else [make_loss(*spec) for spec in specs]
        if fused is None:
            fused = fns is None
        self.fused = bool(fused) and all(name in FUSED for name, _, _ in specs)
        rows = [[*FUSED.get(n, (0, 0, 0)), n == "switching", lam, 1.0 - lam, tau] for n, lam, tau in specs]
        self.table = torch.tensor(rows, dtype=torch.float32).T.contiguous()  # c, a, b, switch, lam, 1-lam, tau
        self.need = [any(r[k] for r in rows) for k in range(4)]  # bce, dice, inverted dice, switching
        self._on: dict[torch.device, tuple[Tensor, ...]] = {}

    @classmethod
    def from_configs(cls, cfgs: Sequence) -> PackLoss:
        """The binary task's losses of ``cfgs`` (fused where it can)."""
        return cls([(c.loss, c.switch_lambda, c.switch_tau) for c in cfgs])

    @classmethod
    def from_members(cls, cfgs: Sequence, tasks: Sequence, ignore: bool = False) -> PackLoss:
        """The losses of members of ``cfgs`` and their Tasks (core.learn.task): fused when every one is binary
        and unweighted with a fused loss, else each member's own loss function. ``ignore``: each member's
        ``Task.ignore_loss_fn`` (pixels whose target is < 0 left out), never fused (the fused path has no mask)."""
        fusable = not ignore and all(t.binary and t.weights is None for t in tasks)
        return cls([(c.loss, c.switch_lambda, c.switch_tau) for c in cfgs],
                   [t.ignore_loss_fn if ignore else t.loss_fn for t in tasks], fused=fusable)

    def __call__(self, logits: Tensor, targets: Tensor) -> Tensor:
        """logits [N, B, C, H, W] and targets [N, B, 1, H, W] -> [N] float32 losses."""
        if not self.fused:
            return torch.stack([fn(logits[i], targets[i]) for i, fn in enumerate(self.fns)])
        if logits.device not in self._on:
            self._on[logits.device] = tuple(self.table.to(logits.device))
        c, a, b, switch, lam, lam1, tau = self._on[logits.device]
        with torch.autocast(device_type=logits.device.type, enabled=False):
            x, y = logits.float(), targets.to(device=logits.device, dtype=torch.float32)
            dims = tuple(range(1, x.dim()))
            p = torch.sigmoid(x)

            def dice_loss(p: Tensor, y: Tensor) -> Tensor:  # losses.dice_loss, per member
                return 1.0 - (2.0 * (p * y).sum(dims) + 1.0) / (p.sum(dims) + y.sum(dims) + 1.0)

            terms = []
            if self.need[0]:
                terms.append(c * _MemberMeanBCE.apply(x, y))
            if self.need[3]:
                w = torch.where(y.mean(dims) > tau, lam, lam1)
                a, b = torch.where(switch > 0, w, a), torch.where(switch > 0, 1.0 - w, b)
            if self.need[1]:
                terms.append(a * dice_loss(p, y))
            if self.need[2]:
                terms.append(b * dice_loss(1.0 - p, 1.0 - y))
            return sum(terms[1:], terms[0])  # left to right, as make_loss adds its terms
