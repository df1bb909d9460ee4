"""Packs in the runner, over real processes: `unettui run --pack`, kill -9 and SIGTERM of a packed runner, which
experiments share a pack, and `unettui bench --pack`."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
import torch

from tests.helpers import StopInEpoch, run_cli, unettui_cmd
from unettui.core.runs.options import parse_pack
from unettui.core.runs.store import RunStore
from unettui.runner import Runner, SilentReporter

KEYS = ("epoch", "train_loss", "train_dice", "val_loss", "val_dice", "val_iou", "lr")
SWEEP = "[[sweep]]\nid = 's'\noptimizer = ['adam', 'sgd', 'rmsprop']\n"
IDS = ("s-adam", "s-sgd", "s-rmsprop")


def metrics(proj, run_id):
    return [{k: m[k] for k in KEYS} for m in RunStore(proj).run(run_id).metrics()]


def wait_for(predicate, proc, timeout=120.0):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    return False


def killed_pack(make_project, body: str, ids, epochs: int = 30):
    """Projects "ref" and "got" of ``body``: ref trained to the end by `run --pack 3`, got's packed runner killed with
    kill -9 once a member has two epochs on disk. Returns (ref, got, each member's checkpoint epoch), every member
    killed mid-run with a checkpoint."""
    ref = make_project(body, name="ref")
    got = make_project(body, name="got")
    out = run_cli("run", "--headless", "--threads", "1", "--pack", "3", "-p", str(ref))
    assert out.returncode == 0, out.stdout
    proc = subprocess.Popen(unettui_cmd("run", "--headless", "--threads", "1", "--pack", "3", "-p", str(got)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = RunStore(got)
    assert wait_for(lambda: any(len(store.run(i).metrics()) >= 2 for i in ids), proc), \
        "the runner finished or stalled before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at = {i: torch.load(store.run(i).file("checkpoint.pt"), weights_only=False)["epoch"] for i in ids}
    assert all(1 <= e < epochs for e in at.values()), at  # killed mid-run, every member with a checkpoint
    return ref, got, at


def test_run_pack_3_trains_a_sweep_as_one_pack_with_every_members_files(make_project):
    proj = make_project(SWEEP, name="packed")
    ref = make_project(SWEEP, name="alone")
    out = run_cli("run", "--headless", "--plain", "--threads", "1", "--pack", "3", "-p", str(proj))
    assert out.returncode == 0, out.stdout + out.stderr
    alone = run_cli("run", "--headless", "--plain", "--threads", "1", "--pack", "off", "-p", str(ref))
    assert alone.returncode == 0, alone.stdout
    lines = out.stdout.splitlines()
    store = RunStore(proj)
    for i in IDS:
        run = store.run(i)
        st = run.status()
        assert st["state"] == "done" and st["attempt"] == 1 and st["epoch"] == 2, st
        for name in ("config.json", "metrics.jsonl", "summary.json", "checkpoint.pt", "best.pt", "run.log",
                     "preview_best.png", "preview_best.npz", "preview_last.png", "preview_last.npz"):
            assert run.file(name).exists(), (i, name)
        config = json.loads(run.file("config.json").read_text())
        assert config["pack_size"] == 3 and sorted(config["pack_members"]) == sorted(set(IDS) - {i})
        assert [m["epoch"] for m in run.metrics()] == [1, 2]
        assert run.summary()["epochs_done"] == 2
        log = run.file("run.log").read_text()
        assert "in a pack of 3 with" in log and log.rstrip().endswith("done")
        # the same numbers as the run trained alone (grouped kernels: float32 rounding, no more)
        got, want = metrics(proj, i)[0], metrics(ref, i)[0]
        for k in KEYS:
            assert got[k] == pytest.approx(want[k], rel=1e-5, abs=1e-6), (i, k, got[k], want[k])
    # trained at the same time, by one process: every member started before any finished its first epoch, and
    # every member's first epoch came before any member's end
    first_epoch = min(n for n, line in enumerate(lines) if " 1/2 " in line)
    first_end = min(n for n, line in enumerate(lines) if ": done," in line)
    for i in IDS:
        assert next(n for n, line in enumerate(lines) if line.startswith(f"{i}: started")) < first_epoch
        assert next(n for n, line in enumerate(lines) if line.startswith(f"  {i} 1/2 ")) < first_end
        assert f"{i}: started on cpu, amp off, 13 train / 3 val images, in a pack of 3" in out.stdout
    assert len({store.run(i).status()["pid"] for i in IDS}) == 1
    assert "finished: 3 done, 0 failed, 0 interrupted" in out.stdout


@pytest.mark.slow
def test_kill_9_of_a_packed_runner_then_resume_with_the_default_options_completes_every_member_exactly(make_project):
    """The default options (--pack auto, which packs no new experiments on the CPU) resume the interrupted pack as a
    pack: resumed alone, a member's fp32 numbers would round as a solo run's from then on (docs/packs.md)."""
    # long enough for several rounds of writes (a pack writes on a cadence: see core/learn/pack_train.py)
    body = SWEEP + "epochs = 30\nnum_images = 32\ndropout = 0.1\naugment.rotate = 10\n"
    ref, got, at = killed_pack(make_project, body, IDS)
    store = RunStore(got)
    assert all(store.run(i).state() == "interrupted" for i in IDS)
    again = run_cli("run", "--headless", "--plain", "--threads", "1", "-p", str(got))
    assert again.returncode == 0, again.stdout
    assert "note: packs: off on cpu: --pack auto packs on CUDA only" in again.stdout
    for i in IDS:
        assert f"{i}: resumed at epoch {at[i]} on cpu, amp off, 26 train / 6 val images, in a pack of 3" in again.stdout
        log = store.run(i).file("run.log").read_text()
        assert "packs: resumes in the pack it was interrupted in on cpu (3 of its 3 members: s-adam, s-rmsprop, " \
               "s-sgd), as --pack auto resumes a pack" in log
        assert metrics(got, i) == metrics(ref, i)  # exactly the uninterrupted pack's numbers
        st = store.run(i).status()
        assert st["state"] == "done" and st["attempt"] == 1 and st["resumes"] == 1


def test_sigterm_stops_a_pack_with_every_member_interrupted_and_resumable(make_project):
    proj = make_project(SWEEP + "epochs = 40\nnum_images = 32\n")
    proc = subprocess.Popen(unettui_cmd("run", "--headless", "--threads", "1", "--pack", "3", "-p", str(proj)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store = RunStore(proj)
    assert wait_for(lambda: all(len(store.run(i).metrics()) >= 1 for i in IDS), proc)
    proc.send_signal(signal.SIGTERM)
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout
    for i in IDS:
        st = store.run(i).status()
        ckpt = torch.load(store.run(i).file("checkpoint.pt"), weights_only=False)
        # stopped after a batch: the run stays at its last written epoch, which its status and summary say
        assert st["state"] == "interrupted" and st["error"] is None and 1 <= st["epoch"] < 40, st
        assert ckpt["epoch"] == st["epoch"] == store.run(i).summary()["epochs_done"]
        assert f"{i}: interrupted after epoch {st['epoch']}" in stdout


def test_the_runner_packs_only_compatible_experiments(make_project):
    proj = make_project(
        "[[experiment]]\nid = 'a'\n"
        "[[experiment]]\nid = 'big'\nimage_size = 64\n"  # another shape: alone, or with its like
        "[[experiment]]\nid = 'b'\noptimizer = 'sgd'\nlr = 0.01\n"
        "[[experiment]]\nid = 'big2'\nimage_size = 64\nseed = 3\n"
        "[[experiment]]\nid = 'batch2'\nbatch_size = 2\n"  # alone
        "[[experiment]]\nid = 'c'\nloss = 'bce'\ndropout = 0.2\nepochs = 3\n"
        "[[experiment]]\nid = 'd'\nseed = 9\n"  # a fourth: the pack is full
    )
    outcome = Runner(proj, reporter=SilentReporter(), pack=3).run()
    assert sorted(outcome.done) == sorted(["a", "b", "c", "big", "big2", "batch2", "d"]), outcome
    store = RunStore(proj)

    def mates(i):
        config = json.loads(store.run(i).file("config.json").read_text())
        return config.get("pack_size"), sorted(config.get("pack_members", []))

    assert mates("a") == (3, ["b", "c"]) and mates("b") == (3, ["a", "c"])
    # c trained on after a and b ended: two of three slots frozen, its pack was built again as a pack of one, and
    # config.json records the pack it is in now (metrics.jsonl each epoch's pack size)
    assert mates("c") == (1, []) and [m["pack_size"] for m in store.run("c").metrics()] == [3, 3, 1]
    assert mates("big") == (2, ["big2"]) and mates("big2") == (2, ["big"])
    assert mates("batch2") == (None, []) and mates("d") == (None, [])  # trained alone: the solo trainer
    # why a run trained alone although packs were on, in one line of its log; none where nothing else was waiting
    assert "batch2 trains alone: no experiment waiting shares its data, shapes, device and AMP (d differs in " \
           "batch_size)" in store.run("batch2").file("run.log").read_text()
    assert "trains alone" not in store.run("d").file("run.log").read_text()
    assert [m["epoch"] for m in store.run("c").metrics()] == [1, 2, 3]
    # packed and unpacked runners share a queue: a second runner finds nothing left
    assert Runner(proj, reporter=SilentReporter(), pack=3).run().done == []


def test_pack_choices():  # what each choice packs: tests/unit/test_pack_check.py
    assert parse_pack("auto") == "auto" and parse_pack("OFF") == "off" and parse_pack("8") == 8
    with pytest.raises(ValueError, match="auto, off or a number"):
        parse_pack("0")
    bad = run_cli("run", "--headless", "--pack", "many", "-p", ".")
    assert bad.returncode != 0 and "--pack many: use auto, off or a number" in bad.stdout + bad.stderr


def test_bench_pack_prints_both_speeds_and_the_ratio_last():
    out = run_cli("bench", "--device", "cpu", "--pack", "1,2", "--steps", "2", "--rounds", "1", "--image-size", "32",
                  "--base-channels", "4", "--threads", "1")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("bench --pack: UNet base 4") and "amp off" in lines[0]
    assert lines[1].startswith("N=1: sequential ") and "packed " in lines[1] and lines[2].startswith("N=2: ")
    assert lines[-1].startswith("ratio = packed / sequential = ") and "(N=1)" in lines[-1] and "(N=2)" in lines[-1]



def stopped_in(proj, epoch, pack=3):
    reporter = StopInEpoch(epoch)
    runner = reporter.runner = Runner(proj, reporter=reporter, pack=pack)
    return runner.run()


def test_a_member_left_alone_in_its_pack_resumes_alone_through_the_pack_trainer_exactly(make_project, monkeypatch):
    # 'short' ends at epoch 2 and leaves the pack; 'long' trains on as a pack of one, is stopped in epoch 4 and
    # resumes as the pack of one it was in (the solo trainer's fp32 kernels round differently)
    monkeypatch.setattr(torch, "get_num_threads", torch.get_num_threads)
    torch.set_num_threads(1)
    body = ("[[experiment]]\nid = 'short'\nepochs = 2\n"
            "[[experiment]]\nid = 'long'\noptimizer = 'rmsprop'\nepochs = 5\ndropout = 0.1\naugment.rotate = 10\n")
    ref, got = make_project(body, name="ref"), make_project(body, name="got")
    assert sorted(Runner(ref, reporter=SilentReporter(), pack=2).run().done) == ["long", "short"]
    first = stopped_in(got, 4, pack=2)
    assert first.done == ["short"] and first.interrupted == ["long"]
    store = RunStore(got)
    assert 2 <= store.run("long").summary()["epochs_done"] < 5
    assert Runner(got, reporter=SilentReporter()).run().done == ["long"]
    assert metrics(got, "long") == metrics(ref, "long")
    # (the pack of 2 was built again as a pack of 1 when 'short' left, and config.json says so)
    assert "packs: resumes in the pack it was interrupted in on cpu (1 of its 1 members: long), as --pack auto " \
           "resumes a pack" in store.run("long").file("run.log").read_text()
    assert json.loads(store.run("long").file("config.json").read_text())["pack_size"] == 1


def test_pack_off_resumes_an_interrupted_pack_member_alone_and_says_what_changes(make_project):
    torch.set_num_threads(1)
    proj = make_project(SWEEP + "epochs = 3\n")
    assert sorted(stopped_in(proj, 2).interrupted) == sorted(IDS)
    out = run_cli("run", "--headless", "--plain", "--threads", "1", "--pack", "off", "-p", str(proj))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "note: packs: off (--pack off): every experiment trains alone" in out.stdout
    store = RunStore(proj)
    for i in IDS:
        assert (f"{i}: interrupted in a pack, resumes alone (--pack off): from here on its fp32 numbers round as a "
                "solo run's, not as its pack's (docs/packs.md)") in out.stdout
        assert f"{i}: resumed at epoch 1 on cpu, amp off, 13 train / 3 val images\n" in out.stdout
        assert "this run was interrupted in a pack and resumes alone" in store.run(i).file("run.log").read_text()
        assert "pack_size" not in json.loads(store.run(i).file("config.json").read_text())


@pytest.mark.slow
def test_kill_9_of_a_fold_pack_then_resume_completes_every_fold_exactly_and_writes_the_cross_validation(make_project):
    """The three folds of a configuration (of unequal size: 11 non-test images) trained as one pack, killed with
    kill -9 and resumed with the default options: every fold ends with the uninterrupted pack's numbers, and the
    configuration's cross-validation file is written once the last fold is done."""
    body = "[[experiment]]\nid = 'cv'\nfolds = 3\nepochs = 30\nnum_images = 14\ntest_fraction = 0.2\n" \
           "dropout = 0.1\naugment.rotate = 10\n"
    ids = ("cv-f1", "cv-f2", "cv-f3")
    ref, got, at = killed_pack(make_project, body, ids)
    store = RunStore(got)
    assert store.configuration("cv") is None  # not before every fold is done
    again = run_cli("run", "--headless", "--plain", "--threads", "1", "-p", str(got))
    assert again.returncode == 0, again.stdout
    for i in ids:
        assert metrics(got, i) == metrics(ref, i)  # exactly the uninterrupted pack's numbers
        assert store.run(i).status()["resumes"] == 1
    assert "cross-validation of cv (repeat 1, 3 folds): pooled out-of-fold Dice" in again.stdout
    mine, theirs = store.configuration("cv"), RunStore(ref).configuration("cv")
    assert mine["repeats"][0]["oof"] == theirs["repeats"][0]["oof"]
    assert mine["repeats"][0]["test"]["ensemble_dice"] == theirs["repeats"][0]["test"]["ensemble_dice"]


def test_a_pack_that_runs_out_of_memory_splits_in_two_and_no_member_fails(make_project, monkeypatch):
    """Fault injection at the allocation point: a PackedUNet of more than ``limit`` members raises torch's
    out-of-memory error in its forward pass in the second epoch. The pack of 4 splits into packs of 2 that resume
    from the members' last checkpoints (epoch 1); with a limit of 1 they go down to one member each; none fails."""
    from unettui.core.learn.pack import PackedUNet

    oom = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    forward = PackedUNet.forward

    for limit, sizes, splits in ((2, {2}, 1), (1, {1}, 2)):  # 4 -> 2; 4 -> 2 -> 1 (the pack of 2 runs out too)
        calls = {"n": 0}

        def tight(self, x, limit=limit, calls=calls):
            if self.training and self.n > limit:
                calls["n"] += 1
                if calls["n"] > 4:  # the first epoch (4 steps) fits; the second does not
                    raise oom("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
            return forward(self, x)

        monkeypatch.setattr(PackedUNet, "forward", tight)
        proj = make_project("[[sweep]]\nid = 's'\nlr = [0.001, 0.002, 0.003, 0.004]\n", name=f"oom{limit}")
        outcome = Runner(proj, reporter=SilentReporter(), pack=4).run()
        ids = ["s-lr0.001", "s-lr0.002", "s-lr0.003", "s-lr0.004"]
        assert sorted(outcome.done) == ids and not outcome.failed, outcome
        store = RunStore(proj)
        for i in ids:
            run = store.run(i)
            log = run.file("run.log").read_text()
            assert "interrupted: out of memory in a pack of 4: trains again from its last checkpoint in packs of " \
                   "at most 2" in log
            assert "resumed at epoch 1" in log and "ran out of memory on cpu: resumes in a pack of" in log
            if splits == 2:
                assert "out of memory in a pack of 2: trains again from its last checkpoint in packs of at most 1" \
                    in log
            config = json.loads(run.file("config.json").read_text())
            assert config["pack_size"] in sizes and [m["epoch"] for m in run.metrics()] == [1, 2]
            assert run.status()["state"] == "done" and run.status()["resumes"] == splits
