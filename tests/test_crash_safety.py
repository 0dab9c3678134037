"""Crash safety: atomic writes (mode, sync, full disk), one writer per run folder, resume keys that
know the stage code, and runs killed with SIGKILL then resumed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from templearn import atomic
from templearn.atomic import atomic_path, remove_leftovers, save_figure, write_json, write_text
from templearn.errors import TemplearnError
from templearn.mrc import read_mrc, write_mrc
from templearn.picks import Picks, read_picks, write_picks


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _picks() -> Picks:
    return Picks(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), 10.0, "t", 1, [0.5, 0.7])


def _writers(tmp_path: Path):
    """One output of every kind the stages write, each through templearn.atomic."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from templearn.stages.parakeet_sim.stack_writer import stack_writer

    def figure(p):
        fig, ax = plt.subplots()
        ax.plot([0, 1])
        save_figure(fig, p)

    def stack(p):
        with stack_writer(p, 2, 4, 4, 5.0) as data:
            data[:] = 1.0

    return {
        "out.txt": lambda p: write_text(p, "hello\n"),
        "out.json": lambda p: write_json(p, {"a": 1}),
        "vol.mrc": lambda p: write_mrc(p, np.ones((2, 3, 4), np.float32), 5.0),
        "stack.mrc": stack,
        "fig.png": figure,
        "picks.star": lambda p: write_picks(p, _picks()),
        "picks.csv": lambda p: write_picks(p, _picks()),
        "picks.xml": lambda p: write_picks(p, _picks()),
        "picks.json": lambda p: write_picks(p, _picks()),
    }


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_outputs_keep_the_umask_mode(tmp_path, mask, mode):
    with umask(mask):
        for name, write in _writers(tmp_path).items():
            write(tmp_path / name)
            assert _mode(tmp_path / name) == mode, name
            write(tmp_path / name)   # and again over an existing file
            assert _mode(tmp_path / name) == mode, name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(_writers(tmp_path))


def test_file_is_synced_before_the_rename(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))),
                                                         real_fsync(fd))[1])
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (calls.append(("replace", str(a))), real_replace(a, b))[1])
    write_text(tmp_path / "a.txt", "x")
    (kind0, tmp0), (kind1, tmp1) = calls[:2]
    assert kind0 == "fsync" and kind1 == "replace" and tmp0 == tmp1 and Path(tmp0).name.startswith(".a.")
    assert (tmp_path / "a.txt").read_text() == "x"


class _DiskFull:
    """A file that takes ``room`` bytes, then fails every write with ENOSPC (as a full disk does)."""

    def __init__(self, real, room: int):
        self.real, self.room = real, room

    def write(self, b):
        b = memoryview(b).cast("B")
        if len(b) > self.room:
            self.real.write(b[: self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(b)
        return self.real.write(b)

    def __getattr__(self, name):
        return getattr(self.real, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.real.close()

    def close(self):
        self.real.close()


def _full_disk_open(real_open, room=100):
    def fake(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        return _DiskFull(f, room) if ("w" in mode or "+" in mode) and ".tmp" in str(file) else f
    return fake


def test_disk_full_keeps_the_earlier_output_and_says_so(tmp_path, monkeypatch):
    import builtins

    import mrcfile.mrcfile

    old = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    write_mrc(tmp_path / "vol.mrc", old, 5.0)
    write_text(tmp_path / "out.txt", "old\n")
    monkeypatch.setattr(mrcfile.mrcfile, "open", _full_disk_open(builtins.open), raising=False)
    with pytest.raises(TemplearnError) as err:
        write_mrc(tmp_path / "vol.mrc", np.zeros((20, 30, 40), np.float32), 5.0)
    assert str(err.value).startswith(f"{tmp_path / 'vol.mrc'}: no space left on device")
    assert len(str(err.value).splitlines()) == 1
    data, voxel = read_mrc(tmp_path / "vol.mrc")
    assert np.array_equal(data, old) and voxel == 5.0

    real_write_text = Path.write_text

    def half_written(self, data, *args, **kwargs):
        real_write_text(self, data[:3], *args, **kwargs)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_text", half_written)
    with pytest.raises(TemplearnError, match="no space left on device"):
        write_text(tmp_path / "out.txt", "new and longer\n")
    monkeypatch.undo()
    assert (tmp_path / "out.txt").read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt", "vol.mrc"]   # no temp file left


def test_other_write_errors_are_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(TemplearnError, match="could not write it") as err:
        write_text(tmp_path / "file" / "below.txt", "x")   # a file where a folder should be
    assert "below.txt" in str(err.value) and len(str(err.value).splitlines()) == 1


def test_leftovers_of_a_killed_writer_are_found_and_only_they(tmp_path):
    keep = [tmp_path / "a.mrc", tmp_path / ".hidden", tmp_path / "sub" / "x.tmp"]
    for p in keep:
        p.parent.mkdir(exist_ok=True)
        p.write_text("")
    cm = atomic_path(tmp_path / "sub" / "tomogram.mrc")
    left = cm.__enter__()          # a writer that never finishes (its process was killed)
    left.write_text("half")
    assert remove_leftovers(tmp_path) == [left]
    assert not left.exists() and all(p.exists() for p in keep)


# --- one writer per run folder ------------------------------------------------------------------

import json
import re
import signal
import socket
import subprocess
import sys
import time

from test_orchestrator import RUN, TINY, _deep, write_config

from templearn.orchestrator import runner
from templearn.orchestrator.runner import LOCK, run, run_lock

HOLD = "import sys, time\nfrom templearn.orchestrator.runner import run_lock\n" \
       "with run_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)\n"


def _hold(run_dir: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_run_is_refused_naming_the_holder_and_a_dead_ones_lock_is_taken_over(tmp_path):
    cfg = write_config(tmp_path / "run.yaml", TINY)
    rd = tmp_path / "run"
    holder = _hold(rd)
    try:
        proc = subprocess.run(RUN + [str(cfg), "--run-dir", str(rd), "--until", "grid"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "run folder in use by another templearn-run" in lines[0]
        assert f"pid {holder.pid} on host {socket.gethostname()}" in lines[0]
        assert not (rd / "ledger.json").exists() and not (rd / "grid").exists()
    finally:
        holder.send_signal(signal.SIGKILL)   # killed holding the lock: its lock file stays behind
        holder.wait()
    assert json.loads((rd / LOCK).read_text())["pid"] == holder.pid
    events = []
    result = run(cfg, rd, until="grid", on_event=events.append)
    assert result.ran == ["grid"]
    warns = [e.reason for e in events if e.kind == "warn"]
    assert len(warns) == 1 and "stale lock" in warns[0] and f"pid {holder.pid}" in warns[0]
    assert (rd / LOCK).read_text() == ""   # released: the next run takes it without a warning
    events.clear()
    run(cfg, rd, until="grid", on_event=events.append)
    assert not [e for e in events if e.kind == "warn"]


def test_lock_is_shared_by_the_threads_of_one_run_and_released(tmp_path):
    with run_lock(tmp_path):
        with run_lock(tmp_path):   # re-entrant: ablation runs two steps' threads on one folder
            holder = json.loads((tmp_path / LOCK).read_text())
            assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        assert (tmp_path / LOCK).read_text() != ""
    assert (tmp_path / LOCK).read_text() == ""
    out = subprocess.run([sys.executable, "-c", HOLD.replace("time.sleep(120)", "pass"), str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "held"


# --- the stage code is part of the resume key ----------------------------------------------------

def test_stage_version_names_templearn_and_differs_by_stage():
    import templearn

    v = {s: runner.stage_version(s) for s in ("tetris", "parakeet-sim", "imod-recon")}
    assert all(x.startswith(templearn.__version__ + "+") for x in v.values())
    assert len(set(v.values())) == 3


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("code")
    cfg = write_config(d / "run.yaml", TINY)
    first = run(cfg, d / "run", until="reconstruct")
    assert len(first.ran) == 7
    return cfg, d / "run"


def _upgrade(monkeypatch, *stages: str):
    real = runner.stage_version
    monkeypatch.setattr(runner, "stage_version", lambda s: real(s) + ("-new" if s in stages else ""))


def test_a_step_killed_after_some_outputs_is_not_taken_as_done(small_run):
    """simulate writes three outputs; with one replaced and the ledger record dropped at the
    start (as a kill between two renames leaves it), the resume reruns the step."""
    cfg, rd = small_run
    ledger = runner.Ledger(rd)
    step = next(s for s in runner.plan(cfg)[1] if s.id == "simulate/sample_000_c00")
    ledger.started(step)
    assert step.id not in json.loads((rd / "ledger.json").read_text())["steps"]
    (rd / step.id / ".tilt_series.abcd1234.tmp.mrc").write_bytes(b"half")
    r = run(cfg, rd, until="reconstruct")
    assert r.ran == [step.id]   # same bytes again: reconstruct stays up to date
    assert not (rd / step.id / ".tilt_series.abcd1234.tmp.mrc").exists()


def test_upgraded_stage_code_reruns_its_steps_and_only_those(small_run, monkeypatch):
    cfg, rd = small_run
    ledger = json.loads((rd / "ledger.json").read_text())["steps"]
    assert ledger["tetris/sample_000"]["code"] == runner.stage_version("tetris")
    _upgrade(monkeypatch, "tetris")
    events = []
    plan = run(cfg, rd, until="reconstruct", dry_run=True, on_event=events.append)
    reasons = {e.step.id: e.reason for e in events if e.kind == "plan"}
    assert reasons["tetris/sample_000"].startswith("templearn-tetris code changed")
    assert reasons["simulate/sample_000_c00"] == "if tetris/sample_000 changes" and reasons["grid"] == "up to date"
    assert len(plan.ran) == 6
    # --resume-any keeps the outputs of the old code, and the ledger still says which code made them
    kept = run(cfg, rd, until="reconstruct", resume_any=True)
    assert kept.ran == [] and len(kept.skipped) == 7
    r = run(cfg, rd, until="reconstruct")
    # the upgraded tetris made the same samples (same seed): the steps after it are up to date
    assert sorted(r.ran) == ["tetris/sample_000", "tetris/sample_001"]
    monkeypatch.undo()
    _upgrade(monkeypatch, "tetris", "imod-recon")
    r = run(cfg, rd, until="reconstruct")
    assert sorted(r.ran) == ["reconstruct/sample_000_c00", "reconstruct/sample_001_c00"]


# --- a real run killed with SIGKILL in five stages, then resumed -------------------------------

FULL = _deep(TINY, tetris={"n_samples": 3, "box": [16, 32, 32]},
             training={"epochs": 1, "steps": 1, "patch": 16, "batch": 1, "shift": 2},
             split={"val": 1, "test": 1}, picking={"radius": 3.0, "crop": 3, "overlap": 7},
             evaluation={"distance": 120}, template_matching={"enabled": False})
# kind -> seconds after its step starts (its log appears) when the kill comes at the latest; it
# comes earlier if a temporary output shows up first (a kill in the middle of a write).
KILLS = {"tetris": 1.0, "simulate": 0.5, "reconstruct": 0.4, "train": 2.0, "pick": 2.0}


def _digest(path: Path) -> str:
    import hashlib

    data = path.read_bytes()
    if path.suffix == ".star":   # the starfile package stamps the time into a comment line
        data = b"\n".join(ln for ln in data.split(b"\n") if not ln.startswith(b"# Created by the starfile"))
    return hashlib.sha256(data).hexdigest()


def _outputs(rd: Path) -> dict:
    steps = json.loads((rd / "ledger.json").read_text())["steps"]
    return {o: _digest(rd / o) for rec in steps.values() for o in rec["outputs"]}


def _recorded(rd: Path) -> set:
    p = rd / "ledger.json"
    return set(json.loads(p.read_text())["steps"]) if p.is_file() else set()


def _leftovers(rd: Path) -> list:
    return [p for p in rd.rglob(".*") if atomic.is_leftover(p.name)]


def _run_and_kill(cfg: Path, rd: Path, kind: str, log: Path) -> str:
    """Start templearn-run; SIGKILL it (and its stage) while the first unfinished step of ``kind``
    runs. Returns the id of the step killed."""
    before = _recorded(rd)
    t0 = time.time()
    with open(log, "w") as err:
        proc = subprocess.Popen(RUN + [str(cfg), "--run-dir", str(rd)], stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True)
    try:
        started = None
        while started is None:
            assert proc.poll() is None, f"run ended before a {kind} step: {log.read_text()[-2000:]}"
            logs = [p for p in (rd / "logs").glob(f"{kind}*.log") if p.stat().st_mtime >= t0 - 1] \
                if (rd / "logs").is_dir() else []
            if logs:
                started = logs[0].stem.replace("__", "/"), time.monotonic()
            time.sleep(0.005)
        step, t_start = started
        while time.monotonic() - t_start < KILLS[kind] and not _leftovers(rd / step):
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert step not in _recorded(rd), f"{step} finished before the kill"
    # every step that had finished before this run was kept, none run again
    skipped = set(re.findall(r"\] skip (\S+) \(up to date\)", log.read_text()))
    assert before <= skipped, before - skipped
    return step


def _deepfinder() -> bool:
    import importlib.util

    return importlib.util.find_spec("deepfinder") is not None


@pytest.mark.slow
@pytest.mark.deepfinder
@pytest.mark.skipif(not _deepfinder(), reason="needs cryoet-deepfinder (the train and pick stages)")
def test_run_killed_in_every_stage_then_resumed_equals_an_uninterrupted_run(tmp_path):
    cfg = write_config(tmp_path / "run.yaml", FULL)
    ref = run(cfg, tmp_path / "ref")
    assert len(ref.ran) == 15
    rd = tmp_path / "killed"
    killed = [_run_and_kill(cfg, rd, kind, tmp_path / f"{kind}.log") for kind in KILLS]
    assert [k.split("/")[0] for k in killed] == list(KILLS)
    # each run after a kill takes over the dead run's lock with a warning
    for kind in list(KILLS)[1:]:
        assert "warning: took over the stale lock" in (tmp_path / f"{kind}.log").read_text()
    final = subprocess.run(RUN + [str(cfg), "--run-dir", str(rd)], capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-2000:]
    assert not _leftovers(rd)
    assert _recorded(rd) == _recorded(tmp_path / "ref")
    assert _outputs(rd) == _outputs(tmp_path / "ref")


def test_a_stage_left_running_by_a_killed_runner_keeps_the_folder_locked(tmp_path):
    """SIGKILL of templearn-run alone (not its stage): the orphaned stage still holds the lock."""
    cfg = write_config(tmp_path / "run.yaml", TINY)
    rd = tmp_path / "run"
    proc = subprocess.Popen(RUN + [str(cfg), "--run-dir", str(rd), "--until", "tetris"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not list(rd.glob("logs/tetris__*.log")):
            assert proc.poll() is None
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)   # the runner only: its tetris step runs on
        proc.wait()
        with pytest.raises(TemplearnError, match=f"in use by another templearn-run \\(pid {proc.pid} "):
            run(cfg, rd, until="tetris")
    finally:
        if proc.poll() is None:
            proc.kill()
    for _ in range(600):   # once the orphan is done, the lock is free (and stale)
        try:
            result = run(cfg, rd, until="tetris")
            break
        except TemplearnError:
            time.sleep(0.1)
    # the orphan's step was never recorded (its runner died): it runs again, the grid does not
    assert "tetris/sample_000" in result.ran and "grid" not in result.ran
