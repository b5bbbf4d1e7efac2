"""Exceptions that carry what was wrong and what would be valid.

The API turns each of them into a 4xx response; the CLI prints them without a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any


class NasError(Exception):
    """Base class of every error this package raises on purpose."""


class UnknownNameError(NasError, KeyError):
    """A spec named a space, controller, evaluator or dataset that is not registered."""

    def __init__(self, kind: str, name: str, valid: Sequence[str]) -> None:
        self.kind, self.name, self.valid = kind, name, list(valid)
        super().__init__(f"unknown {kind} {name!r}; valid: {', '.join(self.valid)}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class InvalidArchitectureError(NasError, ValueError):
    """An architecture does not belong to the space; ``decision`` names the bad choice."""

    def __init__(self, message: str, *, decision: str | None = None) -> None:
        self.decision = decision
        super().__init__(f"{decision}: {message}" if decision else message)


class DatasetError(NasError, ValueError):
    """A dataset cannot be loaded: a missing array, a shape mismatch, a missing file."""


class SpecError(NasError, ValueError):
    """A job spec is invalid. ``errors`` holds one entry per problem, each with the field
    path (``loc``) and a message that says what would be valid (pydantic's error shape)."""

    def __init__(self, errors: Sequence[dict[str, Any]]) -> None:
        self.errors = [dict(e) for e in errors]
        lines = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in self.errors]
        super().__init__("invalid job spec:\n  " + "\n  ".join(lines))

    @classmethod
    def at(cls, loc: Sequence[str | int], msg: str, type_: str = "value_error") -> SpecError:
        return cls([{"loc": tuple(loc), "msg": msg, "type": type_}])


class ExportError(NasError, ValueError):
    """An architecture cannot be exported: an unknown format, a space or network that the
    format does not support, weights that do not fit, or an export that failed its check."""


class WeightsMismatchError(ExportError):
    """Trained weights do not fit the network built for their architecture (another input
    shape or number of classes: e.g. the dataset changed since they were trained)."""


#: ``space.decisions.1: the table has no column 'x'``: a component's error that starts with
#: the field it is about (the convention of ``DatasetError`` and the RL² ``PolicyFileError``).
AT_FIELD = re.compile(r"([A-Za-z_]\w*(?:\.\w+)*): (.+)", re.DOTALL)


#: The validation context of a spec's components at submit (``parse_spec``): checks of
#: settings that would be ignored run there only, so that a job stored before such a check
#: existed still loads when it resumes or exports (``at_submit``).
AT_SUBMIT = {"at_submit": True}


def at_submit(context: Any) -> bool:
    """Whether a validator runs at submit (its ``ValidationInfo.context`` is ``AT_SUBMIT``)."""
    return isinstance(context, dict) and bool(context.get("at_submit"))


def spec_error_at_field(exc: Exception, default: Sequence[str | int]) -> SpecError:
    """``exc`` as a ``SpecError`` at the field its message starts with (``dataset.path: ...``),
    else at ``default`` with the whole message."""
    text = str(exc)
    match = AT_FIELD.fullmatch(text)
    if match is None:
        return SpecError.at(default, text)
    loc = [int(part) if part.isdigit() else part for part in match.group(1).split(".")]
    return SpecError.at(loc, match.group(2))
