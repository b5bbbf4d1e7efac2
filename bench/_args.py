"""Command-line helpers shared by the bench scripts: argparse types that refuse counts, sizes
and durations that cannot work (a usage error, exit 2, naming the option), and the --help
description of a script.

The scripts run as ``python bench/X.py``, so this module is imported as ``from _args import ...``
(bench/ is then the first entry of ``sys.path``).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable
from pathlib import Path


def description(doc: str | None) -> str:
    """The whole first paragraph of a script's docstring (argparse re-wraps it)."""
    return (doc or "").strip().split("\n\n")[0]


def at_least(minimum: int, why: str = "") -> Callable[[str], int]:
    """An argparse ``type``: an integer >= ``minimum``; ``why`` is added to the refusal."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            reason = f" ({why})" if why else ""
            raise argparse.ArgumentTypeError(f"must be at least {minimum}{reason}, got {value}")
        return value

    return parse


positive_int = at_least(1)
non_negative_int = at_least(0)


def _float(text: str, *, allow_zero: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if math.isnan(value) or value < 0 or (value == 0 and not allow_zero):
        bound = "at least 0" if allow_zero else "greater than 0"
        raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
    return value


def positive_float(text: str) -> float:
    """An argparse ``type``: a number > 0 (seconds, minutes, rates)."""
    return _float(text, allow_zero=False)


def non_negative_float(text: str) -> float:
    """An argparse ``type``: a number >= 0."""
    return _float(text, allow_zero=True)


def existing_file(text: str) -> str:
    """An argparse ``type``: the path of a file that exists (returned as given)."""
    if not Path(text).expanduser().is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text!r}")
    return text


def row_names(labels: Iterable[str]) -> list[str]:
    """The first word of each row label, once each, in order: the names --only lists."""
    return list(dict.fromkeys(label.split()[0] for label in labels))


def prefix_of(labels: Iterable[str]) -> Callable[[str], str]:
    """An argparse ``type`` for options that pick rows by a prefix of their label: a prefix
    of at least one of ``labels``; the refusal lists the rows' names."""
    labels = list(labels)

    def parse(text: str) -> str:
        if not text or not any(label.startswith(text) for label in labels):
            raise argparse.ArgumentTypeError(
                f"invalid choice: {text!r} (choose from {', '.join(row_names(labels))}, "
                "or a prefix of a row's label)"
            )
        return text

    return parse


def one_line(error: Exception) -> str:
    """An error's message on one line (a ``SpecError`` lists its problems on indented lines:
    they are joined with ``;``), for ``parser.error``."""
    head, _, rest = str(error).partition(":\n")
    if not rest:
        return str(error)
    return f"{head}: " + "; ".join(line.strip() for line in rest.splitlines() if line.strip())
