"""Every shell command in the README runs as written (issue 14), so docs and code cannot drift.

Each fenced ``bash``/``sh``/``shell`` block of README.md is run as one bash script from the
repository root, after the README's own set-up (``make run`` / ``make test`` create ``.venv``,
which the suite itself runs from), with ``.venv/bin`` taken *off* PATH: a command that works only
inside an activated virtual environment fails here as it would for a new user.

Bounded, and on the parts the suite owns:
- a bootstrap address in a command (``HOST:9092``, ``127.0.0.1:9092``) is replaced by the suite's
  Tansu broker; a block that starts its own broker gets a free port instead of 9092;
- every block has a time limit; commands left in the background (``cmd &``) are ended with
  the block (its process group);
- metrics are served on a free port (``QAS_METRICS_PORT=0``), files the commands write are
  removed afterwards.

A block is annotated by an HTML comment on the line before its fence (invisible on GitHub):

    <!-- readme-test: long-running -->   each command runs for 6 s, then gets Ctrl-C (SIGINT);
                                          it must still be running, or have exited 0, and
                                          stop with status 0 or 130 and no traceback
    <!-- readme-test: skip REASON -->    not run (docker, or this very suite); REASON required

An unannotated block that does not finish in time fails with a message saying which marker to
add, so a section added later is run, never silently skipped. Each block runs twice in a row
(what its first run wrote is still there for the second), and must leave nothing running in the
background at the end of each run: a block that starts a broker stops it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.broker import TansuBroker, free_port

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SHELLS = ("bash", "sh", "shell")
MARKER = re.compile(r"<!--\s*readme-test:\s*(long-running|skip)\b\s*(.*?)\s*-->")
BLOCK_TIMEOUT = 240.0
RUN_FOR = 6
RUNS = (1, 2)


@dataclass
class Block:
    line: int  # 1-based line of the opening fence
    commands: list[str]
    marker: str | None  # None, "long-running" or "skip"
    reason: str = ""


def _strip_comment(line: str) -> str:
    """The command without a trailing ``# comment`` (a ``#`` inside quotes is kept)."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def readme_blocks(text: str) -> list[Block]:
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        fence = re.match(r"^(\s*)```+\s*(\w*)", lines[i])
        if not fence:
            i += 1
            continue
        lang, start = fence.group(2).lower(), i
        i += 1
        body: list[str] = []
        while i < len(lines) and not re.match(r"^\s*```", lines[i]):
            body.append(lines[i])
            i += 1
        i += 1
        if lang not in SHELLS:
            continue
        prev = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        m = MARKER.search(prev)
        commands: list[str] = []
        pending = ""
        for raw in body:
            if raw.rstrip().endswith("\\"):
                pending += raw.rstrip()[:-1] + " "
                continue
            cmd = _strip_comment(pending + raw).strip()
            pending = ""
            if cmd:
                commands.append(cmd)
        blocks.append(
            Block(start + 1, commands, m.group(1) if m else None, m.group(2) if m else "")
        )
    return blocks


def _script(block: Block, bootstrap: str) -> str:
    text = "\n".join(block.commands)
    if "--listener-url" in text:  # the block starts its own broker: a free port, not 9092
        text = text.replace("9092", str(free_port()))
    else:
        text = re.sub(r"\b(?:HOST|localhost|127\.0\.0\.1):9092\b", bootstrap, text)
    out = ["set -u", 'fail() { echo "README command failed (exit $1): $2" >&2; exit 1; }',
           # what a block left in the background ends with it (and closes its output)
           "trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT"]
    for run in RUNS:  # twice in a row, as a reader may: keygen on an existing file, ...
        out.append(f"echo 'README block, run {run}' >&2")
        for cmd in text.splitlines():
            quoted = "'" + cmd.replace("'", "'\"'\"'") + "'"
            if cmd.endswith("&"):
                out += [cmd, "sleep 3  # let it come up, as a reader would"]
            elif block.marker == "long-running":
                out += [f"rc=0; timeout --preserve-status -s INT {RUN_FOR} {cmd} || rc=$?",
                        f'case $rc in 0|130) ;; *) fail $rc {quoted};; esac']  # fmt: skip
            else:
                out.append(f"{{ {cmd}\n}} || fail $? {quoted}")
        # a block stops what it started (a broker, a service left in the background)
        out += ['for _ in $(seq 50); do [ -z "$(jobs -pr)" ] && break; sleep 0.1; done',
                '[ -z "$(jobs -pr)" ] || { echo "README block left running:" $(jobs -r) >&2; '
                'exit 1; }']  # fmt: skip
    return "\n".join(out) + "\n"


def _user_env() -> dict[str, str]:
    venv_bin = str(ROOT / ".venv" / "bin")
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep)
            if p and Path(p).resolve() != Path(venv_bin).resolve()]  # fmt: skip
    # make's own variables (MAKEFLAGS carries `make test ARGS=...`) must not reach the README's
    # `make run`: a reader's shell has none of them
    dropped = ("VIRTUAL_ENV", "PYTHONPATH", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    return {**env, "PATH": os.pathsep.join(path), "QAS_METRICS_PORT": "0"}


def _untracked() -> set[str]:
    """Untracked and ignored paths (a new folder as one entry): what a command may write."""
    out = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return {line[3:] for line in out.splitlines() if line[:3] in ("?? ", "!! ")}


BLOCKS = readme_blocks(README.read_text())


def test_the_readme_has_shell_blocks_and_every_marker_is_explained() -> None:
    assert len(BLOCKS) >= 5 and sum(len(b.commands) for b in BLOCKS) >= 10
    for b in BLOCKS:
        assert b.commands, f"README.md:{b.line}: an empty shell block"
        if b.marker == "skip":
            assert len(b.reason) >= 10, f"README.md:{b.line}: say why the block is not run"


README_MAX_LINES = 350
DEV_LOG = re.compile(r"\b(?:this|last) round\b|\bissue[ -]?#?\d+", re.IGNORECASE)


def test_the_readme_is_a_short_manual() -> None:
    """At most 350 lines; the rest lives in docs/, which it links; no page reads as a
    development log (rounds, issue numbers)."""
    text = README.read_text()
    assert len(text.splitlines()) <= README_MAX_LINES, "README.md: move detail into docs/"
    linked = set(re.findall(r"\]\((docs/[\w./-]+\.md)", text))
    assert len(linked) >= 8, sorted(linked)
    missing = [p for p in linked if not (ROOT / p).is_file()]
    assert not missing, f"README.md links pages that do not exist: {missing}"
    for page in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        hits = [m.group(0) for m in DEV_LOG.finditer(page.read_text())]
        assert not hits, f"{page.relative_to(ROOT)} reads as a development log: {hits}"


def test_parser_reads_markers_comments_and_continuations() -> None:
    text = ("intro\n\n<!-- readme-test: skip needs docker and a registry -->\n```bash\n"
            "docker compose up -d   # comment\n```\n\n```sh\nqas run \\\n  --json '#x'  # c\n```\n"
            "```\noutput, not a command\n```\n")  # fmt: skip
    skip, plain = readme_blocks(text)
    assert (skip.marker, skip.reason, skip.commands) == ("skip", "needs docker and a registry",
                                                         ["docker compose up -d"])  # fmt: skip
    assert plain.marker is None and plain.commands == ["qas run    --json '#x'"]


@pytest.mark.kafka
@pytest.mark.parametrize("block", BLOCKS, ids=[f"README.md:{b.line}" for b in BLOCKS])
def test_readme_block_runs_as_written(block: Block, broker: TansuBroker) -> None:
    if block.marker == "skip":
        pytest.skip(f"README.md:{block.line} is marked skip: {block.reason}")  # explicit, with why
    before = _untracked()
    proc = subprocess.Popen(["bash", "-c", _script(block, broker.bootstrap)], cwd=ROOT,
                            env=_user_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=BLOCK_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"README.md:{block.line} did not finish in {BLOCK_TIMEOUT:g} s; if it runs "
                    f"until stopped, put <!-- readme-test: long-running --> before its fence\n"
                    f"{err[-2000:]}")  # fmt: skip
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # whatever it left in the background
        except ProcessLookupError:
            pass
        # only what the block names (report.png, qas.key, ...): a file someone else creates in
        # the checkout meanwhile is theirs, not the block's
        said = " ".join(block.commands)
        for name in _untracked() - before:
            path = ROOT / name
            if path.name in said:
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    assert proc.returncode == 0, f"README.md:{block.line}\n{err[-3000:]}"
    assert "Traceback" not in err, f"README.md:{block.line}\n{err[-3000:]}"
    assert "level=ERROR" not in err, f"README.md:{block.line}\n{err[-3000:]}"
    assert out or err  # every README command says something
