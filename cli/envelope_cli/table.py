"""`--output table`: boxes drawn with ``+|-`` in the aws CLI's layout, for people rather than scripts.

The layout follows the aws CLI's table output: a titled section per nested object or list, nested
sections framed by one more ``|`` on each side, every section as wide as the widest, and a section
with a single row turned vertical (``key | value``) when the table would not fit the terminal.
"""

from __future__ import annotations

import os
import sys
import unicodedata
from dataclasses import dataclass, field
from typing import IO, Any

__all__ = ["render_table"]

_PADDING = 4  # spaces around a cell's text, counted into its column width
# --color on: awscli's ColorizedStyler (colorama's codes) brightens cells and dims the nesting bars;
# titles and headers stay plain. Widths are measured on the plain text.
_CELL = ("\x1b[1m\x1b[34m", "\x1b[0m")
_BAR = "\x1b[2m\x1b[33m|\x1b[0m"


def _width(text: str) -> int:
    # Wide and ambiguous East Asian characters take two terminal cells.
    return sum(2 if unicodedata.east_asian_width(ch) in "WFA" else 1 for ch in text)


def _scalar(value: Any) -> bool:
    return not isinstance(value, (dict, list))


@dataclass(slots=True)
class _Section:
    title: str
    indent: int
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)

    def widths(self) -> list[int]:
        """The natural width of each column (its widest text)."""
        lines = ([self.headers] if self.headers else []) + self.rows
        if not lines:
            return []
        return [max(_width(line[i]) for line in lines if i < len(line)) for i in range(len(lines[0]))]

    def total(self) -> int:
        columns = sum(w + _PADDING for w in self.widths()) + 2 + 2 * self.indent
        return max(_width(self.title) + 2 + 2 * self.indent, columns)

    def scaled(self, width: int) -> list[int]:
        """Column widths stretched or shrunk to fill ``width`` exactly, in proportion."""
        natural = [w + _PADDING for w in self.widths()]
        if not natural:
            return natural
        factor = width / float(sum(natural))
        scaled = [round(factor * w) for w in natural]
        off = sum(scaled) - width
        while off:
            order = range(len(scaled)) if off > 0 else reversed(range(len(scaled)))
            for i in order:
                scaled[i] += -1 if off > 0 else 1
                off += -1 if off > 0 else 1
                if not off:
                    break
        return scaled


class _Builder:
    """Turns a response into sections, as the aws CLI's table formatter walks it."""

    def __init__(self) -> None:
        self.sections: list[_Section] = []

    def _row(self, values: list[Any]) -> None:
        # `render_table` opens the first section, so there is always one to add to.
        self.sections[-1].rows.append([str(v) for v in values])

    def build(self, title: str | None, current: Any, indent: int = 0) -> None:
        if current in (None, "", [], {}):
            return
        if title is not None:
            self.sections.append(_Section(title, indent))
        if isinstance(current, dict):
            self._dict(current, indent)
        elif isinstance(current, list):
            if isinstance(current[0], dict):
                self._list_of_dicts(current, title or "", indent)
            else:
                for item in current:
                    if _scalar(item):
                        self._row([item])
                    elif isinstance(item, list) and all(_scalar(e) for e in item):
                        self._row(item)
                    else:
                        self.build(None, item, indent)
        else:  # a scalar, e.g. after --query
            self._row([current])

    def _dict(self, current: dict[str, Any], indent: int) -> None:
        scalars = sorted(k for k, v in current.items() if _scalar(v))
        nested = sorted(k for k, v in current.items() if not _scalar(v))
        if len(scalars) == 1:
            self._row([scalars[0], current[scalars[0]]])
        elif scalars:
            self.sections[-1].headers = scalars
            self._row([current[k] for k in scalars])
        for key in nested:
            self.build(key, current[key], indent + 1)

    def _list_of_dicts(self, items: list[Any], title: str, indent: int) -> None:
        dicts = [item for item in items if isinstance(item, dict)]
        headers = sorted({k for d in dicts for k, v in d.items() if _scalar(v)})
        nested = sorted({k for d in dicts for k, v in d.items() if not _scalar(v)})
        self.sections[-1].headers = headers
        for n, item in enumerate(dicts):
            if n and nested:
                self.sections.append(_Section(title, indent, list(headers)))
            self._row([item.get(h, "") for h in headers])
            for key in nested:
                if key in item:
                    self.build(key, item[key], indent + 1)


def _center(text: str, width: int, first: bool = True) -> str:
    edge = "|" if first else ""
    left = width // 2 - _width(text) // 2 - 1
    return edge + " " * left + text + " " * (width - 1 - len(edge) - left - _width(text)) + "|"


def _left(text: str, width: int, first: bool, color: bool = False) -> str:
    edge = "|" if first else ""
    pad = 2 if width - _width(text) - 2 - len(edge) - 1 >= 0 else 0
    shown = _CELL[0] + text + _CELL[1] if color else text
    return edge + " " * pad + shown + " " * max(width - len(edge) - pad - _width(text) - 1, 0) + "|"


def _rule(widths: list[int]) -> str:
    return "".join(("+" + "-" * (w - 2) + "+") if i == 0 else ("-" * (w - 1) + "+") for i, w in enumerate(widths))


def _vertical(section: _Section) -> _Section:
    if len(section.rows) != 1 or not section.headers:
        return section
    return _Section(section.title, section.indent, [], [[h, v] for h, v in zip(section.headers, section.rows[0])])


def _terminal_width() -> int:
    """stdout's terminal width, or 80: as awscli asks the terminal (not $COLUMNS), a table piped to
    a file is laid out the same as the aws CLI's."""
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 80


def _colored(color: str, stream: IO[str]) -> bool:
    if color == "auto":
        isatty = getattr(stream, "isatty", None)
        return bool(isatty and isatty() and stream is sys.stdout)
    return color == "on"


def render_table(title: str, response: Any, stream: IO[str], *, color: str = "off") -> None:
    """Write ``response`` (already JSON-shaped) to ``stream`` as a table titled ``title``.

    :param color: on, off, or auto (on when ``stream`` is stdout and a terminal), as `--color`.
    """
    colored = _colored(color, stream)
    builder = _Builder()
    builder.build(title, response)
    sections = builder.sections
    if not sections:
        return
    limit = _terminal_width()
    width = max(s.total() for s in sections)
    if width > limit:
        sections = [_vertical(s) for s in sections]
        width = max(s.total() for s in sections)
    lines = ["-" * width]
    for section in sections:
        inner = width - 2 * section.indent
        body: list[str] = []
        if section.title:
            body.append(_center(section.title, inner))
            if not section.headers and not section.rows:
                body.append("+" + "-" * (inner - 2) + "+")
        widths = section.scaled(inner)
        if section.headers:
            body.append(_rule(widths))
            body.append("".join(_center(h, w, i == 0) for i, (h, w) in enumerate(zip(section.headers, widths))))
        if section.rows and widths:
            body.append(_rule(widths))
            body += ["".join(_left(v, w, i == 0, colored) for i, (v, w) in enumerate(zip(row, widths)))
                     for row in section.rows]
            body.append(_rule(widths))
        bar = (_BAR if colored else "|") * section.indent
        lines += [bar + line + bar for line in body]
    stream.write("\n".join(lines) + "\n")
