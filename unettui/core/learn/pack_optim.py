"""The pack's optimizer: ONE step over the stacked tensors for all members, whatever N (PackOptimizer).

A pack's parameters are P stacked tensors, member i owning rows [i*r, (i+1)*r) of each (pack.py). The step runs
torch's multi-tensor ("foreach") optimizer maths over those P tensors, not over N*P per-member views: a CUDA step
launches about as many kernels for 16 members as for one (``unettui bench --pack N --launches`` models the count).
Members of one optimizer kind that sit next to each other in the pack form a *range* (rows [a*r, b*r) of every
tensor) stepped by one sequence of ``torch._foreach_*`` calls; a pack of several kinds makes one range per run of
consecutive members of a kind (the runner orders a new pack's members by optimizer).

Per-member hyper-parameters (lr, weight decay, momentum, betas, eps, alpha, rho, lr decay, dampening, AdamW's
decoupling) and per-member step counts become *coefficients*: a value all members of a range share is the Python
scalar torch itself would pass; one that differs becomes a per-element tensor (constant over each member's rows,
as in HFTA's per-row coefficients) filled for all ranges by ONE host-to-device copy and ONE ``index_select`` a
step. Each op is the one torch's ``_multi_tensor_<kind>`` makes, with ``add(alpha=c)`` (a fused multiply-add on the
CPU) made ``addcmul(..., c)`` (the same fused multiply-add), ``addcdiv(value=c)`` made ``addcdiv(c*t1, t2)``, and
so on: on the CPU in float64 a pack's members equal their solo runs bit for bit, for all seven optimizers with
per-member hyper-parameters (tests/unit/test_pack.py). On GPUs the foreach kernels round as they round.

Each member keeps an ordinary torch optimizer (``optimizers[i]``, from ``make_optimizer``) as its face: its
param_groups hold its hyper-parameters (schedulers change its lr there), and its ``state_dict()`` /
``load_state_dict()`` are the solo format (hooks move the state between the stacked tensors and the solo dict;
``state_dict`` returns copies, so a checkpoint holds the member's rows only). The face's own ``state`` stays empty
and it is never stepped itself. ``step(members)`` steps the given members; any other is frozen exactly: its
parameters get a zero step size, and its optimizer state is kept aside when it freezes and put back if it steps
again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from .optim import make_optimizer

__all__ = ["PackOptimizer"]

Coef = float | list[Tensor]  # a value every member of a range shares, or per-element tensors (one per tensor)


# ---- ops taking a shared value or per-element tensors --------------------------------------------------------
def _mul_(xs: list[Tensor], c: Coef) -> None:
    torch._foreach_mul_(xs, c)


def _fma(dst: list[Tensor], src: list[Tensor], c: Coef, inplace: bool = False) -> list[Tensor]:
    """dst + c*src as torch's ``add(alpha=c)`` (one rounding); in place or a new list."""
    if isinstance(c, list):
        if inplace:
            torch._foreach_addcmul_(dst, src, c)
            return dst
        return list(torch._foreach_addcmul(dst, src, c))
    if inplace:
        torch._foreach_add_(dst, src, alpha=c)
        return dst
    return list(torch._foreach_add(dst, src, alpha=c))


def _addcmul_(xs: list[Tensor], t1: list[Tensor], t2: list[Tensor], c: Coef) -> None:
    if isinstance(c, list):
        torch._foreach_addcmul_(xs, torch._foreach_mul(t1, c), t2)
    else:
        torch._foreach_addcmul_(xs, t1, t2, value=c)


def _addcdiv_(xs: list[Tensor], t1: list[Tensor], t2: list[Tensor], c: Coef) -> None:
    if isinstance(c, list):
        torch._foreach_addcdiv_(xs, torch._foreach_mul(t1, c), t2)
    else:
        torch._foreach_addcdiv_(xs, t1, t2, value=c)


def _shared(c: Coef, value: float) -> bool:
    return not isinstance(c, list) and c == value


# ---- the seven optimizers ---------------------------------------------------------------------------------------
class _Range:
    """Members [a, b) of one kind: their rows of the parameters, gradients and state, and this step's coefficients."""

    def __init__(self, kind: _Kind, a: int, b: int, params: list[Tensor], rows: list[int], keys: Sequence[str]):
        self.kind, self.a, self.b, self.rows = kind, a, b, rows
        self.P = [p.narrow(0, a * r, (b - a) * r) for p, r in zip(params, rows)]
        self.S = {key: [torch.zeros_like(p) for p in self.P] for key in keys}
        self.G: list[Tensor] = []
        self.c: dict[str, Coef] = {}

    def link(self, grads: list[Tensor]) -> None:
        self.G = [g.narrow(0, self.a * r, (self.b - self.a) * r) for g, r in zip(grads, self.rows)]

    def member_state(self, i: int) -> dict[str, list[Tensor]]:
        """Member i's rows of the state tensors, per state key (views)."""
        return {key: [t.narrow(0, (i - self.a) * r, r) for t, r in zip(ts, self.rows)] for key, ts in self.S.items()}


def _wd_grads(rg: _Range) -> list[Tensor]:
    """The gradients with coupled (L2) weight decay added, as torch's ``_foreach_add(grads, params, alpha=wd)``."""
    wd = rg.c["wd"]
    return rg.G if _shared(wd, 0.0) else _fma(rg.G, rg.P, wd)


def _adam(rg: _Range) -> None:  # Adam and AdamW: torch.optim.adam._multi_tensor_adam
    c = rg.c
    if not _shared(c["decay"], 1.0):  # AdamW's decoupled decay: p *= 1 - lr*wd
        _mul_(rg.P, c["decay"])
    grads = _wd_grads(rg)
    exp_avgs, exp_avg_sqs = rg.S["exp_avg"], rg.S["exp_avg_sq"]
    torch._foreach_lerp_(exp_avgs, grads, c["w1"])
    _mul_(exp_avg_sqs, c["beta2"])
    _addcmul_(exp_avg_sqs, grads, grads, c["w2"])
    denom = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_div_(denom, c["bc2"])
    torch._foreach_add_(denom, c["eps"])
    _addcdiv_(rg.P, exp_avgs, denom, c["step"])


def _sgd(rg: _Range) -> None:  # torch.optim.sgd._multi_tensor_sgd (a first step's buffer is the gradient)
    c, grads = rg.c, _wd_grads(rg)
    if "momentum_buffer" in rg.S:
        bufs = rg.S["momentum_buffer"]
        _mul_(bufs, c["momentum"])
        _fma(bufs, grads, c["damp"], inplace=True)
        grads = bufs
    _fma(rg.P, grads, c["step"], inplace=True)


def _rmsprop(rg: _Range) -> None:  # torch.optim.rmsprop._multi_tensor_rmsprop, momentum 0, not centered
    c, grads, square_avgs = rg.c, _wd_grads(rg), rg.S["square_avg"]
    _mul_(square_avgs, c["alpha"])
    _addcmul_(square_avgs, grads, grads, c["w"])
    avg = torch._foreach_sqrt(square_avgs)
    torch._foreach_add_(avg, c["eps"])
    _addcdiv_(rg.P, grads, avg, c["step"])


def _adagrad(rg: _Range) -> None:  # torch.optim.adagrad._multi_tensor_adagrad
    c, grads, sums = rg.c, _wd_grads(rg), rg.S["sum"]
    torch._foreach_addcmul_(sums, grads, grads, value=1)
    std = torch._foreach_sqrt(sums)
    torch._foreach_add_(std, c["eps"])
    torch._foreach_addcdiv_(rg.P, torch._foreach_mul(grads, c["step"]), std)


def _adamax(rg: _Range) -> None:  # torch.optim.adamax._multi_tensor_adamax
    c, grads = rg.c, _wd_grads(rg)
    exp_avgs, exp_infs = rg.S["exp_avg"], rg.S["exp_inf"]
    torch._foreach_lerp_(exp_avgs, grads, c["w1"])
    _mul_(exp_infs, c["beta2"])
    grads = list(torch._foreach_abs(grads))
    torch._foreach_add_(grads, c["eps"])
    torch._foreach_maximum_(exp_infs, grads)
    _addcdiv_(rg.P, exp_avgs, exp_infs, c["step"])


def _adadelta(rg: _Range) -> None:  # torch.optim.adadelta._multi_tensor_adadelta
    c, grads = rg.c, _wd_grads(rg)
    square_avgs, acc_deltas = rg.S["square_avg"], rg.S["acc_delta"]
    _mul_(square_avgs, c["rho"])
    _addcmul_(square_avgs, grads, grads, c["w"])
    std = torch._foreach_add(square_avgs, c["eps"])
    torch._foreach_sqrt_(std)
    deltas = torch._foreach_add(acc_deltas, c["eps"])
    torch._foreach_sqrt_(deltas)
    torch._foreach_div_(deltas, std)
    torch._foreach_mul_(deltas, grads)
    _mul_(acc_deltas, c["rho"])
    _addcmul_(acc_deltas, deltas, deltas, c["w"])
    _fma(rg.P, deltas, c["step"], inplace=True)


def _bias(beta: float, step: float) -> float:
    return 1 - beta**step


def _adam_coefs(g: dict, step: float) -> dict[str, float]:
    (beta1, beta2), lr, wd = g["betas"], g["lr"], g["weight_decay"]
    decoupled = bool(g.get("decoupled_weight_decay"))
    return {"decay": 1 - lr * wd if decoupled and wd != 0 else 1.0, "wd": 0.0 if decoupled else wd,
            "w1": 1 - beta1, "beta2": beta2, "w2": 1 - beta2, "bc2": _bias(beta2, step) ** 0.5, "eps": g["eps"],
            "step": (lr / _bias(beta1, step)) * -1}


def _sgd_coefs(g: dict, step: float) -> dict[str, float]:
    first = step == 1  # torch's first step: the buffer is a clone of the gradient
    mom = g["momentum"]
    return {"wd": g["weight_decay"], "momentum": 0.0 if first or mom == 0 else mom,
            "damp": 1.0 if first or mom == 0 else 1 - g["dampening"], "step": -g["lr"]}


def _adagrad_coefs(g: dict, step: float) -> dict[str, float]:
    return {"wd": g["weight_decay"], "eps": g["eps"], "step": -g["lr"] / (1 + (step - 1) * g["lr_decay"])}


def _adamax_coefs(g: dict, step: float) -> dict[str, float]:
    beta1, beta2 = g["betas"]
    return {"wd": g["weight_decay"], "w1": 1 - beta1, "beta2": beta2, "eps": g["eps"],
            "step": (g["lr"] / _bias(beta1, step)) * -1}


class _Kind:
    def __init__(self, name: str, state_keys: tuple[str, ...], has_step: bool,
                 coefs: Callable[[dict, float], dict[str, float]], step: Callable[[_Range], None]):
        self.name, self.state_keys, self.has_step, self.coefs, self.step = name, state_keys, has_step, coefs, step


_ADAM = _Kind("adam", ("exp_avg", "exp_avg_sq"), True, _adam_coefs, _adam)  # AdamW: an Adam decoupling its decay
_KINDS = {
    torch.optim.Adam: _ADAM,
    torch.optim.AdamW: _ADAM,
    torch.optim.SGD: _Kind("sgd", ("momentum_buffer",), False, _sgd_coefs, _sgd),
    torch.optim.RMSprop: _Kind("rmsprop", ("square_avg",), True, lambda g, s: {
        "wd": g["weight_decay"], "alpha": g["alpha"], "w": 1 - g["alpha"], "eps": g["eps"], "step": -g["lr"]},
        _rmsprop),
    torch.optim.Adagrad: _Kind("adagrad", ("sum",), True, _adagrad_coefs, _adagrad),
    torch.optim.Adamax: _Kind("adamax", ("exp_avg", "exp_inf"), True, _adamax_coefs, _adamax),
    torch.optim.Adadelta: _Kind("adadelta", ("square_avg", "acc_delta"), True, lambda g, s: {
        "wd": g["weight_decay"], "rho": g["rho"], "w": 1 - g["rho"], "eps": g["eps"], "step": -g["lr"]},
        _adadelta),
}
# options whose maths the stacked step does not have (make_optimizer sets none of them)
_UNSUPPORTED = {"fused": True, "amsgrad": True, "maximize": True, "nesterov": True, "capturable": True,
                "differentiable": True, "centered": True}


def _kind_of(opt: torch.optim.Optimizer) -> _Kind:
    kind = _KINDS.get(type(opt))
    if kind is None:
        raise ValueError(f"a pack cannot step {type(opt).__name__} (packs step {', '.join(sorted({k.name for k in _KINDS.values()}))})")
    if len(opt.param_groups) != 1:
        raise ValueError("a pack member's optimizer has one parameter group")
    g = opt.param_groups[0]
    bad = [k for k, v in _UNSUPPORTED.items() if g.get(k) == v]
    if isinstance(g["lr"], Tensor):
        bad.append("tensor lr")
    if type(opt) is torch.optim.RMSprop and g["momentum"] != 0:
        bad.append("momentum")
    if type(opt) is torch.optim.Adagrad and g["initial_accumulator_value"] != 0:
        bad.append("initial_accumulator_value")
    if bad:
        raise ValueError(f"a pack cannot step {type(opt).__name__} with {', '.join(bad)}")
    return kind


def _scalar_dtype() -> torch.dtype:  # the dtype of torch's CPU 'step' tensors (optimizer._get_scalar_dtype)
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


class _Coefficients:
    """Per-member values as per-element tensors over the stacked tensors: one host-to-device copy and one
    index_select fill every varying value of a step (slot s of the buffer, viewed as each range's tensors)."""

    def __init__(self, stacked: Sequence[Tensor], n: int):
        self.dtype, self.device = stacked[0].dtype, stacked[0].device
        self.sizes = [p.numel() // n for p in stacked]  # one member's elements of each tensor
        self.offsets = [0]
        for p in stacked:
            self.offsets.append(self.offsets[-1] + p.numel())
        members = torch.arange(n, dtype=torch.int32, device=self.device)
        self.index = torch.cat([members.repeat_interleave(s) for s in self.sizes])  # each element's member
        self.buf: Tensor | None = None
        self._views: dict[tuple[int, int], list[Tensor]] = {}

    def _view(self, slot: int, rg: _Range) -> list[Tensor]:
        key = (slot, id(rg))
        if key not in self._views:
            assert self.buf is not None
            total = self.offsets[-1]
            self._views[key] = [self.buf.as_strided(p.shape, p.stride(), slot * total + off + rg.a * size)
                                for p, off, size in zip(rg.P, self.offsets, self.sizes)]
        return self._views[key]

    def resolve(self, wanted: list[tuple[_Range, str, list[float]]]) -> None:
        """Give every range its coefficients: ``wanted`` = (range, name, one value per member of the pack)."""
        varying = []
        for rg, name, values in wanted:
            mine = values[rg.a:rg.b]
            if all(v == mine[0] for v in mine):
                rg.c[name] = mine[0]  # the Python scalar torch itself would pass
            else:
                varying.append((rg, name, values))
        if not varying:
            return
        if self.buf is None or self.buf.shape[0] < len(varying):
            self.buf = torch.empty(len(varying), self.offsets[-1], dtype=self.dtype, device=self.device)
            self._views = {}
        cuda = self.device.type == "cuda"
        host = torch.tensor([v for _, _, v in varying], dtype=self.dtype, pin_memory=cuda)
        table = torch.empty(host.shape, dtype=self.dtype, device=self.device).copy_(host, non_blocking=cuda)
        torch.index_select(table, 1, self.index, out=self.buf[:len(varying)])
        for slot, (rg, name, _) in enumerate(varying):
            rg.c[name] = self._view(slot, rg)


class PackOptimizer:
    """One torch optimizer per member (its face: param_groups, schedulers, the solo state_dict) and ONE stacked step.

    ``make(i, params)`` builds member i's optimizer over ``pack.member_parameters(i)`` (``from_configs`` uses the
    project's ``make_optimizer``): adam, adamw, sgd (momentum, dampening), rmsprop (momentum 0, not centered),
    adagrad, adamax or adadelta, one param group; anything else raises ValueError. The stacked gradients are
    persistent: ``zero_grad`` zeroes them in place (one op). ``step(members)`` steps only the given members (default
    all); the others are frozen. Create it after the pack's last ``.to(...)``.
    """

    # a frozen member's coefficients: no step, no decoupled decay (its other values are a stepping member's)
    FROZEN = {"step": 0.0, "decay": 1.0}

    def __init__(self, pack: torch.nn.Module, make: Callable[[int, list[Tensor]], torch.optim.Optimizer]):
        self.pack, self.n = pack, pack.n
        self.stacked = list(pack.parameters())
        for p in self.stacked:
            if p.shape[0] % self.n or not (p.is_contiguous() or p.is_contiguous(memory_format=torch.channels_last)):
                raise ValueError("PackOptimizer: every parameter stacks its members along a dense dim 0")
        self.rows = [p.shape[0] // self.n for p in self.stacked]
        self.views = [pack.member_parameters(i) for i in range(self.n)]
        self.optimizers = [make(i, self.views[i]) for i in range(self.n)]
        self.kinds = [_kind_of(o) for o in self.optimizers]
        self.steps = [0.0] * self.n  # each member's step count (torch's 'step'; SGD: 0 until its buffer exists)
        self._frozen: dict[int, dict[str, Any]] = {}  # member -> its optimizer state, kept aside while frozen
        self._active = set(range(self.n))
        self._gone: set[int] = set()  # members that left the pack for good (release)
        self._ranges: list[_Range] = []
        a = 0
        for b in range(1, self.n + 1):
            if b == self.n or self.kinds[b] is not self.kinds[a]:
                keys = self.kinds[a].state_keys
                if self.kinds[a].name == "sgd" and all(o.param_groups[0]["momentum"] == 0
                                                       for o in self.optimizers[a:b]):
                    keys = ()
                self._ranges.append(_Range(self.kinds[a], a, b, self.stacked, self.rows, keys))
                a = b
        self._range_of = [next(rg for rg in self._ranges if rg.a <= i < rg.b) for i in range(self.n)]
        self._grads: list[Tensor | None] = [None] * len(self.stacked)
        self._ptrs = [p.data_ptr() for p in self.stacked]
        self._coefs = _Coefficients(self.stacked, self.n)
        for i, opt in enumerate(self.optimizers):
            opt.register_state_dict_post_hook(lambda o, sd, i=i: self._state_dict_hook(i, sd))
            opt.register_load_state_dict_post_hook(lambda o, i=i: self._load_hook(i))

    @classmethod
    def from_configs(cls, pack: torch.nn.Module, cfgs: Sequence) -> PackOptimizer:
        return cls(pack, lambda i, params: make_optimizer(cfgs[i], params))

    def release(self, i: int) -> None:
        """Member i has left the pack for good (its slot stays, frozen): it steps no more, nothing of it is kept."""
        self._gone.add(i)
        self._frozen.pop(i, None)
        self._active.discard(i)

    def zero_grad(self) -> None:
        grads = [p.grad for p in self.stacked if p.grad is not None]
        if grads:
            torch._foreach_zero_(grads)

    # ---- the solo state format (hooks of each member's torch optimizer) ---------------------------------------------
    def _has_state(self, i: int) -> bool:
        kind = self.kinds[i]
        if kind.name == "sgd":
            return self.steps[i] > 0 and self.optimizers[i].param_groups[0]["momentum"] != 0
        return self.steps[i] > 0 or kind.name == "adagrad"  # (torch's Adagrad makes its state when built)

    def _member_state(self, i: int) -> dict[str, Any]:
        """Member i's optimizer state, copied: {"step": float, key: [one tensor per parameter]}."""
        rows = self._range_of[i].member_state(i)
        return {"step": self.steps[i], **{k: [t.clone() for t in rows[k]] for k in self.kinds[i].state_keys
                                          if k in rows}}

    def _state_dict_hook(self, i: int, sd: dict[str, Any]) -> dict[str, Any]:
        if not self._has_state(i):
            return sd
        own = self._frozen[i] if i in self._frozen else self._member_state(i)
        copy = i in self._frozen  # (the kept-aside tensors stay ours)
        for k in range(len(self.stacked)):
            entry: dict[str, Any] = {"step": torch.tensor(own["step"], dtype=_scalar_dtype())} \
                if self.kinds[i].has_step else {}
            for key in self.kinds[i].state_keys:
                if key in own:
                    entry[key] = own[key][k].clone() if copy else own[key][k]
            sd["state"][k] = entry
        return sd

    @torch.no_grad()
    def _load_hook(self, i: int) -> None:
        """torch has loaded (and cast) a solo state dict into member i's face: move the state into the stacks."""
        opt = self.optimizers[i]
        states = [opt.state.get(v, {}) for v in self.views[i]]
        step = states[0].get("step")
        self.steps[i] = float(step) if step is not None else (1.0 if states[0] else 0.0)
        self._frozen.pop(i, None)
        for key, rows in self._range_of[i].member_state(i).items():
            for r, st in zip(rows, states):
                if st.get(key) is not None:
                    r.copy_(st[key])
                else:
                    r.zero_()
        opt.state.clear()

    # ---- the step -------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def _freeze(self, now: set[int]) -> None:
        """Members leaving or re-joining the stepped set: keep a frozen member's state aside, put it back on return."""
        for i in self._active - now:
            self._frozen[i] = self._member_state(i)
        for i in now - self._active:
            kept = self._frozen.pop(i, None)
            if kept is None:
                continue
            self.steps[i] = kept["step"]
            for key, rows in self._range_of[i].member_state(i).items():
                for r, t in zip(rows, kept.get(key, ())):
                    r.copy_(t)
        self._active = now

    @torch.no_grad()
    def step(self, members: Iterable[int] | None = None) -> None:
        if [p.data_ptr() for p in self.stacked] != self._ptrs:
            raise RuntimeError("the pack's parameters moved (.to() after PackOptimizer was built); build it again")
        grads = [p.grad for p in self.stacked]
        if any(g is not h for g, h in zip(grads, self._grads)):
            if all(g is None for g in grads):
                return  # torch: nothing to step
            if any(g is None for g in grads):
                raise RuntimeError("PackOptimizer.step: some of the pack's parameters have no gradient")
            for rg in self._ranges:
                rg.link(grads)  # type: ignore[arg-type]
            self._grads = list(grads)
        now = set(range(self.n)) - self._gone if members is None else set(members)
        if now & self._gone:
            raise ValueError(f"PackOptimizer.step: member(s) {sorted(now & self._gone)} left the pack")
        if now != self._active:
            self._freeze(now)
        groups = [o.param_groups[0] for o in self.optimizers]
        wanted: list[tuple[_Range, str, list[float]]] = []
        stepping = []
        for rg in self._ranges:
            rg.c = {}
            mine = [i for i in range(rg.a, rg.b) if i in now]
            if not mine:
                continue
            stepping.append(rg)
            table: dict[str, list[float]] = {}
            for i in mine:
                self.steps[i] += 1
                for name, v in rg.kind.coefs(groups[i], self.steps[i]).items():
                    table.setdefault(name, [0.0] * self.n)[i] = v
            for i in range(rg.a, rg.b):
                if i not in now:  # frozen: a stepping member's values (shared values stay shared), no step
                    for name, values in table.items():
                        values[i] = self.FROZEN.get(name, values[mine[0]])
            wanted += [(rg, name, values) for name, values in table.items()]
        self._coefs.resolve(wanted)
        for rg in stepping:
            rg.kind.step(rg)
        for i in now:
            self.optimizers[i]._opt_called = True  # what an LR scheduler's wrapper of opt.step() records
