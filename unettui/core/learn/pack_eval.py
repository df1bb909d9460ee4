"""How a pack is scored (PackTrainer's evaluation, core.learn.pack_train): every member's validation and test scores
and previews from packed forward passes, once per epoch.

Members that share their images are scored in one forward per batch (resized) or one sliding-window pass per image
whose N x C output channels are blended together (native). The folds of a configuration each validate on their own
images: resized, member i's batch sits in its slot of the packed input (a last, ragged batch padded, its targets -1
counted nowhere, its losses per member on its own images as its solo run batches them); native, each member is
scored alone with its weights taken out of the pack (windows over images of different sizes do not stack)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from .native_run import preview_context, window_logits
from .task import Scores
from .train import Trainer

__all__ = ["PackScoring"]


class PackScoring:
    """PackTrainer's scoring: its validation and test Scores and previews, cached per epoch in ``self._cache`` (a
    member ``m`` is a pack_train.PackMember: its ``slot`` in the pack, its own ``unet``)."""

    @torch.no_grad()
    def _forward_eval(self, images: Tensor) -> Tensor:
        """Every member's logits [N, B, C, H, W] for one shared batch of images [B, Cin, H, W], or for each member's
        own [N, B, Cin, H, W], in eval mode."""
        assert self.model is not None
        self.model.eval()
        x = self.model.pack_inputs(images) if images.dim() == 5 else images.repeat(1, self.model.n, 1, 1)
        if self.cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            return self.model(x)

    @torch.no_grad()
    def _window_logits(self, image: Tensor) -> Tensor:
        """Every member's logits [N, 1, C, H, W] of one whole image [Cin, H, W], by sliding window (native
        resolution): the pack's output channels blended as one image of N * C channels."""
        assert self.model is not None
        self.model.eval()
        n, c = self.model.n, self.model.out_channels

        def forward(windows: Tensor) -> Tensor:  # [B, Cin, P, P] -> [B, N * C, P, P]
            out = self.model(windows.repeat(1, n, 1, 1))
            return out.transpose(0, 1).reshape(out.shape[1], n * c, *out.shape[-2:])

        cfg = self.first.cfg
        out = window_logits(forward, image, cfg.patch_size, cfg.overlap, self.bs, self.device, self.autocast,
                            channels_last=self.cuda, out_channels=n * c)
        return out.reshape(n, 1, c, *out.shape[-2:])

    def _eval_batches(self, images, masks, n: int):
        """(every member's logits [N, B, C, H, W], the targets [N, B, 1, H, W]) of the shared images: in batches of
        the batch size, or at native resolution one whole image at a time by sliding window."""
        if self.native:
            for image, y in zip(images, masks):
                logits = self._window_logits(image)
                yield logits, y[None].expand(n, 1, *y.shape).to(logits.device)
            return
        for start in range(0, len(images), self.bs):
            x, y = images[start: start + self.bs], masks[start: start + self.bs]
            yield self._forward_eval(x), y.unsqueeze(0).expand(n, *y.shape)

    @torch.no_grad()
    def scores(self, which: str) -> list[Scores | None]:
        """The Scores of every member in the pack on the shared validation ("val") or test ("test") images, as
        Trainer.evaluate computes them, by slot (None: a frozen slot); computed once per epoch."""
        if which in self._cache:
            return self._cache[which]
        if which == "val" and not self.same_data:
            self._cache[which] = self._own_scores()
            return self._cache[which]
        assert self.loss is not None
        images, masks = (self.val_x, self.val_y) if which == "val" else (self.test_x, self.test_y)
        n = len(self.slots)
        loss_sum = torch.zeros(n, device=self.device, dtype=torch.float64)
        counts = torch.zeros(n, self.task.k - 1, 3, device=self.device, dtype=torch.float64)
        for logits, y in self._eval_batches(images, masks, n):
            with self.autocast():
                losses = self.loss(logits, y)
            loss_sum += losses.double().to(self.device) * y.shape[1]
            counts += self.task.member_counts(logits, y).to(self.device)
        total, cnts = len(images), counts.tolist()
        out = [m.task.scores(s / total, c) if m is not None else None
               for m, s, c in zip(self.slots, loss_sum.tolist(), cnts)]
        self._cache[which] = out
        return out

    def _own_scores(self) -> list[Scores | None]:
        """Each member's Scores on its own validation images (the folds of a configuration). Resized: one packed
        forward per batch, member i's images in its slot; the folds differ in size by at most one image, so in a
        last, ragged batch the shorter members' slots are padded (targets -1: counted nowhere) and their losses taken
        on their own images alone, as their solo runs batch them. Native: each member alone, its weights out of the
        pack (sliding windows over images of different sizes do not stack). A frozen slot has no images (None)."""
        members, n = self.slots, len(self.slots)
        if self.native:
            out: list[Scores | None] = []
            for m in members:
                if m is None:
                    out.append(None)
                    continue
                with self._alone(m):
                    out.append(Trainer.evaluate(m))
            return out
        assert self.loss is not None
        loss_sum = torch.zeros(n, device=self.device, dtype=torch.float64)
        counts = torch.zeros(n, self.task.k - 1, 3, device=self.device, dtype=torch.float64)
        live = [m for m in members if m is not None]
        for start in range(0, max(m.n_val for m in live), self.bs):
            xs = [m.val_x[start: start + self.bs] if m is not None else live[0].val_x[:0] for m in members]
            ys = [m.val_y[start: start + self.bs] if m is not None else live[0].val_y[:0] for m in members]
            sizes, b = [len(x) for x in xs], max(len(x) for x in xs)
            x = torch.stack([torch.cat([x, x.new_zeros(b - len(x), *x.shape[1:])]) for x in xs])
            y = torch.stack([torch.cat([y, y.new_full((b - len(y), *y.shape[1:]), -1)]) for y in ys])
            logits = self._forward_eval(x)
            counts += self.task.member_counts(logits, y).to(self.device)
            with self.autocast():
                if min(sizes) == b:
                    loss_sum += self.loss(logits, y).double().to(self.device) * b
                    continue
                for i, (m, size) in enumerate(zip(members, sizes)):
                    if size and m is not None:
                        loss_sum[i] += m.loss_fn(logits[i, :size], y[i, :size]).double().to(self.device) * size
        cnts = counts.tolist()
        return [m.task.scores(s / m.n_val, c) if m is not None else None
                for m, s, c in zip(members, loss_sum.tolist(), cnts)]

    @contextlib.contextmanager
    def _alone(self, m: Any) -> Iterator[None]:
        """Member ``m`` as a solo Trainer for a moment: its own UNet with its weights in the pack as ``m.model``."""
        with torch.no_grad():
            m.unet.load_state_dict(m.model.state_dict())
        packed, m.model = m.model, m.unet
        try:
            yield
        finally:
            m.model = packed

    @torch.no_grad()
    def preview(self, m: Any) -> dict[str, Any]:
        """Trainer.predict_preview of member ``m`` (one packed forward per epoch for all members; each member alone
        when each has its own validation images)."""
        if not self.same_data:
            with self._alone(m):
                return Trainer.predict_preview(m)
        k = min(m.cfg.preview_count, m.n_val)
        key = ("preview", k)
        names, context = self.names[:k], None
        if key not in self._cache and self.native:
            x, y, names, context = preview_context(self.val_x[:k], self.val_y[:k], names)
            logits = torch.stack([self._window_logits(im)[:, 0] for im in x], dim=1)  # [N, k, C, S, S]
            prob = self.task.probabilities(logits.flatten(0, 1)).reshape(logits.shape).cpu()
            self._cache[key] = (prob, x.float().cpu(), y.clamp(min=0).cpu(), names, context)
        if key not in self._cache:
            logits = self._forward_eval(self.val_x[:k])
            prob = self.task.probabilities(logits.flatten(0, 1)).reshape(logits.shape).cpu()
            self._cache[key] = (prob, self.val_x[:k].float().cpu(), self.val_y[:k].clamp(min=0).cpu(), names, None)
        prob, images, masks, names, context = self._cache[key]
        return {"images": images, "masks": masks, "probs": prob[m.slot], "names": names,
                "class_names": m.task.classes.names, "context": context}
