"""pipeline.nf: it parses (reftrace), follows nf-core's habits, and every command line in it names
an existing stage command with existing options, the same options the orchestrator passes.

reftrace needs protobuf >= 5.29, TensorFlow 2.13 (DeepFinder's pin) needs protobuf < 5: the two
cannot share one environment, so reftrace lives in its own folder (``$TEMPLEARN_REFTRACE_LIB``,
default ``<venv>/reftrace-lib``, made with ``pip install --target <venv>/reftrace-lib reftrace``)
and runs in a subprocess.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from stage_cli import flags as _flags, stage_command

ROOT = Path(__file__).resolve().parents[1]
NF_FILES = [ROOT / "pipeline.nf", *sorted((ROOT / "modules" / "local").glob("*.nf"))]
CONFIGS = [ROOT / "nextflow.config", *sorted((ROOT / "conf").glob("*.config"))]

_PARSE = r"""
import json, sys, reftrace
out = {"modules": {}, "configs": {}}
for f in sys.argv[1].split(","):
    m = reftrace.Module.from_file(f)
    if isinstance(m, reftrace.ParseError):
        out["modules"][f] = {"error": m.error}
        continue
    out["modules"][f] = {
        "processes": [{"name": p.name, "labels": [l.value for l in p.labels], "tags": [t.tag for t in p.tags],
                       "containers": len(p.containers)} for p in m.processes],
        "workflows": [w.name for w in m.workflows],
        "includes": [[i.name for i in inc.items] for inc in m.includes],
    }
for f in sys.argv[2].split(","):
    r = reftrace.ConfigFile.from_file(f)
    out["configs"][f] = {"error": str(r.error) if r.error else None,
                         "scopes": [[n.name for n in s.named_scopes] for s in (r.config_file.process_scopes if r.config_file else [])]}
print(json.dumps(out))
"""


def _reftrace_env() -> dict | None:
    """An environment where ``import reftrace`` works, or None."""
    candidates = [os.environ.get("TEMPLEARN_REFTRACE_LIB"), str(Path(sys.prefix) / "reftrace-lib"), None]
    for lib in candidates:
        env = dict(os.environ)
        if lib is not None:
            if not Path(lib).is_dir():
                continue
            env["PYTHONPATH"] = lib + os.pathsep + env.get("PYTHONPATH", "")
        if subprocess.run([sys.executable, "-c", "import reftrace"], env=env, capture_output=True).returncode == 0:
            return env
    return None


@pytest.fixture(scope="module")
def parsed() -> dict:
    env = _reftrace_env()
    if env is None:
        pytest.skip("reftrace not importable: pip install --target <venv>/reftrace-lib reftrace")
    proc = subprocess.run([sys.executable, "-c", _PARSE, ",".join(map(str, NF_FILES)), ",".join(map(str, CONFIGS))],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_pipeline_and_modules_parse(parsed):
    for f, m in parsed["modules"].items():
        assert "error" not in m, f"{f}: {m.get('error')}"
    for f, c in parsed["configs"].items():
        assert c["error"] is None, f"{f}: {c['error']}"


def test_one_process_per_stage_step_with_nf_core_habits(parsed):
    main = parsed["modules"][str(ROOT / "pipeline.nf")]
    included = {name for inc in main["includes"] for name in inc}
    processes = {}
    for f, m in parsed["modules"].items():
        for p in m["processes"]:
            processes[p["name"]] = (f, p)
    assert set(processes) == {"GRID", "NMA", "TETRIS", "SIMULATE", "RECONSTRUCT", "TARGETS", "TRAIN", "FINETUNE", "PICK",
                              "MATCH", "EVALUATE"}
    assert included == set(processes), "pipeline.nf includes every module"
    labels = {"process_single", "process_low", "process_medium", "process_high", "process_gpu"}
    base = (ROOT / "conf" / "base.config").read_text()
    for name, (f, p) in processes.items():
        assert p["labels"] and set(p["labels"]) <= labels, name
        assert p["tags"], f"{name} has a tag"
        assert p["containers"] == 1, f"{name} names its stage image"
        text = Path(f).read_text()
        assert "stub:" in text and "versions.yml" in text and "task.ext.args" in text, name
    for label in labels:
        assert f"withLabel: {label}" in base
    scopes = {p for c in parsed["configs"].values() for s in c["scopes"] for n in s for p in n.split("|")}
    assert set(processes) <= scopes, "conf/modules.config sets ext.args for every process"
    nfc = (ROOT / "nextflow.config").read_text()
    for profile in ("standard", "docker", "singularity", "slurm", "test"):
        assert re.search(rf"^\s*{profile}\s*\{{", nfc, re.M), profile


# --- every command line names an existing stage command and existing options ------------------

def _script_block(text: str) -> str:
    start = text.index("script:")
    end = text.index("stub:") if "stub:" in text else len(text)
    return text[start:end]


def _ext_args(process: str) -> str:
    text = (ROOT / "conf" / "modules.config").read_text()
    m = re.search(rf"withName: '(?:[A-Z_]+\|)*{process}(?:\|[A-Z_]+)*' \{{(.*?)\n    \}}", text, re.S)
    return m.group(1) if m else ""


def nf_commands() -> dict[str, tuple[str, str, set[str]]]:
    """process -> (console script, subcommand, options used in its script block and ext.args)."""
    out = {}
    for f in NF_FILES[1:]:
        text = f.read_text()
        name = re.search(r"^process (\w+)", text, re.M).group(1)
        script = _script_block(text)
        cmds = re.findall(r"(templearn-[a-z-]+) ([a-z-]+)", script)
        assert len(cmds) == 1, f"{f.name}: one stage command per process, found {cmds}"
        opts = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", script + _ext_args(name)))
        out[name] = (cmds[0][0], cmds[0][1], opts)
    return out


@pytest.mark.parametrize("process", sorted(nf_commands()))
def test_nf_command_lines_exist(process):
    script, sub, opts = nf_commands()[process]
    flags = _flags(stage_command(script, sub))
    unknown = sorted(o for o in opts if o not in flags)
    assert not unknown, f"{process}: {script} {sub} has no option(s) {unknown}"


def test_orchestrator_and_pipeline_pass_the_same_options():
    """The orchestrator's step for each process uses no option the Nextflow process lacks."""
    from templearn.orchestrator.config import load_config
    from templearn.orchestrator.graph import build

    steps = build(load_config(ROOT / "examples" / "quickstart.yaml"))
    kind_to_process = {"grid": "GRID", "nma": "NMA", "tetris": "TETRIS", "simulate": "SIMULATE",
                       "reconstruct": "RECONSTRUCT", "targets": "TARGETS", "train": "TRAIN", "finetune": "FINETUNE", "pick": "PICK",
                       "match": "MATCH", "evaluate": "EVALUATE"}
    nf = nf_commands()
    for s in steps:
        script, sub, opts = nf[kind_to_process[s.kind]]
        assert (s.argv[0], s.argv[1]) == (script, sub)
        used = {a for a in s.argv if a.startswith("--")}
        assert used <= opts, f"{s.id}: options {sorted(used - opts)} missing from the Nextflow process"


@pytest.mark.parametrize("example", ["quickstart", "ribosome", "nucleosome"])
def test_orchestrator_command_lines_parse(example):
    """Every orchestrator command line parses with the stage's own Typer app (options, arity, types)."""
    from templearn.orchestrator.config import load_config
    from templearn.orchestrator.graph import build

    seen = set()
    for s in build(load_config(ROOT / "examples" / f"{example}.yaml")):
        key = (s.kind, len(s.argv))
        if key in seen:
            continue
        seen.add(key)
        cmd = stage_command(s.argv[0], s.argv[1])
        try:
            cmd.make_context(s.argv[1], list(s.argv[2:]), resilient_parsing=False)
        except Exception as exc:   # a usage error (typer >= 0.29 vendors click: no click import)
            if not hasattr(exc, "format_message"):
                raise
            pytest.fail(f"{s.id}: {' '.join(s.argv)}: {exc.format_message()}")


def test_nextflow_schema_names_every_param_and_is_current():
    """nextflow_schema.json (Seqera Platform's launch form) is generated from the run config's
    dataclasses and nextflow.config; every params key has an entry and nothing else does."""
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "nextflow_schema.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    schema = json.loads((ROOT / "nextflow_schema.json").read_text())
    names = {k for d in schema["$defs"].values() for k in d["properties"]}
    text = (ROOT / "nextflow.config").read_text()
    block = text[text.index("params {"): text.index("\n}\n", text.index("params {"))]
    params = set(re.findall(r"^\s{4}(\w+)\s*=", block, re.M))
    assert names == params, (sorted(names - params), sorted(params - names))
