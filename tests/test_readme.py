"""The manual matches the code: every command line in README.md and the stage READMEs names an
existing command, every option it shows exists, and every default it states (``[--option N]``)
is the command's default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from stage_cli import STAGE_MODULES, flags, run_command, stage_command

ROOT = Path(__file__).resolve().parents[1]
READMES = [ROOT / "README.md", *sorted((ROOT / "stages").glob("*/README.md")), ROOT / "orchestrator" / "README.md"]
COMMAND = re.compile(r"(templearn-[a-z-]+)(?: ([a-z][a-z-]*))?")
NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def command_lines() -> list[tuple[str, str]]:
    """``(where, line)`` for every line naming a templearn command (continuations joined)."""
    out = []
    for f in READMES:
        if not f.is_file():
            continue
        text = re.sub(r"\\\n\s*", " ", f.read_text())
        for i, line in enumerate(text.splitlines(), 1):
            for m in COMMAND.finditer(line):
                if m.group(1) in STAGE_MODULES or m.group(1) == "templearn-run":
                    out.append((f"{f.relative_to(ROOT)}:{i}", line[m.start():]))
    return out


def _command(script: str, sub: str | None):
    if script == "templearn-run":
        return run_command()
    return stage_command(script, sub) if sub else None


def _segment(line: str) -> str:
    """The command line up to where prose or the next command starts."""
    line = line.split("`")[0] if "`" in line else line
    nxt = COMMAND.search(line, 1)
    return line[: nxt.start()] if nxt and nxt.start() > 0 else line


def test_readme_command_lines_match_the_clis():
    lines = command_lines()
    assert len(lines) > 20, lines
    problems, checked_defaults = [], 0
    for where, line in lines:
        m = COMMAND.match(line)
        script, sub = m.group(1), m.group(2)
        try:
            cmd = _command(script, sub)
        except AssertionError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if cmd is None:
            continue
        known = flags(cmd)
        seg = _segment(line)
        for opt in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", seg):
            if opt not in known:
                problems.append(f"{where}: {script} {sub or ''} has no option {opt}")
        for opt, value in re.findall(r"\[(--[a-z][a-z0-9-]*)[ =]([^\]\s|]+)\]", seg):
            p = known.get(opt)
            if p is None or not NUMBER.match(value) or p.default is None or isinstance(p.default, (list, tuple)):
                continue
            checked_defaults += 1
            if float(p.default) != float(value):
                problems.append(f"{where}: {opt} is shown with default {value}, the command's is {p.default}")
    assert not problems, "\n".join(problems)
    assert checked_defaults >= 10


@pytest.mark.parametrize("readme", [f.relative_to(ROOT) for f in READMES if f.is_file()], ids=str)
def test_readme_links_exist(readme):
    """Relative links point at files in the repository (nothing outside it)."""
    text = (ROOT / readme).read_text()
    missing = [t for t in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text)
               if not (ROOT / readme).parent.joinpath(t).exists()]
    assert not missing, missing
