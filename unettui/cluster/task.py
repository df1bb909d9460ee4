"""What runs inside one SLURM array task: an ordinary runner (a pilot) that claims from the project's queue on the
shared filesystem until nothing is left — later study stages and successive-halving rungs included — and that follows
submitit's checkpointing protocol.

- SLURM's warning signal before the time limit, or a preemption (USR2, sent by submitit's ``--signal``): submitit calls
  ``checkpoint``, which has the runner stop after its current batch (the run is left ``interrupted`` at its last
  epoch's checkpoint) and returns this task to be requeued; the requeued task's runner resumes the run.
- ``scancel`` (SIGTERM, SIGKILL after KillWait): the runner stops after its current batch and leaves its run
  ``interrupted``; a kill before that leaves a claim whose process is gone (interrupted on the same host, stale by
  heartbeat elsewhere). Either way the next runner resumes it from its checkpoint.

The runner trains in a thread so that the main thread, where Python runs signal handlers, can wait for it.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..core.runs.options import RunnerOptions

CHECKPOINT_WAIT = 60.0  # seconds checkpoint() waits for the runner to finish its batch and record the interruption


class PilotTask:
    """The callable submitit pickles for every array task (the same one for all: each claims its own runs). Its
    runner's options travel as RunnerOptions' one JSON text, as they do to `--workers` and the TUI's runner."""

    def __init__(self, project: str, options: RunnerOptions | str, submission: str | None = None):
        self.project = str(project)
        self.options = options if isinstance(options, RunnerOptions) else RunnerOptions.from_json(options)
        self.submission = submission
        self._runner: Any = None
        self._thread: threading.Thread | None = None

    def _args(self) -> dict[str, Any]:
        return {"project": self.project, "options": self.options.to_json(), "submission": self.submission}

    def __getstate__(self) -> dict[str, Any]:  # pickled: the arguments only, never a live runner
        return self._args()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)

    def backend(self) -> dict[str, Any]:
        """This task's entry for the claims' ``backend``: the job, its node and its stdout/stderr files."""
        import submitit

        env = submitit.JobEnvironment()
        out: dict[str, Any] = {"kind": "slurm", "job": str(env.job_id), "node": env.hostname}
        try:  # inside the project (runs/.slurm/...): kept relative, so the project can be moved or synced
            out["log"], out["err"] = (_relative(p, Path(self.project)) for p in (env.paths.stdout, env.paths.stderr))
        except Exception:  # noqa: BLE001 - no submitit folder: the job id alone still says where it ran
            pass
        if self.submission:
            out["submission"] = self.submission
        return out

    def __call__(self) -> dict[str, Any]:
        from ..reporting import PlainReporter
        from ..runner import Runner

        runner = Runner(Path(self.project), self.options, reporter=PlainReporter(), backend=self.backend())
        self._runner = runner
        # scancel: SIGTERM (submitit only logs it) -> stop after the current batch, the run left interrupted
        signal.signal(signal.SIGTERM, self._stop)
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                out = runner.run()
                result.update(done=out.done, failed=out.failed, interrupted=out.interrupted, lost=out.lost,
                              stopped=out.stopped)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which raises it
                result["error"] = exc

        self._thread = threading.Thread(target=work, name="unettui-runner", daemon=True)
        self._thread.start()
        while self._thread.is_alive():
            self._thread.join(0.2)  # short waits: signal handlers run in this (the main) thread
        if "error" in result:
            raise result["error"]
        print(f"unettui task: {len(result['done'])} done, {len(result['failed'])} failed, "
              f"{len(result['interrupted'])} interrupted" + (" (stopped by a signal)" if result["stopped"] else ""),
              flush=True)
        return result

    def _stop(self, signum: int, _frame: Any = None) -> None:
        print(f"unettui task: {signal.Signals(signum).name}: stopping after the current batch", file=sys.stderr,
              flush=True)
        if self._runner is not None:
            self._runner.stop_requested = True

    def checkpoint(self, *args: Any, **kwargs: Any):
        """submitit's checkpointing protocol (the warning signal before the time limit, or a preemption): stop the
        runner after its current batch, wait until it has recorded the run as interrupted, then hand back a fresh
        task to requeue; its runner resumes the run from its last epoch's checkpoint."""
        import submitit

        if self._runner is not None:
            self._runner.stop_requested = True
        if self._thread is not None:
            end = time.monotonic() + CHECKPOINT_WAIT
            while self._thread.is_alive() and time.monotonic() < end:
                self._thread.join(0.2)
        print("unettui task: checkpointed (the run resumes when this task is requeued)", file=sys.stderr, flush=True)
        return submitit.helpers.DelayedSubmission(PilotTask(**self._args()))


def _relative(path: Path, project: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(project.resolve()))
    except ValueError:
        return str(path)
