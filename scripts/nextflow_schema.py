"""Write nextflow_schema.json (the parameters Seqera Platform's launch form and nf-schema's --help
read) from the one definition of the run config, ``orchestrator/config.py``'s dataclasses, plus the
pipeline options of ``nextflow.config``'s ``params`` block.

    python scripts/nextflow_schema.py            # rewrite nextflow_schema.json
    python scripts/nextflow_schema.py --check    # exit 1 when it is out of date
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import sys
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "nextflow_schema.json"


def _comments(cls) -> dict[str, str]:
    """``field: type = default  # comment`` -> {field: comment}, from the class's source."""
    out = {}
    for line in inspect.getsource(cls).splitlines():
        m = re.match(r"\s+(\w+):[^#]*#\s*(.+)$", line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


def _type(tp) -> dict:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        subs = [_type(a) for a in args if a is not type(None)]
        doc = subs[0] if len(subs) == 1 else {"anyOf": subs}
        if type(None) in args:
            doc = {**doc, "type": [*_as_list(doc.get("type")), "null"]} if "type" in doc else {"anyOf": [doc, {"type": "null"}]}
        return doc
    if origin is typing.Literal:
        return {"type": "string", "enum": list(args)}
    if origin in (list, tuple):
        return {"type": "array", "items": _type(args[0])} if args else {"type": "array"}
    if dataclasses.is_dataclass(tp):
        return _object(tp)
    return {"type": {int: "integer", float: "number", str: "string", bool: "boolean"}.get(tp, "string")}


def _as_list(t):
    return t if isinstance(t, list) else [t]


def _default(f):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:   # type: ignore[misc]
        v = f.default_factory()
        return dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v
    return dataclasses.MISSING


def _object(cls) -> dict:
    hints = typing.get_type_hints(cls)
    notes = _comments(cls)
    props = {}
    for f in dataclasses.fields(cls):
        doc = _type(hints[f.name])
        if f.name in notes:
            doc["description"] = notes[f.name]
        d = _default(f)
        if d is not dataclasses.MISSING and doc.get("type") != "object":
            doc["default"] = d
        props[f.name] = doc
    out = {"type": "object", "properties": props}
    if cls.__doc__ and not cls.__doc__.startswith(cls.__name__ + "("):
        out["description"] = " ".join(cls.__doc__.split())
    return out


def pipeline_options() -> dict[str, dict]:
    """The ``params`` of nextflow.config after ``// Pipeline options``, with their comments."""
    text = (ROOT / "nextflow.config").read_text()
    block = text[text.index("// Pipeline options"): text.index("}", text.index("// Pipeline options"))]
    out = {}
    for line in block.splitlines()[1:]:
        m = re.match(r"\s*(\w+)\s*=\s*([^/]+?)\s*(?://\s*(.*))?$", line)
        if not m:
            continue
        name, value, note = m.groups()
        value = value.strip("'\"")
        doc = {"type": "integer", "default": int(value)} if value.isdigit() else \
            {"type": ["string", "null"]} if value == "null" else {"type": "string", "default": value}
        if note:
            doc["description"] = note
        out[name] = doc
    return out


def schema() -> dict:
    sys.path.insert(0, str(ROOT))
    from templearn.orchestrator.config import RunConfig

    run = _object(RunConfig)
    run["title"] = "Run config"
    run["description"] = ("The same YAML as templearn-run (-params-file CONFIG.yaml); see orchestrator/README.md. "
                          "A section left out takes the stages' defaults.")
    run["required"] = ["targets"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/templearn/templearn/nextflow_schema.json",
        "title": "templearn pipeline parameters",
        "description": "Template Learning: particle picking in cryo-ET trained on simulated data",
        "type": "object",
        "$defs": {
            "run_config": run,
            "pipeline_options": {"title": "Pipeline options", "type": "object", "properties": pipeline_options()},
        },
        "allOf": [{"$ref": "#/$defs/run_config"}, {"$ref": "#/$defs/pipeline_options"}],
    }


def main() -> int:
    text = json.dumps(schema(), indent=2, default=str) + "\n"
    if "--check" in sys.argv:
        if not OUT.is_file() or OUT.read_text() != text:
            print(f"{OUT.name} is out of date: run python scripts/nextflow_schema.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
