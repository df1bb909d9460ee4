"""Staged studies ([[study]] in experiments.toml): tune one hyper-parameter family per stage, carry the winner on.

A study has a base (scalar keys on top of ``[defaults]``), optional ``train_fraction`` list (every
configuration runs at each fraction; its score is the mean over them; a stage's own ``train_fraction`` list
replaces it for that stage) and ordered stages. Each stage
varies some keys (lists: a grid, in grid order) and may share scalars. Stage 1 always expands;
stage k+1 expands only once every run of stages 1..k is finished (done or failed). Its experiments
stand on the study base plus the winners of every earlier stage.

Experiment ids: ``<study>-<stage>-<slug of the varied values>[-b<hash>][-f<fraction>]``. Stages after
the first carry ``-b`` + 5 hex digits of a hash of the winners carried into them, so a different
carried winner (a new pin, a retried run that changes the ranking) gives new runs instead of wrongly
reusing runs trained on another base; the same winners give the same ids, and finished runs are reused.

Precedence of keys: [defaults] < study base < carried winners < tuned rates < the stage's scalars < the
stage's grid values < the study's train_fraction.

Stage kinds. A plain grid stage runs every configuration to its epochs. ``halving = { min_epochs, eta }``
adds synchronous successive halving: every configuration is trained to ``min_epochs`` (the experiments carry
that ``budget``), the best ``n // eta`` (at least one; a pinned one always) by the metric at that epoch (mean
over fractions) are promoted and trained on from their checkpoints to ``min_epochs * eta``, and so on up to
``epochs``; the others are pruned where they stopped. The winner is the best of the last rung.
``lr_search = { from, to, steps }`` is the course study's learning-rate method, per configuration of the
stage's grid (e.g. per optimizer): one run per power of ten from ``from`` to ``to``; once they are finished,
a bisection over the integer multipliers of the best power (see :func:`next_multiplier`), one run at a time.
The best rate of each configuration is "tuned": a later stage's experiment that has that configuration
(e.g. optimizer = "sgd") trains at that rate, unless the stage sets lr itself.

Winner of a finished stage: runs are grouped by configuration (the stage's varied values); a
configuration's score is the mean of ``metric`` over its fractions; a configuration with a failed run,
an invalid definition, or a run without the metric has no score and cannot win (unless no configuration
has a score: then the first in grid order is carried on, and said so). An experiment whose definition is
invalid (e.g. a grid value that fails a cross-key check) keeps its stage from finishing: fix it, and the
ids stay the same. Best by direction; exact ties
(within 1e-9) are broken by the smaller spread (max - min) over the fractions — the more consistent
setting — then by grid order. A ``pin`` chooses by hand: the winner is the best configuration among
those matching the pin (the pinned one when the pin names every varied key).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..runs.store import FINISHED, short_of
from ..stats import mean_sd, standard_error, within_noise
from .config import Config, ConfigError, build_config
from .experiment import Experiment, with_repeats
from .names import MAX_ID, id_value, safe_id, slug
from .study_parse import Stage, Study, show_value
from .task import END_KEYS
from .task import metric_value as registry_value

REL_TOL = 1e-9


class RunLookup(Protocol):
    """What the study engine asks of the runs: the planner (core.plan) answers from the read model. Without one
    (parsing alone) no run is known: every run is pending and only the first stage expands."""

    def state(self, exp: Experiment) -> tuple[str, dict[str, Any] | None]:
        """The run's state in the read model's words (pending for a run to train anew or again, running, done,
        failed, interrupted, damaged) and its summary once it has one (done, failed, interrupted)."""

    def metrics(self, run_id: str) -> list[dict[str, Any]]:
        """The run's per-epoch metrics (metrics.jsonl)."""

    def configuration(self, configuration: str) -> dict[str, Any] | None:
        """A cross-validated configuration's results (runs/.configurations/, core.learn.cv) or None. Optional: a
        lookup without it has none."""


@dataclass
class RunScore:
    id: str
    fraction: float | None
    state: str  # pending / running / done / failed / interrupted / damaged / invalid (the read model's words)
    value: float | None  # the study's metric, when the run is done and has it
    summary: dict[str, Any] | None = None
    repeat: int = 1  # which repeat of the configuration (at this fraction) it is
    fold: int = 0  # which fold (folds = k: 1 ... k), 0 without folds


@dataclass
class ConfigScore:
    values: dict[str, Any]
    runs: list[RunScore] = field(default_factory=list)
    score: float | None = None  # mean over fractions of the mean over repeats; None unless every run has the metric
    spread: float | None = None  # max - min over fractions (of the means over repeats)
    sd: float | None = None  # seed-to-seed standard deviation (pooled over fractions); None without repeats
    n: int = 1  # repeats per fraction
    se: float | None = None  # standard error of the score: sd / sqrt(repeats x fractions)
    pruned_at: int | None = None  # successive halving stopped it after this epoch (score: its score there)
    budget: int | None = None  # halving: the epoch its runs are to be trained to now
    paired: tuple[float, float | None, int] | None = None  # with folds: (best mean - this, its standard error, pairs)
    cv: dict[str, Any] | None = None  # with folds: its runs/.configurations/ results (the ensemble's test score)

    def label(self) -> str:
        return ", ".join(f"{k}={show_value(v)}" for k, v in self.values.items())


@dataclass
class StageStatus:
    name: str
    state: str  # waiting / running / done
    varied: list[str]
    carried: dict[str, Any]  # winners of the earlier stages this stage stands on
    planned: int  # experiments the stage has (or will have once it expands)
    experiments: list[str] = field(default_factory=list)
    configs: list[ConfigScore] = field(default_factory=list)
    winner: dict[str, Any] | None = None  # final when state == "done", else the leader so far (or None)
    how: str | None = None  # best / pinned / tie-break / no-score
    why: str = ""
    kind: str = "grid"  # grid / halving / lr-search
    tuned: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)  # lr-search: (group, {"lr": best})
    rungs: list[int] = field(default_factory=list)  # halving: epochs of each rung
    epochs_trained: int = 0  # epochs the stage's runs have trained so far
    epochs_full: int = 0  # epochs the stage would train without halving (every run to its epochs)

    @property
    def finished(self) -> int:
        return sum(r.state in FINISHED for c in self.configs for r in c.runs)


@dataclass
class StudyStatus:
    study: Study
    stages: list[StageStatus]

    @property
    def id(self) -> str:
        return self.study.id

    carried: dict[str, Any] = field(default_factory=dict)  # what the finished stages carry on (winners, their rates)

    def final(self) -> dict[str, Any]:
        """The study base plus the winners of every finished stage, each with the rate its optimizer was tuned to
        (the final configuration once all are done)."""
        return {**self.study.base, **self.carried}

    @property
    def done(self) -> bool:
        return all(st.state == "done" for st in self.stages)

    def final_scores(self) -> dict[str, Any] | None:
        """The final configuration's numbers: the last finished stage's winner's runs (every fraction and repeat) —
        the study metric that chose it (mean, sd, n) and the held-out test Dice/IoU at each run's best epoch, which
        nothing chose by (None without a test split), and ``end``: the end-of-run val and test HD95 and NSD (mean, sd,
        n over its finished runs that have them; core.define.task.END_KEYS) with the ``nsd_tolerance`` they were
        scored at. None before a stage has a winner."""
        stage = next((st for st in reversed(self.stages) if st.state == "done" and st.winner is not None), None)
        if stage is None:
            return None
        cs = next((c for c in stage.configs if c.values == stage.winner), None)
        if cs is None:
            return None
        summaries = [r.summary or {} for r in cs.runs if r.state == "done"]
        val = mean_sd([r.value for r in cs.runs if r.value is not None])
        test = mean_sd([x.get("test_dice") for x in summaries if x.get("test_dice") is not None])
        iou = mean_sd([x.get("test_iou") for x in summaries if x.get("test_iou") is not None])
        n_test = next((x.get("n_test") for x in summaries if x.get("n_test")), 0)
        # the end-of-run boundary metrics (val and test HD95 and NSD on each run's best weights): reported, never
        # chosen by; (None, None, 0) where no run has them
        end = {k: mean_sd([x.get(k) for x in summaries]) for k in END_KEYS}
        tolerances = sorted({x["nsd_tolerance"] for x in summaries if isinstance(x.get("nsd_tolerance"), (int, float))})
        out = {"stage": stage.name, "metric": self.study.metric, "val": val, "test_dice": test, "test_iou": iou,
               "n_test": n_test, "runs": [r.id for r in cs.runs], "end": end, "nsd_tolerance": tolerances}
        if any(r.fold for r in cs.runs):  # cross-validated: the ensemble of the folds is the final model
            repeats = (cs.cv or {}).get("repeats") or []
            out["folds"] = max(r.fold for r in cs.runs)
            out["oof"] = mean_sd([r["oof"]["dice"] for r in repeats])
            out["ensemble_test_dice"] = mean_sd([(r.get("test") or {}).get("ensemble_dice") for r in repeats])
        return out


# ---- expansion ----------------------------------------------------------------------------------------
def base_hash(carried: dict[str, Any]) -> str:
    """5 hex digits naming the winners a later stage stands on (part of its experiments' ids)."""
    return hashlib.sha1(json.dumps(carried, sort_keys=True, default=str).encode()).hexdigest()[:5]


def experiment_id(study: str, stage: str, values: dict[str, Any], carried: dict[str, Any] | None,
                  fraction: float | None) -> str:
    """``<study>-<stage>-<slug>[-b<hash>][-f<fraction>]``; the suffix survives truncation to the id limit."""
    suffix = (f"-b{base_hash(carried)}" if carried is not None else "") + (f"-f{id_value(fraction)}" if fraction is not None else "")
    head = safe_id(f"{study}-{stage}-{slug(values)}")[: MAX_ID - len(suffix)].rstrip("-.")
    return head + suffix


def metric_value(summary: dict[str, Any] | None, metric: str) -> float | None:
    """``metric`` of a summary (or a metrics.jsonl record) as a finite float, None when it has none (the registry's
    reading: a binary run's worst class, ``<key>_min``, is its ``<key>``)."""
    v = registry_value(summary or {}, metric)
    return float(v) if v is not None and math.isfinite(v) else None


def score(cs: ConfigScore) -> None:
    """Mean over fractions of the mean over repeats (None unless every run has the metric); spread over fractions;
    the pooled seed-to-seed sd and the score's standard error when there are repeats."""
    vals = [r.value for r in cs.runs]
    cs.score = cs.spread = cs.sd = cs.se = None
    if not vals or any(v is None for v in vals):
        return
    by_fraction: dict[Any, list[float]] = {}
    for r in cs.runs:
        by_fraction.setdefault(r.fraction, []).append(r.value)  # type: ignore[arg-type]
    means = [sum(v) / len(v) for v in by_fraction.values()]
    cs.score = sum(means) / len(means)
    cs.spread = max(means) - min(means)
    cs.n = min(len(v) for v in by_fraction.values())
    sds = [mean_sd(v)[1] for v in by_fraction.values()]
    if cs.n >= 2 and all(x is not None for x in sds):
        cs.sd = math.sqrt(sum(x * x for x in sds) / len(sds))  # type: ignore[operator]
        cs.se = standard_error(cs.sd, cs.n * len(means))


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)


def paired(a: ConfigScore, b: ConfigScore) -> tuple[float, float | None, int] | None:
    """The paired difference ``a - b`` of two configurations of a stage with folds: their runs matched by (train
    fraction, repeat, fold) — the same images validated by the same fold of both — the mean of the differences, its
    standard error (sd of the differences / sqrt(pairs); None below two pairs) and the number of pairs. None without
    folds or without a pair that both have a value for."""
    if not any(r.fold for r in a.runs):
        return None
    theirs = {(r.fraction, r.repeat, r.fold): r.value for r in b.runs if r.value is not None}
    diffs = [r.value - theirs[key] for r in a.runs if r.value is not None  # type: ignore[operator]
             and (key := (r.fraction, r.repeat, r.fold)) in theirs]
    if not diffs:
        return None
    mean, sd, n = mean_sd(diffs)
    return mean, standard_error(sd, n), n  # type: ignore[return-value]


def paired_text(d: tuple[float, float | None, int] | None) -> str:
    """``+0.0123 ± 0.0040 (SE, 3 pairs; 95 % -0.0049 ... +0.0295)``: a paired difference and its t interval."""
    if d is None:
        return "-"
    mean, se, n = d
    if se is None:
        return f"{mean:+.4f} ({n} pair{'s' if n != 1 else ''})"
    from ..stats import t_quantile

    half = t_quantile(0.975, n - 1) * se
    return f"{mean:+.4f} ± {se:.4f} (SE, {n} pairs; 95 % {mean - half:+.4f} ... {mean + half:+.4f})"


def choose(configs: list[ConfigScore], direction: str) -> tuple[ConfigScore | None, str, str]:
    """The best configuration among ``configs`` (grid order), with how and why.

    How: 'best' (the best score, clear of the others), 'tie within noise' (with repeats: the runner-up is within one
    standard error of the difference; with folds the difference is paired (``paired``: the same folds, so the folds'
    own difficulty cancels) and its standard error is the paired one; of the configurations within the noise of the
    best, the one with the smallest sd over its runs wins — the most reliable — then the better score), 'tie-break'
    (equal scores without repeats: the smaller spread over fractions, then grid order) or 'no-score'. With folds each
    configuration's ``paired`` is set: the best's difference to it."""
    scored = [c for c in configs if c.score is not None]
    if not scored:
        return (configs[0], "no-score", "no configuration has a score (failed runs or missing metric): the first in grid order") if configs else (None, "no-score", "")
    sign = 1.0 if direction == "max" else -1.0
    top = max(sign * c.score for c in scored)  # type: ignore[operator]
    best = next(c for c in scored if _close(sign * c.score, top))  # type: ignore[operator]
    for c in configs:
        c.paired = paired(best, c) if c is not best and c.score is not None else None
    if any(c.paired for c in scored):
        noisy = [c for c in scored if c is best or (c.paired is not None and c.paired[1] is not None
                                                    and abs(c.paired[0]) <= c.paired[1])]
        noise = "one paired standard error (the same folds)"
    else:
        noisy = [c for c in scored if c is best or within_noise(best.score, best.se, c.score, c.se)]  # type: ignore[arg-type]
        noise = "one standard error"
    if len(noisy) > 1:
        order = {id(c): i for i, c in enumerate(configs)}
        pick = min(noisy, key=lambda c: (c.sd, -sign * c.score, order[id(c)]))  # type: ignore[operator]
        others = ", ".join(f"{c.label()} {c.score:.4f} ± {c.sd:.4f}" for c in noisy if c is not pick)
        return pick, "tie within noise", (
            f"{len(noisy)} configurations within {noise} of the best mean ({top * sign:.4f}, n={best.n}): "
            f"the smallest sd over its runs wins ({pick.score:.4f} ± {pick.sd:.4f}; also {others})")
    tied = [c for c in scored if _close(sign * c.score, top)]  # type: ignore[operator]
    if len(tied) == 1:
        runner_up = max((sign * c.score for c in scored if c is not best), default=None)  # type: ignore[operator]
        margin = "" if runner_up is None else f", {abs(top - runner_up):.4f} ahead"
        second = max((c for c in scored if c is not best and c.paired), default=None,
                     key=lambda c: sign * c.score)  # type: ignore[operator]
        if second is not None:
            margin += f" (paired: {paired_text(second.paired)})"
        noise = f" ± {best.sd:.4f} (n={best.n})" if best.sd is not None else ""
        return tied[0], "best", f"{direction} score {tied[0].score:.4f}{noise}{margin}"
    low = min(c.spread for c in tied)  # type: ignore[type-var]
    steady = [c for c in tied if _close(c.spread, low)]  # type: ignore[arg-type]
    if len(steady) == 1:
        return steady[0], "tie-break", (f"tie at score {top * sign:.4f} between {len(tied)} configurations; "
                                        f"smallest spread over fractions ({low:.4f})")
    return steady[0], "tie-break", f"tie at score {top * sign:.4f} and spread {low:.4f}: first in grid order"


def metric_at(history: list[dict[str, Any]], metric: str, epoch: int) -> float | None:
    """``metric`` (a summary key) as the summary would have had it after ``epoch``: from metrics.jsonl lines."""
    rows = [h for h in history if isinstance(h.get("epoch"), int) and h["epoch"] <= epoch]
    if not rows:
        return None
    if metric.startswith("best_"):
        # as summary.json has it: the best epoch is the first with the highest val Dice, and best_val_loss is the
        # val loss of that epoch (not the lowest val loss of any epoch)
        scored = [h for h in rows if metric_value(h, "val_dice") is not None]
        if not scored:
            return None
        best = max(scored, key=lambda h: (h["val_dice"], -h["epoch"]))
        return metric_value(best, metric[len("best_"):])
    return metric_value(rows[-1], metric[len("final_"):])


def rank(configs: list[ConfigScore], direction: str) -> list[ConfigScore]:
    """Best first: by score (none last), then the smaller spread, then grid order."""
    sign = 1.0 if direction == "max" else -1.0
    order = {id(c): i for i, c in enumerate(configs)}
    return sorted(configs, key=lambda c: (c.score is None, -sign * c.score if c.score is not None else 0.0,
                                          c.spread if c.spread is not None else 0.0, order[id(c)]))


class _StageBuilder:
    """Builds one stage's experiments and scores (shared by grid, halving and lr-search stages)."""

    def __init__(self, study: Study, stage: Stage, index: int, status: StageStatus, carried: dict[str, Any],
                 tuned: list[tuple[dict[str, Any], dict[str, Any]]], defaults: Config, lookup: RunLookup | None,
                 file: str, out: list):
        self.study, self.stage, self.index, self.status = study, stage, index, status
        self.carried, self.tuned, self.defaults, self.lookup, self.file, self.out = carried, tuned, defaults, lookup, file, out
        fractions = stage.fractions or study.fractions
        self.fractions: list[float | None] = list(fractions) if fractions else [None]
        self.origin = f"[[study]] '{study.id}' stage '{stage.name}'"
        id_base: dict[str, Any] | None = None
        if index:
            id_base = dict(carried)
            if tuned:  # only then: ids of studies without a search stay as they were
                id_base["_tuned"] = [[g, v] for g, v in tuned]
        self.id_base = id_base
        self.exps: dict[str, Any] = {}

    def _effective(self, key: str, overrides: dict[str, Any]) -> Any:
        if key in overrides:
            return overrides[key]
        from .config import key_to_field
        return getattr(self.defaults, key_to_field(key), None)

    def overrides(self, values: dict[str, Any]) -> dict[str, Any]:
        """[defaults] < study base < carried winners < tuned rates for this configuration < stage scalars < values."""
        explicit = {**self.stage.shared, **values}
        out = {**self.study.base, **self.carried}
        probe = {**out, **explicit}
        for group, tuned_values in self.tuned:
            if all(self._effective(k, probe) == v for k, v in group.items()):
                out.update({k: v for k, v in tuned_values.items() if k not in explicit})
        out.update(explicit)
        return out

    def point(self, values: dict[str, Any]) -> ConfigScore:
        """One configuration: an experiment per train fraction, with each run's state and metric."""
        cs = ConfigScore(values=values)
        for f in self.fractions:
            exp_id = experiment_id(self.study.id, self.stage.name, values, self.id_base, f)
            overrides = self.overrides(values)
            if f is not None:
                overrides["train_fraction"] = f
            exp = Experiment(id=exp_id, origin=f"{self.origin} (item {len(self.status.experiments) + 1} of {self.status.planned})",
                             overrides=overrides)
            try:
                exp.config = build_config(overrides, f"{self.file} {self.origin}", self.defaults)
            except ConfigError as exc:
                exp.error = exc
            for rexp in with_repeats(exp):
                self.out.append(rexp)
                self.exps[rexp.id] = rexp
                self.status.experiments.append(rexp.id)
                cs.runs.append(self._run_score(rexp, f))
            if exp.valid and exp.config.folds and hasattr(self.lookup, "configuration"):
                cs.cv = self.lookup.configuration(exp.id)  # type: ignore[union-attr]
        score(cs)
        self.status.configs.append(cs)
        return cs

    def _run_score(self, exp: Experiment, fraction: float | None) -> RunScore:
        summary = None
        if not exp.valid:
            state = "invalid"  # never trained: the stage cannot finish until the definition is fixed
        elif self.lookup is None:
            state = "pending"
        else:
            state, summary = self.lookup.state(exp)
        if exp.valid:
            self.status.epochs_full += exp.config.epochs
            self.status.epochs_trained += int((summary or {}).get("epochs_done") or 0)
        return RunScore(id=exp.id, fraction=fraction, state=state, summary=summary, repeat=exp.repeat, fold=exp.fold,
                        value=metric_value(summary, self.study.metric) if state == "done" else None)


def _finished(cs: ConfigScore) -> bool:
    return all(r.state in FINISHED for r in cs.runs)


def _choose_winner(status: StageStatus, stage: Stage, candidates: list[ConfigScore], direction: str) -> None:
    best, how, why = choose(candidates, direction)
    if stage.pin:
        matching = [c for c in candidates if all(c.values.get(key) == v for key, v in stage.pin.items())]
        chosen, _, _ = choose(matching, direction)
        if chosen is not None:
            best_label = best.label() if best else "-"
            best, how, why = chosen, "pinned", f"pinned by hand (best by score: {best_label})"
    status.winner = dict(best.values) if best else {}
    status.how, status.why = how, why


def _go_on(b: _StageBuilder, cs: ConfigScore) -> None:
    """Runs done short of their epochs (pruned by an earlier halving of this stage) are to be trained on."""
    for r in cs.runs:
        exp = b.exps[r.id]
        if r.state == "done" and short_of(r.summary, exp.target_epochs):
            r.state, r.value = "pending", None
            cs.score = cs.spread = None


def _grid(b: _StageBuilder) -> bool:
    for combo in b.stage.configurations():
        _go_on(b, b.point(combo))
    return all(_finished(c) for c in b.status.configs)


def _halving(b: _StageBuilder) -> bool:
    """Synchronous successive halving: a rung is decided once every surviving run has reached it."""
    study, st, halving = b.study, b.status, b.stage.halving
    assert halving is not None
    configs = [b.point(combo) for combo in b.stage.configurations()]
    valid = [b.exps[r.id] for c in configs for r in c.runs if b.exps[r.id].valid]
    epochs = valid[0].config.epochs if valid else 0
    st.rungs = halving.rungs(epochs) if epochs else []
    alive = list(configs)
    for i, rung in enumerate(st.rungs):
        for c in alive:
            c.budget = rung
            for r in c.runs:
                b.exps[r.id].budget = rung
                if r.state == "done" and short_of(r.summary, rung):
                    r.state, r.value = "pending", None  # promoted: to be trained on from its checkpoint
        if not all(_finished(c) for c in alive):
            for c in alive:  # the leaders so far: the scores at the last decided rung stay
                if any(r.state not in FINISHED for r in c.runs):
                    c.score = c.score if i else None
            return False
        if rung == st.rungs[-1]:
            for c in alive:
                for r in c.runs:
                    r.value = metric_value(r.summary, study.metric) if r.state == "done" else None
                c.score = c.spread = None
                score(c)
            return True
        for c in alive:  # scores at this rung, from each run's metrics up to it
            for r in c.runs:
                if r.state == "done":
                    summ = r.summary or {}
                    if int(summ.get("epochs_done") or 0) == rung or summ.get("stopped_early"):
                        r.value = metric_value(summ, study.metric)
                    else:
                        r.value = metric_at(b.lookup.metrics(r.id) if b.lookup else [], study.metric, rung)
            c.score = c.spread = None
            score(c)
        keep = max(1, len(alive) // halving.eta)
        survivors = rank(alive, study.direction)[:keep]
        if b.stage.pin:  # a pinned configuration is never pruned
            survivors += [c for c in alive if c not in survivors and all(c.values.get(k) == v for k, v in b.stage.pin.items())]
        for c in alive:
            if c not in survivors:
                c.pruned_at = rung
        alive = [c for c in alive if c in survivors]
    return True


def next_multiplier(scores: dict[int, float | None], steps: int, direction: str) -> int | None:
    """The next integer multiplier of the best power of ten to run, or None when the bisection is over.

    ``scores`` maps the multipliers run so far to their score (1 = the best power itself; 10 = the next power,
    when the decade sweep ran it). The interval [lo, hi] starts at [1, 10] ([1, 9] when the next power was not
    run, 9 being then the first new run) and shrinks to the half on the side of the best of lo, mid, hi (for a
    best mid, the side of the better end) until it is one apart or ``steps`` new runs are spent.
    """
    sign = 1.0 if direction == "max" else -1.0

    def val(m: int) -> float:
        v = scores.get(m)
        return -math.inf if v is None else sign * v

    used = sum(1 for m in scores if 1 < m < 10)
    lo, hi = 1, 10 if 10 in scores else 9
    while True:
        for m in (lo, hi, (lo + hi) // 2):
            if m not in scores:
                return m if used < steps else None
        if hi - lo <= 1:
            return None
        mid = (lo + hi) // 2
        best = max((lo, mid, hi), key=val)
        if best == lo or (best == mid and val(lo) >= val(hi)):
            hi = mid
        else:
            lo = mid
        if hi - lo <= 1:
            return None


def _lr_search(b: _StageBuilder) -> bool:
    """Per configuration of the stage's grid (e.g. per optimizer): a run per power of ten, then the bisection."""
    search, direction = b.stage.lr_search, b.study.direction
    assert search is not None
    complete = True
    for group in b.stage.configurations() or [{}]:
        points = [b.point({**group, "lr": lr}) for lr in search.decades()]
        for c in points:
            _go_on(b, c)
        if not all(_finished(c) for c in points):
            complete = False
            continue
        best_decade = choose(points, direction)[0]
        assert best_decade is not None
        exp10 = round(math.log10(best_decade.values["lr"]))
        by_mult = {1: best_decade}
        above = next((c for c in points if math.isclose(c.values["lr"], 10.0 ** (exp10 + 1))), None)
        if above is not None:
            by_mult[10] = above
        group_done = True
        while (m := next_multiplier({k: c.score for k, c in by_mult.items()}, search.steps, direction)) is not None:
            c = b.point({**group, "lr": float(f"{m}e{exp10}")})
            _go_on(b, c)
            points.append(c)
            by_mult[m] = c
            if not _finished(c):
                group_done = False
                break
        if group_done:
            best = choose(points, direction)[0]
            if best is not None:
                b.status.tuned.append((dict(group), {"lr": best.values["lr"]}))
        complete = complete and group_done
    return complete


def expand(study: Study, defaults: Config, lookup: RunLookup | None = None, file: str = "experiments.toml"
           ) -> tuple[list, StudyStatus]:
    """The study's experiments so far and the status of each stage (see the module docstring for the rules).

    ``lookup`` answers for the runs (core.plan: the read model); without one no run is known, so only stage 1
    expands (what parsing the file alone gives).
    """
    experiments: list = []
    stages: list[StageStatus] = []
    carried: dict[str, Any] = {}
    tuned: list[tuple[dict[str, Any], dict[str, Any]]] = []
    blocked = False
    for k, stage in enumerate(study.stages):
        n_fractions = len(stage.fractions or study.fractions or [None])
        repeats = stage.shared.get("repeats", study.base.get("repeats", defaults.repeats))
        n_fractions *= repeats if isinstance(repeats, int) and repeats > 0 else 1
        folds = stage.shared.get("folds", study.base.get("folds", defaults.folds))
        n_fractions *= folds if isinstance(folds, int) and folds > 1 else 1
        n_configs = len(stage.configurations())
        if stage.lr_search:
            n_configs = max(1, n_configs) * (len(stage.lr_search.decades()) + stage.lr_search.steps)
        status = StageStatus(name=stage.name, state="waiting", varied=list(stage.grid) + (["lr"] if stage.lr_search else []),
                             carried=dict(carried), planned=n_configs * n_fractions, kind=stage.kind)
        stages.append(status)
        if blocked:
            continue
        builder = _StageBuilder(study, stage, k, status, carried, list(tuned), defaults, lookup, file, experiments)
        finished = {"lr-search": _lr_search, "halving": _halving}.get(stage.kind, _grid)(builder)
        if stage.lr_search:
            status.planned = max(status.planned, len(status.experiments)) if not finished else len(status.experiments)
        candidates = [c for c in status.configs if c.pruned_at is None]
        if finished:
            status.state = "done"
            _choose_winner(status, stage, candidates, study.direction)
            tuned.extend(status.tuned)
            winner = status.winner or {}
            carried.update(winner)
            # the winner trained at its optimizer's own rate: carry that rate on with it (the winner's keys first)
            for key, value in builder.overrides(winner).items():
                if key not in winner and any(key in vals for _, vals in tuned):
                    carried[key] = value
        else:
            status.state = "running"
            leader, how, why = choose([c for c in candidates if c.score is not None], study.direction)
            if leader is not None:
                status.winner, status.how, status.why = dict(leader.values), how, "so far: " + why
            blocked = True
    return experiments, StudyStatus(study=study, stages=stages, carried=dict(carried))
