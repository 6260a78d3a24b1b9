"""README.md runs: every fenced ``python`` and ``sh`` block, in order, as a new user would type them.

The blocks share one fresh HOME (so one embedded KMS data directory) and one empty working
directory: earlier blocks create the files later ones use, and no block may need a file the reader
does not have. Each block is one test (ids name its README line), run in a process of its own:

- ``sh``/``bash``/``console`` blocks run under ``bash -e -o pipefail`` with this interpreter's
  bin directory first on PATH (so ``envelope`` is the installed command) and ``.venv/bin/``
  mapped to that directory. A failure names the README line of the command that failed.
- ``python`` blocks run as a script with this interpreter.
- The "Two commands" section is the install itself: its ``python3 -m venv .venv && .venv/bin/pip
  install ...`` prefix is dropped (the package under test is already installed, which is what the
  prefix does) and the rest of the line runs; its test-suite block (``pytest``) is the suite this
  test belongs to, so it is skipped.
- A block that needs ``envelope kms serve`` starts it on loopback itself and stops it; each block
  runs in a session of its own, killed when the block ends, so nothing outlives it.

No network but loopback: the environment names no AWS endpoint or credentials.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from pgserver import create_database

README = Path(__file__).resolve().parent.parent / "README.md"
BIN = Path(sys.executable).parent
SHELLS = {"sh", "bash", "shell", "console"}
# The install prefix of the "Two commands" lines (what the running test environment already did).
INSTALL_PREFIX = re.compile(r"python3 -m venv \.venv && \.venv/bin/(?:python -m )?pip install [^&]*&& ")
TIMEOUT = 120


@dataclass(frozen=True)
class Block:
    line: int  # README line of the block's first code line
    lang: str
    section: str
    code: str

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.section.lower()).strip("-")[:40]
        return f"L{self.line}-{self.lang}-{slug}"


def readme_blocks(text: str) -> list[Block]:
    """The fenced blocks of ``text`` in order, with the heading they are under."""
    blocks: list[Block] = []
    section = ""
    fence: tuple[int, str] | None = None
    lines: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        if fence is None:
            if line.startswith("#"):
                section = line.lstrip("#").strip()
            elif line.startswith("```"):
                fence = (number + 1, line[3:].strip().lower())
                lines = []
        elif line.startswith("```"):
            blocks.append(Block(fence[0], fence[1], section, "\n".join(lines) + "\n"))
            fence = None
        else:
            lines.append(line)
    assert fence is None, f"README.md: the block opened at line {fence[0] - 1} is never closed"
    return blocks


BLOCKS = [b for b in readme_blocks(README.read_text(encoding="utf-8")) if b.lang in SHELLS | {"python"}]


def _prepare(block: Block) -> str | None:
    """The code to run for ``block``, or None if it is not run (see the module docstring)."""
    code = block.code
    if block.section.startswith("Two commands"):
        if "pytest" in code:
            return None
        code = INSTALL_PREFIX.sub("", code)
    if block.lang in SHELLS:
        code = code.replace(".venv/bin/", f"{BIN}/")
    return code


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("readme")
    home, work = root / "home", root / "work"
    home.mkdir()
    work.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "ENVELOPE_", "PYTEST_", "COV_")) and k not in {"PYTHONPATH"}}
    env.update(HOME=str(home), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", LC_ALL="C.UTF-8",
               NO_COLOR="1", TERM="dumb", AWS_CONFIG_FILE=str(home / "no-aws-config"),
               AWS_SHARED_CREDENTIALS_FILE=str(home / "no-aws-credentials"))
    return work, env


def _failing_line(block: Block, stderr: str) -> str:
    """The README line that failed: the last command bash traced (PS4 prints its line in the
    block), or the innermost frame of the block in a Python traceback."""
    if block.lang == "python":
        frames = re.findall(r'File ".*block\.py", line (\d+)', stderr)
        offset, command = (frames[-1], "") if frames else ("1", "")
    else:
        traced = re.findall(r"^\++ README:(\d+): (.*)$", stderr, re.MULTILINE)
        # (The script's first line sets PS4: bash, as root, does not take it from the environment.)
        offset, command = (str(int(traced[-1][0]) - 1), traced[-1][1]) if traced else ("1", "")
    line = block.line + int(offset) - 1
    return f"line {line}: {command}" if command else f"line {line}"


# The README's PostgreSQL example names a team's database; here it runs against a fresh database
# on the suite's PostgreSQL server (conftest: started for the session, or CI's).
_README_DATABASE = "postgresql://kms@db.internal:5432/kms"


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_readme_block_runs(block: Block, sandbox: tuple[Path, dict[str, str]], tmp_path: Path,
                           request: pytest.FixtureRequest) -> None:
    source = _prepare(block)
    if source is None:
        pytest.skip("the README's test-suite command: this test is part of that suite")
    if _README_DATABASE in source:
        source = source.replace(_README_DATABASE, create_database(request.getfixturevalue("postgres_base_url")))
    work, env = sandbox
    script = tmp_path / ("block.py" if block.lang == "python" else "block.sh")
    if block.lang == "python":
        script.write_text(source, encoding="utf-8")
        argv = [sys.executable, str(script)]
    else:
        script.write_text("PS4='+ README:${LINENO}: '\n" + source, encoding="utf-8")
        argv = ["bash", "-e", "-o", "pipefail", "-x", str(script)]
    out_path, err_path = tmp_path / "stdout", tmp_path / "stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        # A session of its own, so whatever the block leaves running in the background (a server
        # it forgot to stop, or one a failing block never reached `kill` for) is stopped with it.
        proc = subprocess.Popen(argv, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                start_new_session=True)
        try:
            code: int | None = proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    stdout, stderr = out_path.read_text(errors="replace"), err_path.read_text(errors="replace")
    if code != 0:
        where = _failing_line(block, stderr)
        outcome = f"timed out after {TIMEOUT} s" if code is None else f"exited {code}"
        pytest.fail(f"README.md {where} (section {block.section!r}) {outcome}\n"
                    f"--- stdout ---\n{stdout[-3000:]}\n--- stderr ---\n{stderr[-3000:]}", pytrace=False)


def test_the_blocks_are_found() -> None:
    # Guards the parser: the README has shell and python examples, and each is run above.
    langs = {b.lang for b in BLOCKS}
    assert {"python", "sh"} <= langs
    assert all(b.code.strip() for b in BLOCKS)
    unknown = {b.lang for b in readme_blocks(README.read_text(encoding="utf-8"))} - SHELLS - {"python", "", "text"}
    assert not unknown, f"README blocks of a language this test does not run: {unknown}"
