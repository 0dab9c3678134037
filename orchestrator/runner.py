"""Run the stage graph on one machine: subprocesses, a run folder, a step ledger, resume.

A run folder records everything::

    config.yaml           the config as given          plan.json   every step's command line
    ledger.json           per step: the key it ran with (sha256 of its command line and of its
                          input files), its output hashes, time, exit code
    logs/<step>.log       the command line, then the step's stdout and stderr
    <step folders>        what each stage wrote, with its provenance.json
    report.md, report.html

Resume: a step whose key (command line + input sha256) matches the ledger and whose outputs are
still there unchanged is skipped. Changing one parameter changes that step's command line, so
it reruns; its new outputs change the input hashes of the steps downstream, which rerun too.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from templearn.provenance import sha256 as file_sha256
from templearn.atomic import write_json, write_text
from templearn.config import to_dict
from templearn.errors import TemplearnError

from . import graph
from .config import RunConfig, load_config

LEDGER = "ledger.json"


@dataclass
class Event:
    """What the runner reports to its caller (the CLI prints it); the library itself prints nothing."""

    kind: str                 # "plan", "skip", "start", "done", "fail"
    step: graph.Step | None
    index: int = 0
    total: int = 0
    reason: str = ""
    seconds: float = 0.0


@dataclass
class RunResult:
    run_dir: Path
    ran: list[str]
    skipped: list[str]
    report: Path | None


class Ledger:
    """``ledger.json``: what every step last ran with. Also caches file hashes by (size, mtime)."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / LEDGER
        self.run_dir = run_dir
        self.lock = threading.Lock()
        doc = {}
        if self.path.is_file():
            try:
                doc = json.loads(self.path.read_text())
            except json.JSONDecodeError:
                raise TemplearnError("corrupt step ledger; delete it to rerun every step", self.path) from None
        self.steps: dict = doc.get("steps", {})
        self.hashes: dict = doc.get("hashes", {})

    def sha256(self, rel: str) -> str | None:
        p = self._abs(rel)
        try:
            st = p.stat()
        except FileNotFoundError:
            return None
        stamp = f"{st.st_size}:{st.st_mtime_ns}"
        with self.lock:
            hit = self.hashes.get(str(p))
        if hit and hit[0] == stamp:
            return hit[1]
        digest = file_sha256(p)
        with self.lock:
            self.hashes[str(p)] = [stamp, digest]
        return digest

    def _abs(self, rel: str) -> Path:
        p = Path(rel)
        return p if p.is_absolute() else self.run_dir / p

    def key(self, step: graph.Step) -> str:
        doc = {"argv": step.argv, "inputs": {i: self.sha256(i) for i in step.inputs}}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    def why_stale(self, step: graph.Step) -> str | None:
        """None when the step is up to date, else why it must run."""
        rec = self.steps.get(step.id)
        if rec is None:
            return "never ran"
        if rec.get("key") != self.key(step):
            old = rec.get("argv")
            return "parameters changed" if old != step.argv else "inputs changed"
        for out, digest in rec.get("outputs", {}).items():
            if self.sha256(out) != digest:
                return f"output {out} missing or changed"
        return None

    def record(self, step: graph.Step, seconds: float) -> None:
        outs = {o: self.sha256(o) for o in step.outputs}
        key = self.key(step)
        with self.lock:
            self.steps[step.id] = {"key": key, "argv": step.argv, "outputs": outs,
                                   "seconds": round(seconds, 2), "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
            self.save()

    def save(self) -> None:
        write_json(self.path, {"format": "templearn.ledger", "version": 1, "steps": self.steps, "hashes": self.hashes})


def stage_command(name: str) -> str:
    """The stage's console script: beside this Python first (the same environment), else on PATH."""
    here = Path(sys.executable).parent / name
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    found = shutil.which(name)
    if not found:
        extra = name.removeprefix("templearn-")
        raise TemplearnError(f"stage command {name} not found; install it with: pip install 'templearn[{extra}]'")
    return found


def plan(config_path: str | os.PathLike) -> tuple[RunConfig, list[graph.Step]]:
    cfg = load_config(config_path)
    return cfg, graph.build(cfg)


def run(
    config_path: str | os.PathLike,
    run_dir: str | os.PathLike,
    *,
    only: str | None = None,
    until: str | None = None,
    force: bool = False,
    dry_run: bool = False,
    jobs: int = 1,
    on_event: Callable[[Event], None] | None = None,
) -> RunResult:
    """Run (or resume) the whole graph, or with ``only`` one stage and what it needs.

    ``force`` reruns every selected step; ``only`` always reruns the steps of that stage;
    ``until`` runs the graph up to a stage (what is out of date, nothing forced).
    Raises :class:`TemplearnError` naming the failed step and its log.
    """
    config_path = Path(config_path)
    cfg, steps = plan(config_path)
    try:
        if only is not None and until is not None:
            raise ValueError("give --only or --until, not both")
        selected, forced = graph.select(steps, only, until)
    except ValueError as exc:
        raise TemplearnError(str(exc), config_path) from None
    run_dir = Path(run_dir)
    emit = on_event or (lambda e: None)
    ledger = Ledger(run_dir) if run_dir.is_dir() else None

    # The plan, as far as it can be known before running: stale steps, forced ones, and those
    # downstream of a step that runs (whose inputs may change; judged again when they are ready).
    will_run: dict[str, str] = {}
    for s in selected:
        if force or s.id in forced:
            will_run[s.id] = "forced" if force else f"--only {only}"
            continue
        upstream = [d for d in s.deps if d in will_run]
        if upstream:
            will_run[s.id] = f"if {upstream[0]} changes"
            continue
        why = "never ran" if ledger is None else ledger.why_stale(s)
        if why:
            will_run[s.id] = why
    total = len(selected)
    for i, s in enumerate(selected, 1):
        emit(Event("plan", s, i, total, will_run.get(s.id, "up to date")))
    if dry_run:
        return RunResult(run_dir, list(will_run), [s.id for s in selected if s.id not in will_run], None)

    run_dir.mkdir(parents=True, exist_ok=True)
    if config_path.resolve() != (run_dir / "config.yaml").resolve():
        write_text(run_dir / "config.yaml", config_path.read_text())
    write_json(run_dir / "config.resolved.json", to_dict(cfg))
    write_json(run_dir / "plan.json", {"steps": [
        {"id": s.id, "stage": s.stage, "kind": s.kind, "argv": s.argv, "deps": s.deps, "outputs": s.outputs}
        for s in steps]})
    write_commands(run_dir, steps)
    ran, skipped, ledger = execute(selected, run_dir, forced=forced, force=force, jobs=jobs, emit=emit,
                                   reason=f"--only {only}", ledger=ledger)

    from .report import write_report

    report = write_report(run_dir, cfg, steps, ledger)
    return RunResult(run_dir, ran, skipped, report)


def execute(
    selected: list[graph.Step],
    run_dir: Path,
    *,
    forced: set[str] = frozenset(),
    force: bool = False,
    jobs: int = 1,
    emit: Callable[[Event], None] = lambda e: None,
    reason: str = "forced",
    ledger: Ledger | None = None,
) -> tuple[list[str], list[str], Ledger]:
    """Run ``selected`` steps (in dependency order) in ``run_dir``, skipping those up to date in
    its ledger; returns (ran, skipped, ledger). Raises :class:`TemplearnError` on a failed step."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "logs").mkdir(exist_ok=True)
    ledger = ledger or Ledger(run_dir)
    total = len(selected)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("MPLBACKEND", "Agg")

    order = {s.id: n for n, s in enumerate(selected, 1)}
    done: set[str] = set()
    pending = list(selected)
    ran: list[str] = []
    skipped: list[str] = []
    failure: list[tuple[graph.Step, str]] = []

    def launch(step: graph.Step, why: str) -> None:
        emit(Event("start", step, order[step.id], total, why))
        t0 = time.monotonic()
        msg = _execute(step, run_dir, env)
        dt = time.monotonic() - t0
        if msg:
            failure.append((step, msg))
            emit(Event("fail", step, order[step.id], total, msg, dt))
        else:
            ledger.record(step, dt)
            emit(Event("done", step, order[step.id], total, "", dt))

    # A step is judged when its dependencies are done, so a rerun upstream step that made the
    # same outputs again (same seed, same inputs) does not make the steps after it rerun.
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        running: dict = {}
        while (pending or running) and not failure:
            for s in [s for s in pending if all(d in done for d in s.deps if d in order)]:
                why = ("forced" if force else reason) if (force or s.id in forced) else ledger.why_stale(s)
                if why is None:
                    pending.remove(s)
                    done.add(s.id)
                    skipped.append(s.id)
                    emit(Event("skip", s, order[s.id], total, "up to date"))
                    continue
                if len(running) >= max(1, jobs):
                    break
                pending.remove(s)
                running[pool.submit(launch, s, why)] = s
            if not running:
                if pending and not failure and any(all(d in done for d in s.deps if d in order) for s in pending):
                    continue  # skips made more steps ready
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in finished:
                step = running.pop(f)
                f.result()
                if not any(step is fs for fs, _ in failure):
                    done.add(step.id)
                    ran.append(step.id)
        for f in list(running):  # let steps already started finish (their outputs are atomic anyway)
            f.result()
    ledger.save()
    if failure:
        step, msg = failure[0]
        raise TemplearnError(f"step {step.id} failed: {msg}", run_dir / "logs" / f"{_log_name(step)}.log")
    return ran, skipped, ledger


def report_only(config_path: str | os.PathLike, run_dir: str | os.PathLike) -> Path:
    """Write report.md/.html from an existing run folder (also a Nextflow --outdir: same layout)."""
    from .report import write_report

    cfg, steps = plan(config_path)
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TemplearnError("no such run folder", run_dir)
    ledger = Ledger(run_dir) if (run_dir / LEDGER).is_file() else None
    return write_report(run_dir, cfg, steps, ledger)


def _by_id(steps, sid):
    return next(s for s in steps if s.id == sid)


def _log_name(step: graph.Step) -> str:
    return step.id.replace("/", "__")


def _execute(step: graph.Step, run_dir: Path, env: dict) -> str | None:
    """Run one step; returns None on success, else a one-line reason (the log has the rest)."""
    log = run_dir / "logs" / f"{_log_name(step)}.log"
    try:
        argv = [stage_command(step.argv[0]), *step.argv[1:]]
    except TemplearnError as exc:
        return exc.message
    with open(log, "w") as f:
        f.write("$ " + " ".join(_quote(a) for a in step.argv) + "\n")
        f.flush()
        proc = subprocess.run(argv, cwd=run_dir, env=env, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = _last_line(log)
        return f"exit code {proc.returncode}" + (f": {tail}" if tail else "")
    missing = [o for o in step.outputs if not (run_dir / o).is_file()]
    if missing:
        return f"finished but did not write {missing[0]}"
    return None


def _last_line(path: Path) -> str:
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    return (errors or lines or [""])[-1][:300]


def _quote(a: str) -> str:
    import shlex

    return shlex.quote(a)


def command_lines(steps: list[graph.Step]) -> str:
    """The plan as a shell script (what a user could run by hand, in the run folder)."""
    return "".join(" ".join(_quote(a) for a in s.argv) + "\n" for s in steps)


def write_commands(run_dir: Path, steps: list[graph.Step]) -> Path:
    return write_text(run_dir / "commands.sh", "#!/usr/bin/env bash\nset -euo pipefail\n" + command_lines(steps))
