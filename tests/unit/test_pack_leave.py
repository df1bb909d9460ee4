"""Members leave a pack without a rebuild (issue 27): their slots freeze, the others train on in the same network and
optimizer, exactly as their solo runs (float64); once the members still training are at most half the slots (the
policy on CUDA; on the CPU a pack rebuilds at once), the pack is built again without the frozen ones and config.json
records the new pack; a resumed pack keeps its frozen slots."""

from __future__ import annotations

import json

import pytest
import torch

from unettui.core.learn.pack_train import PackMember, PackTrainer
from unettui.core.learn.train import Trainer
from unettui.core.runs.store import RunStore
from unettui.runner import Runner, SilentReporter

from .test_pack_runner import metrics, stopped_in
from .test_pack_train import F64, MEMBERS, records, runs, weights_diff, worst

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def frozen_slots_on_the_cpu(monkeypatch):
    """The CUDA policy here: frozen slots until at most half the slots train (the CPU's default rebuilds at once)."""
    monkeypatch.setattr(PackTrainer, "compact_share", 0.5)


def counting_assembles(monkeypatch) -> list[int]:
    """Every PackTrainer._assemble from here on: the number of slots it builds."""
    built: list[int] = []
    original = PackTrainer._assemble

    def assemble(self, slots):
        built.append(len(slots))
        return original(self, slots)

    monkeypatch.setattr(PackTrainer, "_assemble", assemble)
    return built


def assert_solo(pack: PackTrainer, cfgs, results) -> None:
    for i, cfg in enumerate(cfgs):
        alone = Trainer(cfg, dtype=F64)
        alone.fit()
        assert results[i].state == "done"
        assert worst(records(pack.members[i].history), records(alone.history)) <= 1e-12, i
        assert weights_diff(pack.members[i].model.state_dict(), alone.model.state_dict()) <= 1e-12, i


def test_a_member_that_leaves_freezes_its_slot_and_the_pack_is_not_rebuilt(tmp_path, monkeypatch):
    built = counting_assembles(monkeypatch)
    cfgs = [MEMBERS[0].replace(epochs=1), MEMBERS[1], MEMBERS[2]]  # "one" leaves after epoch 1; 2 of 3 train on
    pack = PackTrainer.from_configs(cfgs, dtype=F64)
    model, popt = pack.model, pack.popt
    seen = []
    pack._epoch = (lambda inner: lambda: (seen.append((pack.model, pack.popt, [m is None for m in pack.slots])),
                                          inner())[1])(pack._epoch)
    results = pack.fit(runs(tmp_path, ["one", "two", "three"]))
    assert built == [3]  # built once: no rebuild when "one" left
    assert seen[0] == (model, popt, [False, False, False])
    assert all(s[:2] == (model, popt) and s[2] == [True, False, False] for s in seen[1:]) and len(seen) == 3
    assert_solo(pack, cfgs, results)  # the frozen slot changed nothing of the others' numbers
    assert json.loads(RunStore(tmp_path / "packed").run("two").file("config.json").read_text())["pack_size"] == 3


def test_once_half_the_slots_are_frozen_the_pack_is_built_again_and_config_json_says_so(tmp_path, monkeypatch):
    built = counting_assembles(monkeypatch)
    cfgs = [MEMBERS[0].replace(epochs=1, seed=s) for s in (1, 2)] + [MEMBERS[1], MEMBERS[2].replace(epochs=1)]
    pack = PackTrainer.from_configs(cfgs, dtype=F64)
    results = pack.fit(runs(tmp_path, ["a", "b", "stay", "c"]))
    assert built == [4, 1]  # three of four left after epoch 1: 1 <= 4/2, so "stay" is packed again alone
    assert_solo(pack, cfgs, results)
    recorded = json.loads(RunStore(tmp_path / "packed").run("stay").file("config.json").read_text())
    assert (recorded["pack_size"], recorded["pack_slot"], recorded["pack_members"]) == (1, 0, [])
    recorded = json.loads(RunStore(tmp_path / "packed").run("a").file("config.json").read_text())
    assert (recorded["pack_size"], recorded["pack_slot"], recorded["pack_members"]) == (4, 0, ["b", "stay", "c"])


def test_a_pack_resumed_with_a_member_missing_keeps_its_slot_frozen(tmp_path):
    a, b = (PackMember(c, dtype=F64) for c in MEMBERS[1:])
    pack = PackTrainer([a, b], slots=[a, "gone", b])
    assert pack.model.n == 3 and pack.slots == [a, None, b] and (a.slot, b.slot) == (0, 2)
    results = pack.fit(runs(tmp_path, ["a", "b"]))
    assert_solo(pack, MEMBERS[1:], results)
    recorded = json.loads(RunStore(tmp_path / "packed").run("a").file("config.json").read_text())
    assert (recorded["pack_size"], recorded["pack_slot"], recorded["pack_members"]) == (3, 0, ["gone", "b"])


def test_a_runner_resumes_a_pack_with_a_frozen_slot_in_that_pack_exactly(make_project, monkeypatch):
    """'short' ends at epoch 2: its slot freezes and 'a' and 'b' train on in the pack of 3. Stopped in epoch 4 and
    resumed, they are rebuilt in a pack of 3 with 'short's slot frozen: the pack they were in, so their fp32 numbers
    are the uninterrupted pack's, bit for bit (on this CPU a pack of 2 happens to round as one of 3; a GPU picks its
    kernels by shape, hence the same pack)."""
    monkeypatch.setattr(torch, "get_num_threads", torch.get_num_threads)
    torch.set_num_threads(1)
    body = ("[[experiment]]\nid = 'short'\nepochs = 2\n"
            "[[experiment]]\nid = 'a'\noptimizer = 'rmsprop'\nepochs = 6\ndropout = 0.1\n"
            "[[experiment]]\nid = 'b'\nlr = 0.003\nepochs = 6\naugment.rotate = 10\n")
    ref, got = make_project(body, name="ref"), make_project(body, name="got")
    assert sorted(Runner(ref, reporter=SilentReporter(), pack=3).run().done) == ["a", "b", "short"]
    first = stopped_in(got, 4, pack=3)
    assert first.done == ["short"] and sorted(first.interrupted) == ["a", "b"]
    assert sorted(Runner(got, reporter=SilentReporter()).run().done) == ["a", "b"]
    store = RunStore(got)
    for i in ("a", "b"):
        assert metrics(got, i) == metrics(ref, i)
        log = store.run(i).file("run.log").read_text()
        assert "(2 of its 3 members: b, a, the others' slots frozen as they were)" in log
        assert json.loads(store.run(i).file("config.json").read_text())["pack_size"] == 3


def test_on_the_cpu_a_pack_is_built_again_as_soon_as_a_member_leaves(tmp_path, monkeypatch):
    monkeypatch.setattr(PackTrainer, "compact_share", None)  # the default: by device
    built = counting_assembles(monkeypatch)
    cfgs = [MEMBERS[0].replace(epochs=1), MEMBERS[1], MEMBERS[2]]
    pack = PackTrainer.from_configs(cfgs, dtype=F64)
    assert pack._compact_share() == 1.0
    results = pack.fit(runs(tmp_path, ["one", "two", "three"]))
    assert built == [3, 2]
    assert_solo(pack, cfgs, results)
    assert json.loads(RunStore(tmp_path / "packed").run("two").file("config.json").read_text())["pack_size"] == 2


def test_a_runner_logs_the_pack_built_again(make_project, monkeypatch):
    monkeypatch.setattr(PackTrainer, "compact_share", None)  # the CPU's: built again as soon as 'short' leaves
    proj = make_project("[[experiment]]\nid = 'short'\nepochs = 1\n[[experiment]]\nid = 'a'\nepochs = 2\n"
                        "[[experiment]]\nid = 'b'\nlr = 0.003\nepochs = 2\n")
    assert sorted(Runner(proj, reporter=SilentReporter(), pack=3).run().done) == ["a", "b", "short"]
    for i in ("a", "b"):
        log = RunStore(proj).run(i).file("run.log").read_text()
        assert "packs: 2 of the pack's 3 slots still train: built again as a pack of 2 (a, b)" in log


def test_a_pack_resumes_with_the_dropout_masks_it_started_with(make_project, monkeypatch):
    """Started with --pack-dropout fused, stopped, resumed with the default (exact): the runner resumes it fused, as
    it started (its numbers are then the uninterrupted pack's), and says so."""
    from tests.helpers import StopInEpoch

    monkeypatch.setattr(torch, "get_num_threads", torch.get_num_threads)
    torch.set_num_threads(1)
    body = ("[[experiment]]\nid = 'a'\nepochs = 5\ndropout = 0.2\n"
            "[[experiment]]\nid = 'b'\nlr = 0.003\nepochs = 5\ndropout = 0.1\n")
    ref, got = make_project(body, name="ref"), make_project(body, name="got")
    assert sorted(Runner(ref, reporter=SilentReporter(), pack=2, pack_dropout="fused").run().done) == ["a", "b"]
    reporter = StopInEpoch(3)
    reporter.runner = Runner(got, reporter=reporter, pack=2, pack_dropout="fused")
    assert sorted(reporter.runner.run().interrupted) == ["a", "b"]
    assert sorted(Runner(got, reporter=SilentReporter()).run().done) == ["a", "b"]
    store = RunStore(got)
    for i in ("a", "b"):
        assert metrics(got, i) == metrics(ref, i)
        assert "with the dropout masks it started with (fused), not --pack-dropout exact" in \
            store.run(i).file("run.log").read_text()
        assert json.loads(store.run(i).file("config.json").read_text())["pack_dropout"] == "fused"
