"""Packaging metadata: our own distribution name everywhere a pip command is shown, an SPDX
license with its file, Python classifiers that match requires-python, and an sdist that carries
what the suite reads (tests, vectors, spec, benchmarks)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTION = "envelope-crypto"


def _project() -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project


def test_distribution_name_and_license() -> None:
    project = _project()
    assert project["name"] == DISTRIBUTION
    assert project["scripts"] == {"envelope": "envelope_cli.main:main"}
    assert project["license"] == "Apache-2.0"  # an SPDX expression (PEP 639), not the deprecated table
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "END OF TERMS AND CONDITIONS" in text
    assert not any(c.startswith("License ::") for c in project["classifiers"])  # PEP 639: the expression only


def test_python_classifiers_start_at_requires_python() -> None:
    project = _project()
    minimum = re.fullmatch(r">=3\.(\d+)", project["requires-python"])
    assert minimum
    versions = sorted(int(m[1]) for c in project["classifiers"]
                      if (m := re.fullmatch(r"Programming Language :: Python :: 3\.(\d+)", c)))
    assert versions == list(range(int(minimum[1]), versions[-1] + 1))
    assert versions[-1] >= 13


def test_every_pip_command_names_our_distribution() -> None:
    # "pip install envelope" installs an unrelated e-mail tool that also owns `import envelope`.
    sources = [ROOT / "README.md", *(ROOT / "envelope").rglob("*.py"), *(ROOT / "cli").rglob("*.py")]
    seen = 0
    for path in sources:
        for match in re.finditer(r"pip install ([^`\n);&|]*)", path.read_text(encoding="utf-8")):
            seen += 1
            target = match[1]
            # The bare name "envelope" (with or without extras) is the other project; other
            # packages (pyyaml, atheris) and local installs (".[cli]") are fine.
            assert not re.search(r"(?<![\w.-])envelope(?![\w-])", target), \
                f"{path.relative_to(ROOT)}: 'pip install {target}' installs the unrelated 'envelope', not {DISTRIBUTION}"
    assert seen >= 4


def test_sdist_carries_what_the_suite_reads() -> None:
    grafts = set(re.findall(r"^graft (\S+)$", (ROOT / "MANIFEST.in").read_text(), re.MULTILINE))
    assert {"tests", "vectors", "format-spec", "bench"} <= grafts
