"""Numbers and tables for people: one formatter per kind of number, one renderer per table format.

A table is a list of rows of strings, the first row the header."""
from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

Rows = Sequence[Sequence[str]]


def fmt_number(value: Any, digits: int = 3) -> str:
    """``-`` for None, floats with ``digits`` decimals, anything else as ``str``."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def fmt_percent(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f}%"


def fmt_count(value: float | None, n: int, digits: int = 3) -> str:
    """A measured value with the count behind it, e.g. ``0.912 (n=300)``; ``-`` when nothing was counted."""
    return "-" if not n else f"{fmt_number(value, digits)} (n={n})"


def fmt_seconds(seconds: float) -> str:
    """``2m05s`` from a minute on, else ``12.3s``."""
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"


def fmt_bytes(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.0f} MiB"


def text_table(rows: Rows) -> str:
    """Columns padded to their widest cell, a dashed rule under the header."""
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: Rows) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def html_table(rows: Rows) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
