"""The run report: ``report.md`` (images linked) and ``report.html`` (images embedded).

Reads what the stages wrote: ``evaluate/report.json`` (F1 of Template Learning, with template
matching as the baseline), the training curves, a sample's slices, the picks of a test tomogram,
and the ledger's step times. Writes a central slice of the first test tomogram itself
(``report_files/tomogram.png``) so the report shows data even when a stage makes no picture.
"""

from __future__ import annotations

import base64
import html
import json
import threading
from pathlib import Path

from templearn.atomic import write_text, save_figure

from . import graph
from .config import RunConfig


_PYPLOT = threading.Lock()   # pyplot's state is global: runs in threads (the ablation study) take turns


def write_report(run_dir: Path, cfg: RunConfig, steps: list[graph.Step], ledger) -> Path:
    """Write ``run_dir/report.md`` and ``run_dir/report.html``; returns the Markdown path."""
    with _PYPLOT:
        return _write_report(Path(run_dir), cfg, steps, ledger)


def _write_report(run_dir: Path, cfg: RunConfig, steps: list[graph.Step], ledger) -> Path:
    blocks: list[tuple[str, object]] = []   # ("md", text) | ("img", (relpath, caption))
    md = blocks.append

    split = graph.split_samples(cfg)
    tomos = graph.tomograms(cfg)
    md(("md", f"# Template Learning run: {cfg.name}\n\n"
              f"Targets: {', '.join(f'{t.name} ({len(t.templates)} template(s))' for t in cfg.targets)}; "
              f"{cfg.tetris.n_samples} crowded samples ({len(split['train'])} train, {len(split['val'])} val, "
              f"{len(split['test'])} test) x {len(cfg.condition_indices())} acquisition condition(s) "
              f"({cfg.simulation.pairing}) = {len(tomos)} simulated tomograms; seed {cfg.seed}.\n"))

    ev = _load(run_dir / "evaluate" / "report.json")
    md(("md", "\n## Picking accuracy (F1)\n\n" + (_f1_tables(ev) if ev else
             "_No evaluation yet: `evaluate/report.json` is missing._\n")))
    for name, caption in (("pr_curve.png", "Precision-recall over the score threshold"),
                          ("f1_box.png", "F1 per tomogram"), ("angles.png", "Recall by viewing direction")):
        if (run_dir / "evaluate" / name).is_file():
            md(("img", (f"evaluate/{name}", caption)))

    exp = _experimental(run_dir, cfg)
    if exp:
        md(("md", exp))
        for e in cfg.experimental:
            for suffix, who in (("", "simulation-only model"), ("_finetuned", "fine-tuned model")):
                rel = f"evaluate_exp/{e.name}{suffix}/slices_01.png"
                if (run_dir / rel).is_file():
                    md(("img", (rel, f"{e.name}: picks of the {who} as written: true, false, missed")))

    md(("md", "\n## Training\n\n" + _training(run_dir)))
    if (run_dir / "train" / "curves.png").is_file():
        md(("img", ("train/curves.png", "Training and validation curves")))

    md(("md", "\n## Data\n\n"))
    first = graph.sample_names(cfg)[0]
    if (run_dir / "tetris" / first / "slices.png").is_file():
        md(("img", (f"tetris/{first}/slices.png", f"Crowded sample {first} (tetris)")))
    test_tomos = [t for s, _, t in tomos if s in split["test"]]
    if test_tomos:
        t0 = test_tomos[0]
        slice_png = _tomogram_slice(run_dir, f"reconstruct/{t0}/tomogram.mrc", run_dir / "report_files" / "tomogram.png")
        if slice_png:
            md(("img", (slice_png, f"Central slice of the test tomogram {t0}")))
        for rel, caption in (("evaluate/slices_01.png", f"Template Learning picks as written in {t0}: true, false, missed"),
                             (f"pick/{t0}/picks.png", f"Template Learning picks in {t0} (rejected dashed)"),
                             (f"pick/{t0}/cluster_sizes.png", f"Cluster sizes in {t0} and the default cut")):
            if (run_dir / rel).is_file():
                md(("img", (rel, caption)))

    md(("md", "\n## Steps\n\n" + _steps_table(steps, ledger) +
        "\nEvery step's command line is in `commands.sh`, its output in `logs/`, its parameters, seed and "
        "software versions in its folder's `provenance.json`.\n"))

    text_md = "".join(v if k == "md" else f"\n![{v[1]}]({v[0]})\n\n*{v[1]}*\n" for k, v in blocks)
    out = write_text(run_dir / "report.md", text_md)
    write_text(run_dir / "report.html", _html(blocks, run_dir, cfg.name))
    return out


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _f1_tables(ev: dict) -> str:
    """Overall table (method rows) and per-tomogram table: the picks as written (each picker's
    default cut, what a user gets) beside the best threshold (chosen with the truth, an upper bound)."""
    methods = [(ev.get("method", "template learning"), ev)]
    if ev.get("baseline"):
        methods.append((ev["baseline"].get("method", "template matching"), ev["baseline"]))
    dist = ev.get("distance_angstrom")
    out = [f"Matching distance {dist:.0f} Å" if dist else "", f"; target `{ev['target']}`" if ev.get("target") else "",
           ". **As written**: the picks files as the picker wrote them, with its default cut and no truth "
           "involved. **Best**: the threshold that maximizes F1 over all tomograms, chosen with the truth "
           "(an upper bound).\n\n",
           "| method | F1 as written | precision | recall | picks | TP | FP | FN | F1 best | best threshold |\n"
           "|---|---|---|---|---|---|---|---|---|---|\n"]
    for name, m in methods:
        a, b = m.get("as_written", {}), m.get("best", {})
        out.append(f"| {name} | **{_f(a.get('f1'))}** | {_f(a.get('precision'))} | {_f(a.get('recall'))} | "
                   f"{a.get('tp', 0) + a.get('fp', 0) if a else ''} | {a.get('tp', '')} | {a.get('fp', '')} | "
                   f"{a.get('fn', '')} | {_f(b.get('f1'))} | {_f(b.get('threshold'), 3)} |\n")
    per = [m.get("tomograms", []) for _, m in methods]
    if per and per[0]:
        head = "| tomogram | truth | " + " | ".join(f"{n}: F1 as written (picks) | best F1" for n, _ in methods) + " |\n"
        out.append("\nPer tomogram:\n\n" + head + "|---" * (2 + 2 * len(methods)) + "|\n")
        for i, t in enumerate(per[0]):
            name = Path(t.get("picks", f"#{i}")).parent.name or f"#{i}"
            cells = []
            for rows in per:
                r = rows[i] if i < len(rows) else {}
                a = r.get("as_written", {})
                cells += [f"{_f(a.get('f1'))} ({a.get('n_picks', '')})", _f(r.get("at_best", {}).get("f1"))]
            out.append(f"| {name} | {t.get('n_truth', '')} | " + " | ".join(cells) + " |\n")
    return "".join(out)


def _experimental(run_dir: Path, cfg: RunConfig) -> str:
    """Each annotated experimental tomogram on its own: F1 of the picks as written by the
    simulation-only model, by the fine-tuned one, and by template matching (the best threshold
    beside each), with its own precision-recall plot; the tomograms fine-tuned on are not scored."""
    rows = []
    for e in cfg.experimental:
        sim = _load(run_dir / "evaluate_exp" / e.name / "report.json")
        ft = _load(run_dir / "evaluate_exp" / f"{e.name}_finetuned" / "report.json")
        if not (sim or ft):
            continue
        cells = []
        for r in (sim, ft, (sim or ft or {}).get("baseline")):
            a, b = (r or {}).get("as_written", {}), (r or {}).get("best", {})
            cells.append(f"**{_f(a.get('f1'))}** ({_f(a.get('precision'))} / {_f(a.get('recall'))}) | {_f(b.get('f1'))}"
                         if r else "– | –")
        n = (sim or ft)["tomograms"][0].get("n_truth", "")
        rows.append(f"| {e.name} | {n} | " + " | ".join(cells) + " |\n")
    if not rows:
        return ""
    tuned = ", ".join(a.name for a in cfg.finetune.tomograms)
    return ("\n## Experimental tomograms\n\nEach scored on its own (`evaluate_exp/<name>/`: report, threshold, "
            "plots), apart from the simulated test set"
            + (f"; fine-tuned on {tuned} ({cfg.finetune.epochs} epochs x {cfg.finetune.steps} steps), never scored"
               if tuned else "") + ". F1 as written (precision / recall) | F1 at the best threshold:\n\n"
            "| tomogram | annotated particles | simulation only: as written | best | fine-tuned: as written | best "
            "| template matching: as written | best |\n|---|---|---|---|---|---|---|---|\n" + "".join(rows))


def _f(v, digits: int = 2) -> str:
    return "" if v is None else f"{v:.{digits}f}"


def _training(run_dir: Path) -> str:
    card = _load(run_dir / "train" / "model_card.json")
    hist = run_dir / "train" / "history.csv"
    lines = []
    if card:
        keep = {k: v for k, v in card.items() if isinstance(v, (int, float, str)) and len(str(v)) < 80}
        lines += [f"- {k}: {v}\n" for k, v in list(keep.items())[:12]]
    if hist.is_file():
        rows = [r for r in hist.read_text().splitlines() if r.strip()]
        if len(rows) > 1:
            lines.append(f"- last epoch ({len(rows) - 1} epochs): `{rows[0]}` = `{rows[-1]}`\n")
    return "".join(lines) or "_No training record yet._\n"


def _steps_table(steps: list[graph.Step], ledger) -> str:
    by_kind: dict[str, list[float]] = {}
    for s in steps:
        rec = ledger.steps.get(s.id, {}) if ledger else {}
        by_kind.setdefault(s.kind, []).append(rec.get("seconds"))
    rows = ["| step | stage command | count | seconds (total of the last runs) |\n|---|---|---|---|\n"]
    for kind, secs in by_kind.items():
        done = [x for x in secs if x is not None]
        rows.append(f"| {kind} | templearn-{graph.KINDS[kind]} | {len(secs)} | "
                    f"{sum(done):.1f}{'' if len(done) == len(secs) else f' ({len(secs) - len(done)} not run)'} |\n")
    return "".join(rows)


def _tomogram_slice(run_dir: Path, rel: str, out: Path) -> str | None:
    """Central xy slice of a tomogram (mean of 3 slices, contrast by percentiles) as PNG."""
    path = run_dir / rel
    if not path.is_file():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from templearn.mrc import read_mrc

    vol, voxel = read_mrc(path)
    z = vol.shape[0] // 2
    img = vol[max(0, z - 1):z + 2].mean(0)
    lo, hi = np.percentile(img, [1, 99])
    fig, ax = plt.subplots(figsize=(5, 5 * img.shape[0] / max(img.shape[1], 1) + 0.4))
    ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, origin="lower")
    ax.set_title(f"{Path(rel).parent.name}, z = {z} ({voxel:.1f} Å/voxel)", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out, dpi=100, bbox_inches="tight")
    return str(out.relative_to(run_dir))


def _html(blocks, run_dir: Path, title: str) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             "<style>body{font-family:sans-serif;max-width:960px;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #bbb;padding:3px 8px}img{max-width:100%}figcaption{color:#555}</style>"
             "</head><body>"]
    for kind, v in blocks:
        if kind == "md":
            parts.append(_md_to_html(v))
        else:
            data = base64.b64encode((run_dir / v[0]).read_bytes()).decode()
            parts.append(f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(v[1])}'>"
                         f"<figcaption>{html.escape(v[1])}</figcaption></figure>")
    parts.append("</body></html>\n")
    return "".join(parts)


def _md_to_html(text: str) -> str:
    """The small Markdown subset this report writes: headings, tables, bullets, bold, code."""
    import re

    def inline(s: str) -> str:
        s = html.escape(s)
        s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
        s = re.sub(r"`(.+?)`", r"<code>\1</code>", s)
        return re.sub(r"(?<!\w)_(.+?)_(?!\w)", r"<i>\1</i>", s)

    out, table, bullets = [], [], []

    def flush():
        if table:
            rows = [r for r in table if not re.fullmatch(r"\|(-+\|)+", r.replace(" ", ""))]
            out.append("<table>" + "".join(
                "<tr>" + "".join(f"<{'th' if i == 0 else 'td'}>{inline(c.strip())}</{'th' if i == 0 else 'td'}>"
                                 for c in r.strip().strip("|").split("|")) + "</tr>"
                for i, r in enumerate(rows)) + "</table>")
            table.clear()
        if bullets:
            out.append("<ul>" + "".join(f"<li>{inline(b)}</li>" for b in bullets) + "</ul>")
            bullets.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        if line.startswith("- "):
            bullets.append(line[2:])
            continue
        flush()
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{inline(line.lstrip('#').strip())}</h{level}>")
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
    flush()
    return "".join(out)
