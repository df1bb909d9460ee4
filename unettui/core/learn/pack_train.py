"""Training a pack: N experiments that share every tensor shape trained as ONE PackedUNet in one process, each of
them still its own run with its own files.

What members share (``pack_key``): the data (dataset, num_images, data_seed, image_size, train_fraction,
test_fraction, augment.histeq, tiff_pages), the architecture (base_channels, depth), batch_size, the resolved device
and the AMP dtype (bf16 or none: fp16 needs a GradScaler, and one scaler shared by all would skip every member's step when
one member overflows, so fp16 experiments train alone). Everything else is a member's own: its seed (its weights
are initialised as its solo run's, its shuffling and augmentation come from its own generators, its dropout masks
from its own generator), optimizer, lr, momentum, weight decay, scheduler, loss, dropout p, augmentation, epochs,
early stopping and successive-halving budget. Members may even be at different epochs (a resumed member goes on
from its own checkpoint): each counts its own.

Exactness: a member is its solo run's maths (pack.py: grouped convolutions, per-member losses SUMMED; pack_optim.py:
one optimizer step over the stacked tensors with per-member coefficients). In float64 on the CPU a pack's members
equal their solo runs (tests/unit/test_pack_train.py: parameters, losses, metrics records); in float32/bf16 grouped
kernels round differently from solo ones, as any change of convolution algorithm does.

A member that ends (its epochs, early stopping, its budget), diverges (recorded failed with its epoch and the solo
message), is stopped (Ctrl-C, its claim taken over, its definition changed) or whose files cannot be written leaves
the pack at the end of the epoch: its weights, optimizer and schedule go back into a solo Trainer (``PackMember``
is one) and its slot freezes (it computes on a mate's batch, steps nothing, draws nothing); once the members still
training are at most ``compact_share`` of the slots (CUDA: half; the CPU: at once) the others are packed again from
their exact states. Nothing a member does changes another's numbers.

Files: every member writes its runs/<id>/ as a solo run does (checkpoint in the solo format: a member resumes alone
with ``Trainer``, a solo checkpoint joins a pack), through its own ``Events.guard``. Writing is on a cadence: all
of a pack's writes (best.pt, previews, checkpoints, metrics lines, summaries, and the runner's per-epoch callbacks)
happen together, after an epoch, when the training time since the last writes is at least (1/share - 1) times what
those writes took (``max_write_share``, 10 %: writes never take more than about a tenth of the time); the first
epoch, a member's last epoch, every epoch in which a member leaves the pack (the others are written first) and every
epoch whose writes are cheap enough are written at once. A ``kill -9`` loses, for every member, the epochs since its
last writes (at most about nine times the duration of one round of writes, plus the epoch in flight); a stop (Ctrl-C,
SIGTERM) leaves each member at its last written epoch.

Resuming: a member's float32 numbers are its pack's, not its solo run's (grouped kernels round differently; on the
CPU a pack of one rounds differently again: oneDNN's groups=1 kernels are not its grouped ones), so exactness after an
interruption needs the same pack again. config.json records it (pack_size, pack_members, pack_slot; rewritten when the
pack is built again), and the runner resumes an interrupted member in that pack, with its interrupted mates in their
order and a frozen slot for each mate that is not (``slots``), a member whose mates had ended as the pack of one it
was in (runner.Runner.claim_pack): the numbers are then the uninterrupted pack's, bit for
bit on the CPU (tests/unit/test_pack_runner.py, test_pack_devices.py). Resumed alone by the solo trainer (``--pack
off``), a member goes on from its exact state, but its fp32 numbers round as a solo run's from there on.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from ..define.config import Config
from ..runs.store import BEST_WEIGHTS, CHECKPOINT, CONFIG, METRICS, SUMMARY, Run, append_jsonl, atomic_write_json
from ..show.preview import save_preview
from .augment import augment_pack
from .devices import out_of_memory, resolve_amp, resolve_device
from .optim import Schedule, make_optimizer
from .pack import PackedUNet, PackLoss
from .pack_eval import PackScoring
from .pack_optim import PackOptimizer
from .task import Scores
from .train import Events, Result, Trainer, diverged_message

__all__ = ["PACK_KEYS", "data_mate", "pack_key", "PackMember", "PackTrainer"]

# the definition keys every member of a pack shares (with the resolved device and AMP dtype)
PACK_KEYS = ("dataset", "num_images", "data_seed", "image_size", "train_fraction", "test_fraction", "augment.histeq",
             "tiff_pages", "num_classes", "mask_values", "base_channels", "depth", "batch_size", "patch_size",
             "patches_per_epoch", "overlap", "folds")  # (the folds of a configuration pack: each its own split)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda" and device.index is None:
        return f"cuda:{torch.cuda.current_device()}"
    return str(device)


def pack_key(cfg: Config, device: str | None = None) -> tuple | None:
    """What experiments must share to train in one pack (``device``: the runner's override of ``cfg.device``); None
    when this one trains alone (``amp = "fp16"``; ``auto`` resolving to fp16 packs in fp32). Raises RuntimeError where
    its device does not exist here."""
    dev = resolve_device(device or cfg.device)
    amp = resolve_amp(cfg.amp, dev)
    if amp == torch.float16:
        if cfg.amp != "auto":
            return None  # fp16 asked for: it trains alone
        amp = None  # auto on an fp16-only card: in a pack it trains in fp32 (PackMember)
    d = cfg.to_dict()
    return (*(d[k] for k in PACK_KEYS), _device_name(dev), str(amp))


class _MemberModel:
    """Stands for a member's UNet while it is in a pack: its state_dict is its rows of the pack (solo format)."""

    def __init__(self, member: PackMember):
        self._member = member

    @property
    def _pack(self) -> PackedUNet:
        assert self._member.pack is not None and self._member.pack.model is not None
        return self._member.pack.model

    def state_dict(self) -> OrderedDict[str, Tensor]:
        return self._pack.member_state_dict(self._member.slot)

    def load_state_dict(self, state_dict: dict[str, Tensor], strict: bool = True) -> None:
        self._pack.load_member_state_dict(self._member.slot, state_dict)

    def parameters(self) -> Iterator[Tensor]:
        return iter(self._pack.member_parameters(self._member.slot))


class PackMember(Trainer):
    """A Trainer built exactly as a solo run's (seeded weights, generators, data split, feasibility checks) whose
    model, optimizer and schedule are, while it is in a pack, its rows of the pack, a torch optimizer over views of
    them and a Schedule on that optimizer. ``state_dict``/``load_state_dict`` are the solo ones (the solo checkpoint
    format); out of a pack it is a solo Trainer again. ``data_from``: share a first member's data tensors."""

    def __init__(self, cfg: Config, project=None, device: str | None = None, *, dtype: torch.dtype | None = None,
                 data_from: Trainer | None = None):
        super().__init__(cfg, project, device, dtype=dtype, data_from=data_from)
        # amp auto on a card without bf16 resolves to fp16, whose GradScaler would couple the members (one member's
        # overflow skipping every member's step): in a pack such a member trains in fp32, and says so
        self.fp32_in_pack = self.amp_dtype == torch.float16 and cfg.amp == "auto"
        if self.fp32_in_pack:
            self.amp_dtype = None
            self.scaler = torch.amp.GradScaler("cuda", enabled=False)
        self.unet = self.model  # its own UNet: packs are built from these, and it gets its weights back on leaving
        self.pack: PackTrainer | None = None
        self.slot = -1
        self.pack_name: str | None = None  # its run id in its pack (PackTrainer.fit)
        # recorded in config.json: pack_size, pack_members, pack_slot (not the definition)
        self.pack_info: dict[str, Any] = {}
        # a fit's bookkeeping (PackTrainer.fit)
        self.run: Run | None = None
        self.run_id: str | None = None
        self.events = Events()
        self.stop_at = cfg.epochs
        self.pending: list[dict[str, Any]] = []  # epochs trained whose files are not written yet
        self.pending_best: dict[str, Any] | None = None  # the newest best epoch not written yet (best.pt, preview)
        self.written: dict[str, Any] = self.summary()  # the summary as last written
        self.stopping = False  # its should_stop said so in the epoch: frozen until the epoch ends, then interrupted
        self.result: Result | None = None

    def guard(self) -> contextlib.AbstractContextManager:
        return (self.events.guard or contextlib.nullcontext)()

    def describe(self) -> dict[str, Any]:
        out = {**super().describe(), **self.pack_info}
        if self.fp32_in_pack:
            out["amp_dtype"] = "off: fp32 in a pack (amp auto is fp16 on this card, and one GradScaler would couple " \
                               "the members)"
        return out

    def evaluate(self, images: Tensor | None = None, masks: Tensor | None = None) -> Scores:
        if self.pack is None:
            return super().evaluate(images, masks)
        if images is None or images is self.val_x:
            return self.pack.scores("val")[self.slot]
        if images is self.test_x:
            return self.pack.scores("test")[self.slot]
        raise ValueError("a member of a pack is evaluated on its validation or test images only")

    def predict_preview(self) -> dict[str, Any]:
        if self.pack is None:
            return super().predict_preview()
        return self.pack.preview(self)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def data_mate(cfg: Config, built: Sequence[Trainer]) -> Trainer | None:
    """The member already built whose data ``cfg``'s shares (``Trainer(data_from=...)``): one of the same fold (the
    same tensors), else the first (the same dataset read, split its own way); None for the first member."""
    return next((t for t in built if t.cfg.fold == cfg.fold), built[0] if built else None)


class PackTrainer(PackScoring):
    """Trains ``members`` (PackMember, one shape key: see ``pack_key``) as one PackedUNet; ``fit`` runs them."""

    max_write_share = 0.1  # writes take at most about this share of the time (>= 1: write after every epoch)
    # members who leave leave a frozen slot (no rebuild: no new optimizer, no re-tuning of every convolution shape)
    # until the members still training are at most this share of the slots; then the pack is built again without them.
    # None: 0.5 on CUDA (a rebuild re-tunes every shape, cudnn.benchmark), 1.0 elsewhere (at once: on the CPU a
    # rebuild costs about one step and a frozen slot about what a training one does; scripts/pack_crossover.py)
    compact_share: float | None = None
    poll_seconds = 0.1  # the members' should_stop, asked at most this often (and at an epoch's first step)
    progress_seconds = 0.5  # the members' on_batch (progress), told at most this often (and at an epoch's last step)

    def __init__(self, members: Sequence[PackMember], dropout_mode: str = "exact",
                 slots: Sequence[PackMember | str] | None = None):
        """``slots``: the pack's layout when it resumes one that had frozen slots (runner: the layout config.json
        records): the members in their slots, and for a slot whose member is not here its id (a frozen slot, so that
        every member is in the pack it was in and its numbers are that pack's); default: ``members`` in order."""
        if not members:
            raise ValueError("PackTrainer: no members")
        first = members[0]
        for m in members:
            if m.amp_dtype == torch.float16:
                raise ValueError(f"amp fp16 does not train in a pack (one GradScaler would couple the members): "
                                 f"seed {m.cfg.seed} trains alone")
            mine = (*(m.cfg.to_dict()[k] for k in PACK_KEYS), str(m.device), str(m.amp_dtype), m.data_shape)
            theirs = (*(first.cfg.to_dict()[k] for k in PACK_KEYS), str(first.device), str(first.amp_dtype),
                      first.data_shape)
            if mine != theirs:
                diff = [k for k, a, b in zip((*PACK_KEYS, "device", "amp", "data"), mine, theirs) if a != b]
                raise ValueError(f"pack members must share {', '.join(diff)}")
        self.members = list(members)
        self.dropout_mode = dropout_mode  # PackedUNet.dropout_mode: "exact" (each member's solo masks) or "fused"
        self.device, self.amp_dtype, self.cuda = first.device, first.amp_dtype, first.cuda
        self.bs, self.steps_per_epoch = first.cfg.batch_size, first.steps_per_epoch
        self.train_x, self.train_y = first.train_x, first.train_y
        self.val_x, self.val_y, self.test_x, self.test_y = first.val_x, first.val_y, first.test_x, first.test_y
        self.names = first.names
        # the folds of a configuration: each member trains and validates on its own images (the test images are
        # every fold's); else one set of tensors for all
        self.same_data = all(m.train_x is first.train_x and m.val_x is first.val_x for m in members)
        self.native, self.first = first.native, first
        self.padded = any(m.padded for m in members)
        self.task = first.task  # (the members share num_classes and mask_values: the same outputs and counts)
        self.model: PackedUNet | None = None
        self.popt: PackOptimizer | None = None
        self.loss: PackLoss | None = None
        self.slots: list[PackMember | None] = []  # the pack's slots: a member, or None for a frozen slot
        self.slot_ids: list[str | None] = [None if isinstance(x, PackMember) else x for x in slots or members]
        self._cache: dict[Any, Any] = {}
        self._last_write: float | None = None  # seconds the last round of writes took
        self._since_write = 0.0  # seconds of training and evaluation since then
        # where the time goes, for `unettui bench` and the overhead figures of docs/benchmarks.md
        self.timing: dict[str, Any] = {"epochs": 0, "train": 0.0, "eval": 0.0, "write": 0.0, "write_rounds": 0,
                                       "checkpoint_bytes": 0, "checkpoints": 0}
        self._assemble([x if isinstance(x, PackMember) else None for x in slots or members])

    @property
    def in_pack(self) -> list[PackMember]:
        """The members training in the pack (its slots less the frozen ones), in slot order."""
        return [m for m in self.slots if m is not None]

    @classmethod
    def from_configs(cls, cfgs: Sequence[Config], project=None, device: str | None = None,
                     dtype: torch.dtype | None = None, dropout_mode: str = "exact") -> PackTrainer:
        """Build every member as its solo Trainer would be (the data loaded once and shared), then pack them."""
        built: list[PackMember] = []
        for c in cfgs:
            built.append(PackMember(c, project, device, dtype=dtype, data_from=data_mate(c, built)))
        return cls(built, dropout_mode)

    # ---- packing and unpacking ------------------------------------------------------------------------------------
    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def _assemble(self, slots: list[PackMember | None]) -> None:
        """Pack the members of ``slots`` from their exact current states (weights, BN buffers, optimizer and schedule
        state): the same transfer as a checkpoint's, so training goes on exactly as it would have. A None slot is
        frozen from the start (it holds a copy of the first member, never steps and draws no dropout masks)."""
        states = {i: (m.model.state_dict(), m.optimizer.state_dict(), m.schedule.state_dict())
                  for i, m in enumerate(slots) if m is not None}
        stand_in = next(m for m in slots if m is not None)
        with torch.no_grad():
            for i, (weights, _, _) in states.items():
                m = slots[i]
                if m is not None and m.model is not m.unet:
                    m.unet.load_state_dict(weights)
            pack = PackedUNet.from_members([(m or stand_in).unet for m in slots])
            if self.cuda:
                pack = pack.to(memory_format=torch.channels_last)
            pack.dropout_mode = self.dropout_mode
        cfgs = [(m or stand_in).cfg for m in slots]
        popt = PackOptimizer(pack, lambda i, params: make_optimizer(cfgs[i], params))
        self.model, self.popt, self.slots = pack, popt, list(slots)
        for i, m in enumerate(slots):
            if m is None:
                self._freeze(i)
        for i, (_, opt_state, sched_state) in states.items():
            m = slots[i]
            assert m is not None
            m.pack, m.slot, m.model = self, i, _MemberModel(m)
            m.optimizer = popt.optimizers[i]
            m.schedule = Schedule(m.cfg, m.optimizer, m.steps_per_epoch)
            m.optimizer.load_state_dict(opt_state)
            m.schedule.load_state_dict(sched_state)
        self.loss = PackLoss.from_members(cfgs, [(m or stand_in).task for m in slots], ignore=self.padded)
        self._cache = {}

    def _freeze(self, slot: int) -> None:
        """Slot ``slot`` trains no more: its optimizer steps it no more and its dropout draws nothing."""
        assert self.model is not None and self.popt is not None
        self.slots[slot] = None
        self.popt.release(slot)
        self.model.freeze_slot(slot)

    def _release(self, m: PackMember) -> None:
        """Give a leaving member its own UNet, optimizer and schedule back, with its state: a solo Trainer again;
        its slot is frozen."""
        weights, opt_state, sched_state = m.model.state_dict(), m.optimizer.state_dict(), m.schedule.state_dict()
        with torch.no_grad():
            m.unet.load_state_dict(weights)
        self._freeze(m.slot)
        m.model, m.pack, m.slot = m.unet, None, -1
        m.optimizer = make_optimizer(m.cfg, m.unet.parameters())
        m.schedule = Schedule(m.cfg, m.optimizer, m.steps_per_epoch)
        m.optimizer.load_state_dict(opt_state)
        m.schedule.load_state_dict(sched_state)

    def _compact(self) -> None:
        """Members that left go back to solo, their slots frozen; once the members still training are at most
        ``compact_share`` of the slots, they are packed again on their own (and config.json records the new pack)."""
        gone = [m for m in self.in_pack if m.result is not None]
        for m in gone:
            self._release(m)
        stay = self.in_pack
        if not stay:
            self.model = self.popt = self.loss = None
            self.slots = []
        elif gone and len(stay) <= self._compact_share() * len(self.slots):
            slots = len(self.slots)
            self._assemble(stay)
            for m in stay:
                if m.events.on_note is not None:
                    m.events.on_note(f"packs: {len(stay)} of the pack's {slots} slots still train: built again as a "
                                     f"pack of {len(stay)} ({', '.join(str(x.pack_name) for x in stay)})")
            self.slot_ids = [None] * len(stay)
            self._record_layout()
            for m in [m for m in self.in_pack if m.result is not None]:  # (config.json could not be written)
                self._release(m)

    def _compact_share(self) -> float:
        if self.compact_share is not None:
            return self.compact_share
        return 0.5 if self.cuda else 1.0

    def _set_pack_info(self) -> None:
        """Every member's pack as config.json records it (pack_size, pack_members, pack_slot; pack_dropout where it
        has dropout): the runner resumes an interrupted member in this pack, frozen slots included
        (runner._pack_past)."""
        ids = [m.pack_name if m is not None else self.slot_ids[i] or "" for i, m in enumerate(self.slots)]
        for i, m in enumerate(self.slots):
            if m is not None:
                m.pack_info = {"pack_size": len(ids), "pack_slot": i,
                               "pack_members": [x for j, x in enumerate(ids) if j != i],
                               **({"pack_dropout": self.dropout_mode} if m.cfg.dropout > 0 else {})}

    def _record_layout(self) -> None:
        """The pack built again: every member's config.json records it (``_set_pack_info``)."""
        self._set_pack_info()
        for m in self.in_pack:
            if m.run is not None and m.result is None:
                try:
                    with m.guard():
                        atomic_write_json(m.run.file(CONFIG), {"id": m.pack_name, **m.cfg.to_dict(), **m.describe()})
                except Exception as exc:  # noqa: BLE001 - its files or its claim: this member leaves, the others go on
                    self._leave(m, Result("raised", m.written, _first_line(exc), exc))

    # ---- the packed computations ----------------------------------------------------------------------------------
    def train_epoch(self) -> list[tuple[float, float | None]]:
        """One epoch of every member in the pack, each over its own shuffled order: (mean loss, hard Dice) each, in
        slot order. A member whose should_stop says so is frozen for the rest of the epoch (``stopping``). A frozen
        slot computes on a member's batch (no draws of its own) and steps nothing. Per step, the host's work does
        not grow with the members but for what their maths need (a onecycle schedule's lr): should_stop is asked
        every ``poll_seconds`` and progress told every ``progress_seconds``, the optimizer steps them all at once."""
        slots, n, bs = self.slots, len(self.slots), self.bs
        assert self.model is not None and self.popt is not None and self.loss is not None
        live = [i for i, m in enumerate(slots) if m is not None]
        self.model.train()
        orders = {i: slots[i].new_epoch() for i in live}  # type: ignore[union-attr]
        order = torch.stack([orders.get(i, orders[live[0]]) for i in range(n)])
        loss_sum = torch.zeros(n, device=self.device, dtype=torch.float64)
        counts = torch.zeros(n, self.task.k - 1, 3, device=self.device, dtype=torch.float64)
        steps = self.steps_per_epoch
        members: dict[int, PackMember] = {i: slots[i] for i in live}  # type: ignore[misc]
        stepping = [i for i in live if not members[i].stopping]
        augments = [(m.augment, m.aug_gen) if m is not None else None for m in slots]
        polled = progressed = -math.inf
        for step in range(steps):
            now = time.perf_counter()
            if now - polled >= self.poll_seconds:
                polled = now
                for i in list(stepping):
                    stop = members[i].events.should_stop
                    if stop is not None and stop():
                        members[i].stopping = True
                        stepping.remove(i)
                per_batch = [members[i].schedule for i in stepping if members[i].schedule.per_batch]
            if not stepping:
                break
            idx = order[:, step * bs: (step + 1) * bs]
            if self.native or not self.same_data:  # each member's own patches, or its own fold's images
                own = {i: members[i].batch(idx[i]) for i in live}
                x, y = (torch.stack(t) for t in zip(*(own.get(i, own[live[0]]) for i in range(n))))
            else:
                x, y = self.train_x[idx], self.train_y[idx]
            x, y = augment_pack(x, y, augments, num_classes=self.task.k, ignore=self.padded)
            x = self.model.pack_inputs(x)
            if self.cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            self.popt.zero_grad()
            with self.autocast():
                logits = self.model(x)
                losses = self.loss(logits, y)
            losses.sum().backward()  # the SUM: each member's loss gets a gradient of exactly 1
            self.popt.step(stepping)
            for schedule in per_batch:
                schedule.batch_end()
            loss_sum += losses.detach() * idx.shape[1]
            counts += self.task.member_counts(logits.detach(), y)
            if step == steps - 1 or now - progressed >= self.progress_seconds:
                progressed = now
                for i in stepping:
                    on_batch = members[i].events.on_batch
                    if on_batch is not None:
                        on_batch(members[i].epoch + 1, step + 1, steps)
        sums, cnts = loss_sum.tolist(), counts.tolist()
        return [(sums[i] / m.samples_per_epoch, m.task.train_dice(cnts[i])) for i, m in members.items()]

    def _snapshot(self) -> dict[str, Any]:
        assert self.model is not None
        sd = self.model.state_dict()
        return {"state": OrderedDict((k, v.detach().clone()) for k, v in sd.items()), "n": self.model.n,
                "meta": getattr(sd, "_metadata", None)}

    @staticmethod
    def _member_weights(snap: dict[str, Any], slot: int) -> OrderedDict[str, Tensor]:
        out = OrderedDict((k, PackedUNet.member_rows(k, v, slot, snap["n"]).clone()) for k, v in snap["state"].items())
        out._metadata = snap["meta"]  # type: ignore[attr-defined]
        return out

    # ---- the whole fit ----------------------------------------------------------------------------------------------
    def _write_due(self) -> bool:
        share = self.max_write_share
        if share >= 1 or self._last_write is None:
            return True
        return self._since_write >= self._last_write * (1.0 / share - 1.0)

    def _write(self, m: PackMember, final: bool, failed: bool = False) -> None:
        """Write member ``m``'s pending epochs as a solo run writes each of its epochs (best.pt and preview of its
        newest best, the last preview, checkpoint, metrics lines, summary), then tell its on_epoch about them.
        ``failed`` (it diverged): its weights now are not finite, so no checkpoint (it stays at the last written
        epoch), no last preview, and best.pt only from a snapshot taken when that epoch was the best."""
        run = m.run
        if run is not None:
            previews = m.cfg.preview_count > 0
            with m.guard():
                best = m.pending_best
                if best is not None and not (failed and best["snapshot"] is None):
                    weights = self._member_weights(best["snapshot"], best["slot"]) if best["snapshot"] else None
                    m.save_best(run.file(BEST_WEIGHTS), weights, best["epoch"], best["val_dice"])
                    if previews and best["preview"] is not None:
                        save_preview(run.path, "best", epoch=best["epoch"], **best["preview"])
                if not failed:
                    if previews and final:
                        save_preview(run.path, "last", epoch=m.epoch, **m.predict_preview())
                    # checkpoint first (it holds the history), then the metrics lines and summary
                    m.save_checkpoint(run.file(CHECKPOINT))
                    self.timing["checkpoint_bytes"] += run.file(CHECKPOINT).stat().st_size
                    self.timing["checkpoints"] += 1
                for rec in m.pending:
                    append_jsonl(run.file(METRICS), rec)
                atomic_write_json(run.file(SUMMARY), m.summary())
        if not failed:
            m.written = m.summary()
        done, m.pending, m.pending_best = m.pending, [], None
        for rec in done:
            if m.events.on_epoch:
                m.events.on_epoch(rec)

    def _leave(self, m: PackMember, result: Result) -> None:
        """``m`` leaves the pack (it goes back to solo at the end of the epoch) and its on_end hears how it ended."""
        m.result = result
        if m.events.on_end:
            m.events.on_end(result)

    def _fail(self, m: PackMember, why: str) -> None:
        """Diverged: as a solo run, the good epochs' metrics and the summary are written (the checkpoint stays at
        the last written epoch: the weights now are not finite) and the run ends failed with the solo message."""
        try:
            self._write(m, final=False, failed=True)
        except Exception as exc:  # noqa: BLE001 - its files (or its claim): this member only
            self._leave(m, Result("raised", m.written, _first_line(exc), exc))
            return
        self._leave(m, Result("failed", m.summary(), why))

    def fit(self, runs: Sequence[Run | None] | None = None, events: Sequence[Events | None] | None = None,
            run_ids: Sequence[str | None] | None = None, until_epochs: Sequence[int | None] | None = None
            ) -> list[Result]:
        """Train every member to its epochs (or ``until_epochs[i]``, a successive-halving rung), each resuming from
        its run's checkpoint when it has one for its definition (as Trainer.fit). Returns one Result per member, in
        order; each member's ``events.on_end`` hears its Result as soon as it leaves the pack. A member's
        "raised" Result carries the exception its files, its claim or the shared computation raised (``exc``)."""
        n = len(self.members)
        runs = list(runs) if runs is not None else [None] * n
        events = [e or Events() for e in events] if events is not None else [Events() for _ in range(n)]
        run_ids = list(run_ids) if run_ids is not None else [None] * n
        until_epochs = list(until_epochs) if until_epochs is not None else [None] * n
        ids = [rid or (r.id if r is not None else f"member {i + 1}") for i, (rid, r) in enumerate(zip(run_ids, runs))]
        for i, m in enumerate(self.members):
            m.run, m.events, m.run_id, m.result = runs[i], events[i], run_ids[i], None
            m.stop_at, m.stopping, m.pending, m.pending_best = m.stop_epoch(until_epochs[i]), False, [], None
            m.pack_name = ids[i]
        self._set_pack_info()  # (written to config.json by open_run)
        for m in self.members:  # resume or start afresh, as a solo run
            try:
                resumed, restarted = m.open_run(m.run, m.guard, m.run_id) if m.run is not None else (False, None)
            except Exception as exc:  # noqa: BLE001 - an unreadable checkpoint, a claim lost: this member only
                self._leave(m, Result("raised", m.summary(), _first_line(exc), exc))
                continue
            m.written = m.summary()
            if m.events.on_start:
                m.events.on_start({**m.describe(), "resumed_epoch": m.epoch if resumed else None,
                                   "restarted": restarted})
            if m.epoch >= m.stop_at or m.stopped_early():
                self._leave(m, Result("done", m.summary()))
        try:
            self._compact()
            while self.in_pack:
                self._epoch()
                self._compact()
        except Exception as exc:  # noqa: BLE001 - the shared computation (out of memory, ...): every member in it
            n = len(self.slots)  # (frozen slots take memory too)
            split = n > 1 and out_of_memory(exc)  # no member's fault: each trains again in a smaller pack
            why = (f"out of memory in a pack of {n}: trains again from its last checkpoint in packs of at most "
                   f"{n // 2}" if split else _first_line(exc))
            for m in self.in_pack:
                if m.result is None:
                    self._leave(m, Result("split" if split else "raised", m.written, why, exc))
            with contextlib.suppress(Exception):
                self._compact()
        return [m.result if m.result is not None else Result("interrupted", m.written) for m in self.members]

    def _epoch(self) -> None:
        members = list(self.in_pack)
        size = len(members)
        t0 = time.perf_counter()
        trained = self.train_epoch()
        t_train = time.perf_counter()
        going: list[tuple[PackMember, float, float, float]] = []
        for m, (loss, dice) in zip(members, trained):
            if m.stopping:  # its rows hold part of an epoch: nothing more is written; resumes from its files
                self._leave(m, Result("interrupted", m.written))
            elif not math.isfinite(loss):
                self._fail(m, diverged_message(loss, m.epoch + 1, m.optimizer.param_groups[0]["lr"]))
            else:
                going.append((m, loss, dice, m.optimizer.param_groups[0]["lr"]))
        self._cache = {}
        improved = []
        for m, loss, dice, lr in going:
            rec, better = m.end_epoch(loss, dice, lr, m.evaluate(), t0)
            rec["pack_size"] = size  # its seconds are the pack's epoch: every member trained in them
            m.pending.append(rec)
            if better:
                improved.append(m)
        ending = {id(m) for m, *_ in going if m.epoch >= m.stop_at or m.stopped_early()}
        # a member leaving (ended, diverged, stopped) changes the pack: everyone's epochs are written first, so that a
        # resume after any later kill finds each member where the pack changed and goes on as it went on (runner)
        write_now = self._write_due() or bool(ending) or len(going) < size
        if improved:
            later = [m for m in improved if not (write_now or id(m) in ending)]
            snap = self._snapshot() if later else None
            later_ids = {id(x) for x in later}
            for m in improved:
                now = id(m) not in later_ids
                preview = m.predict_preview() if (m.cfg.preview_count > 0 and not now) else None
                m.pending_best = {"epoch": m.epoch, "val_dice": m.best["val_dice"], "preview": preview,
                                  "snapshot": None if now else snap, "slot": m.slot}
        t_eval = time.perf_counter()
        self._since_write += t_eval - t0
        self.timing["epochs"] += 1
        self.timing["train"] += t_train - t0
        self.timing["eval"] += t_eval - t_train
        writing = [m for m, *_ in going if write_now or id(m) in ending]
        writing.sort(key=lambda m: id(m) in ending)  # those staying first: a kill between leaves the leavers resumable
        for m in writing:
            try:
                if m.pending_best is not None and m.pending_best["snapshot"] is None and m.pending_best["preview"] is None \
                        and m.cfg.preview_count > 0:
                    m.pending_best["preview"] = m.predict_preview()
                self._write(m, final=id(m) in ending)
                if id(m) in ending and m.run is not None:  # the end-of-run metrics, on its best epoch's weights
                    m.end_of_run(m.run)
                    m.save_end(m.run, m.guard)
            except Exception as exc:  # noqa: BLE001 - its files or its claim: this member leaves, the others go on
                self._leave(m, Result("raised", m.written, _first_line(exc), exc))
                continue
            if id(m) in ending:
                self._leave(m, Result("done", m.summary()))
        t_write = time.perf_counter()
        if write_now:
            self._last_write, self._since_write = t_write - t_eval, 0.0
            self.timing["write_rounds"] += 1
        self.timing["write"] += t_write - t_eval
