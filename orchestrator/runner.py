"""Run the stage graph on one machine: subprocesses, a run folder, a step ledger, resume.

A run folder records everything::

    config.yaml           the config as given          plan.json   every step's command line
    ledger.json           per step: the key it ran with (sha256 of its command line and of its
                          input files), its output hashes, time, exit code
    logs/<step>.log       the command line, then the step's stdout and stderr
    <step folders>        what each stage wrote, with its provenance.json
    report.md, report.html

Resume: a step whose key (command line + input sha256) matches the ledger, whose outputs are
still there unchanged, and whose stage code is the one that made them (templearn's version and a
hash of the stage's source, see :func:`stage_version`) is skipped. Changing one parameter changes
that step's command line, so it reruns; its new outputs change the input hashes of the steps
downstream, which rerun too. Upgraded code reruns the steps of the stages it changed, and then
those downstream whose inputs came out different; ``resume_any`` keeps outputs of older code.

Crash safety: outputs are written atomically (:mod:`templearn.atomic`), a step's ledger record is
dropped when it starts and written only once all its outputs are there, so a step killed half-way
(``kill -9``, a power cut, a full disk) is never taken as done; the temporary files it left are
deleted before it runs again. One writer per run folder: ``.templearn-run.lock`` holds the pid and
host of the run that has it (an ``flock``, so a killed holder releases it); a second run on the
folder is refused, and a stale lock left by a dead run is taken over with a warning.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from templearn.provenance import sha256 as file_sha256
from templearn.atomic import remove_leftovers, write_json, write_text
from templearn.config import to_dict
from templearn.errors import TemplearnError

from . import graph
from .config import RunConfig, load_config

LEDGER = "ledger.json"
LOCK = ".templearn-run.lock"


@dataclass
class Event:
    """What the runner reports to its caller (the CLI prints it); the library itself prints nothing."""

    kind: str                 # "plan", "skip", "start", "done", "fail", "warn" (step None)
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

    def why_stale(self, step: graph.Step, resume_any: bool = False) -> str | None:
        """None when the step is up to date, else why it must run. ``resume_any``: outputs made by
        another version of the stage's code count as up to date."""
        rec = self.steps.get(step.id)
        if rec is None:
            return "never ran"
        if rec.get("key") != self.key(step):
            old = rec.get("argv")
            return "parameters changed" if old != step.argv else "inputs changed"
        code = stage_version(step.stage)
        if not resume_any and rec.get("code") != code:
            return f"templearn-{step.stage} code changed ({rec.get('code') or 'unrecorded'} -> {code})"
        for out, digest in rec.get("outputs", {}).items():
            if self.sha256(out) != digest:
                return f"output {out} missing or changed"
        return None

    def started(self, step: graph.Step) -> None:
        """Forget a step's record before it runs: if it is killed half-way, it never ran."""
        with self.lock:
            if self.steps.pop(step.id, None) is not None:
                self.save()

    def record(self, step: graph.Step, seconds: float) -> None:
        outs = {o: self.sha256(o) for o in step.outputs}
        key = self.key(step)
        with self.lock:
            self.steps[step.id] = {"key": key, "argv": step.argv, "code": stage_version(step.stage),
                                   "outputs": outs, "seconds": round(seconds, 2),
                                   "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
            self.save()

    def save(self) -> None:
        write_json(self.path, {"format": "templearn.ledger", "version": 1, "steps": self.steps, "hashes": self.hashes})


@functools.lru_cache(maxsize=None)
def stage_version(stage: str) -> str:
    """The version of the code a stage runs: templearn's version and a hash of the stage's package
    and of the core modules it is built on (``templearn/*.py``), e.g. ``0.1.0+3f2a9c1d0b4e``."""
    import importlib.util

    import templearn

    core = Path(templearn.__file__).parent
    files = sorted(core.glob("*.py"))
    spec = importlib.util.find_spec(f"templearn.stages.{stage.replace('-', '_')}")
    if spec is not None and spec.submodule_search_locations:
        pkg = Path(next(iter(spec.submodule_search_locations)))
        files += sorted(pkg.rglob("*.py"))
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.parent.name}/{f.name}\0".encode())
        h.update(f.read_bytes())
        h.update(b"\0")
    return f"{templearn.__version__}+{h.hexdigest()[:12]}"


# --- one writer per run folder -----------------------------------------------------------------

_held: dict[str, list] = {}   # resolved run folder -> [lock fd, depth]: re-entrant within a process
_held_guard = threading.Lock()


def _holder(text: str) -> dict:
    try:
        doc = json.loads(text)
        return doc if isinstance(doc, dict) and "pid" in doc else {}
    except json.JSONDecodeError:
        return {}


def _describe(h: dict) -> str:
    return f"pid {h.get('pid')} on host {h.get('host')}, started {h.get('started', '?')}"


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError, OverflowError):
        return True
    return True


def _acquire(run_dir: Path, emit: Callable[[Event], None]) -> int:
    path = run_dir / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise TemplearnError(f"cannot open the run lock {LOCK} ({exc.strerror}): is the run folder yours?", run_dir) from None
    try:
        old = _holder(os.pread(fd, 4096, 0).decode(errors="replace"))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = False
            old = _holder(os.pread(fd, 4096, 0).decode(errors="replace"))   # as left by the last holder
        except BlockingIOError:
            held = True
        except OSError:   # no flock on this filesystem: trust the pid when it is on this host
            held = bool(old) and (old.get("host") != socket.gethostname() or _pid_alive(old.get("pid")))
        if held:
            holder = _holder(os.pread(fd, 4096, 0).decode(errors="replace")) or old
            raise TemplearnError(
                f"run folder in use by another templearn-run ({_describe(holder) if holder else 'holder unknown'}); "
                f"wait for it or stop it (its lock: {LOCK})", run_dir)
        if old:
            emit(Event("warn", None, reason=f"took over the stale lock of {run_dir} left by a run that "
                                            f"is gone ({_describe(old)})"))
        me = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                         "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "argv": sys.argv[:8]})
        os.ftruncate(fd, 0)
        os.pwrite(fd, me.encode(), 0)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike, emit: Callable[[Event], None] = lambda e: None):
    """Hold the run folder's lock for the block (re-entrant: threads of one process share it)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    key = str(run_dir.resolve())
    with _held_guard:
        if key in _held:
            _held[key][1] += 1
        else:
            _held[key] = [_acquire(run_dir, emit), 1]
    try:
        yield
    finally:
        with _held_guard:
            entry = _held[key]
            entry[1] -= 1
            if entry[1] == 0:
                del _held[key]
                # Emptied, not deleted: deleting would let a waiting opener lock an orphaned inode.
                os.ftruncate(entry[0], 0)
                os.close(entry[0])   # releases the flock


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
    resume_any: bool = False,
    on_event: Callable[[Event], None] | None = None,
) -> RunResult:
    """Run (or resume) the whole graph, or with ``only`` one stage and what it needs.

    ``force`` reruns every selected step; ``only`` always reruns the steps of that stage;
    ``until`` runs the graph up to a stage (what is out of date, nothing forced); ``resume_any``
    keeps outputs that other versions of the stages' code made.
    Raises :class:`TemplearnError` naming the failed step and its log, or when another run holds
    the run folder.
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
        why = "never ran" if ledger is None else ledger.why_stale(s, resume_any)
        if why:
            will_run[s.id] = why
    total = len(selected)
    for i, s in enumerate(selected, 1):
        emit(Event("plan", s, i, total, will_run.get(s.id, "up to date")))
    if dry_run:
        return RunResult(run_dir, list(will_run), [s.id for s in selected if s.id not in will_run], None)

    with run_lock(run_dir, emit):
        ledger = Ledger(run_dir)   # again: the ledger read above may predate a run that just ended
        if config_path.resolve() != (run_dir / "config.yaml").resolve():
            write_text(run_dir / "config.yaml", config_path.read_text())
        write_json(run_dir / "config.resolved.json", to_dict(cfg))
        write_json(run_dir / "plan.json", {"steps": [
            {"id": s.id, "stage": s.stage, "kind": s.kind, "argv": s.argv, "deps": s.deps, "outputs": s.outputs}
            for s in steps]})
        write_commands(run_dir, steps)
        ran, skipped, ledger = execute(selected, run_dir, forced=forced, force=force, jobs=jobs, emit=emit,
                                       reason=f"--only {only}", ledger=ledger, resume_any=resume_any)

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
    resume_any: bool = False,
) -> tuple[list[str], list[str], Ledger]:
    """Run ``selected`` steps (in dependency order) in ``run_dir``, skipping those up to date in
    its ledger; returns (ran, skipped, ledger). Holds the run folder's lock meanwhile. Raises
    :class:`TemplearnError` on a failed step."""
    with run_lock(run_dir, emit):
        return _execute_locked(selected, run_dir, forced, force, jobs, emit, reason,
                               ledger or Ledger(run_dir), resume_any)


def _execute_locked(selected, run_dir, forced, force, jobs, emit, reason, ledger, resume_any):
    (run_dir / "logs").mkdir(exist_ok=True)
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
        ledger.started(step)
        _remove_leftovers(step, run_dir)
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
                why = ("forced" if force else reason) if (force or s.id in forced) else ledger.why_stale(s, resume_any)
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


def _remove_leftovers(step: graph.Step, run_dir: Path) -> None:
    """Delete what an earlier, killed attempt of this step left half-written: temporary files in
    its own folder and beside each of its outputs (only those named after that output)."""
    remove_leftovers(run_dir / step.out_dir)
    for out in step.outputs:
        p = Path(out) if Path(out).is_absolute() else run_dir / out
        remove_leftovers(p.parent, stem=p.stem, recursive=False)


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
        # The stage inherits the run lock: if this runner dies, the folder stays locked until the
        # orphaned stage has finished writing too.
        held = _held.get(str(run_dir.resolve()))
        proc = subprocess.run(argv, cwd=run_dir, env=env, stdout=f, stderr=subprocess.STDOUT,
                              pass_fds=(held[0],) if held else ())
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
