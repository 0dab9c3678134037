"""What to pack: target templates (and their NMA variants) and distractors, from specs and CSV lists.

- A target SPEC is a path or PDB ID, optionally ``NAME=SPEC`` to put it in target class NAME.
- ``variants.csv`` (the nma stage's output) has columns ``template,variant,file,rmsd``; ``file`` is
  relative to the CSV. A variant joins the target class of its template.
- A distractor list is a CSV with a ``pdb_id`` column (or ``file``/``path``) and optionally
  ``copies_per_round`` (default 1), like the paper's list in ../shared/structures/paper_distractors.csv.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from templearn.errors import TemplearnError
from templearn.structures import is_pdb_id, resolve, structure_id


@dataclass
class Source:
    """One structure to place: its manifest name, file, class, and copies per round."""

    key: str
    path: Path
    cls: str                       # "target" or "distractor"
    target: str | None = None
    template: str | None = None
    variant: int | None = None
    copies: int = 1
    extra: dict = field(default_factory=dict)


def _unique(key: str, taken: set[str]) -> str:
    out, i = key, 2
    while out in taken:
        out, i = f"{key}_{i}", i + 1
    taken.add(out)
    return out


def target_sources(specs, default_name: str, taken: set[str]) -> list[Source]:
    out = []
    for spec in specs:
        spec = str(spec)
        name, _, rest = spec.partition("=")
        if rest and not Path(spec).exists():
            if not name.strip():
                raise TemplearnError("empty target class name before '='", spec)
            cls_name, spec = name.strip(), rest
        else:
            cls_name = default_name
        path = resolve(spec)
        key = _unique(_name(spec, path), taken)
        out.append(Source(key, path, "target", target=cls_name, template=key))
    return out


def variant_sources(csv_paths, templates: list[Source], default_name: str, taken: set[str]) -> list[Source]:
    by_template = {s.key: s for s in templates} | {structure_id(s.path): s for s in templates}
    out = []
    for csv_path in csv_paths:
        csv_path = Path(csv_path)
        rows = _read_csv(csv_path, required=("template", "variant", "file"))
        for n, row in enumerate(rows, 2):
            tmpl = row["template"].strip()
            f = Path(row["file"].strip())
            f = f if f.is_absolute() else csv_path.parent / f
            if not f.is_file():
                raise TemplearnError(f"line {n}: variant file {row['file']!r} not found", csv_path)
            try:
                variant = int(float(row["variant"]))
            except ValueError:
                raise TemplearnError(f"line {n}: variant {row['variant']!r} is not a number", csv_path) from None
            parent = by_template.get(tmpl)
            cls_name = parent.target if parent else default_name
            tmpl = parent.key if parent else tmpl
            key = _unique(structure_id(f), taken)
            extra = {"rmsd": float(row["rmsd"])} if row.get("rmsd") not in (None, "") else {}
            out.append(Source(key, f, "target", target=cls_name, template=tmpl, variant=variant, extra=extra))
    return out


def distractor_sources(specs, list_csv, taken: set[str], *, skip_missing: bool = False) -> tuple[list[Source], list[str]]:
    """Distractors from ``--distractor`` specs (1 copy per round each) and a CSV list.

    Returns ``(sources, missing)``: with ``skip_missing`` the list's entries that cannot be
    resolved are left out and named in ``missing``; otherwise they are an error.
    """
    out, missing = [], []
    for spec in specs:
        path = resolve(spec)
        out.append(Source(_unique(_name(spec, path), taken), path, "distractor"))
    if list_csv is not None:
        list_csv = Path(list_csv)
        rows = _read_csv(list_csv)
        cols = set(rows[0]) if rows else set()
        id_col = next((c for c in ("pdb_id", "file", "path", "structure") if c in cols), None)
        if id_col is None:
            raise TemplearnError("distractor list needs a 'pdb_id' (or 'file') column", list_csv)
        for n, row in enumerate(rows, 2):
            spec = (row[id_col] or "").strip()
            if not spec:
                raise TemplearnError(f"line {n}: empty {id_col}", list_csv)
            local = list_csv.parent / spec
            try:
                path = local if local.is_file() else resolve(spec)
            except TemplearnError as exc:
                if skip_missing:
                    missing.append(spec)
                    continue
                raise TemplearnError(f"line {n}: {exc} (use --skip-missing to leave it out)", list_csv) from None
            copies = row.get("copies_per_round") or row.get("copies") or "1"
            try:
                copies = int(copies)
                if copies < 0:
                    raise ValueError
            except ValueError:
                raise TemplearnError(f"line {n}: copies_per_round {copies!r} is not a count", list_csv) from None
            if copies:
                out.append(Source(_unique(_name(spec, path), taken), path, "distractor", copies=copies))
    return out, missing


def _name(spec, path: Path) -> str:
    """A structure's manifest name: the PDB ID when given as one, else the file's short name."""
    return str(spec).lower() if is_pdb_id(str(spec)) and not Path(str(spec)).exists() else structure_id(path)


def _read_csv(path: Path, required=()) -> list[dict]:
    if not path.is_file():
        raise TemplearnError("no such CSV file", path)
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            rows = [{(k or "").strip(): v for k, v in row.items()} for row in reader]
            header = [h.strip() for h in (reader.fieldnames or [])]
    except (csv.Error, UnicodeDecodeError) as exc:
        raise TemplearnError(f"not a readable CSV file ({exc})", path) from None
    for col in required:
        if col not in header:
            raise TemplearnError(f"missing column {col!r} (has {', '.join(header) or 'none'})", path)
    if not rows:
        raise TemplearnError("CSV file has no rows", path)
    return rows

