"""A hyperparameter value that raises an exception which does not pickle when the
evaluator reads it, in whatever process reads it. Imported by Ray workers too (the
project root is on their ``PYTHONPATH``), so keep it free of test-only imports."""

from __future__ import annotations


class UnpicklableError(Exception):
    """Unpickling calls ``cls(*args)`` with the message alone, which this constructor
    refuses: Ray cannot carry it back from a worker."""

    def __init__(self, code: int, detail: str) -> None:
        self.code = code
        super().__init__(f"error {code}: {detail}")


class HostileNumber:
    """Raises ``UnpicklableError`` when converted to a number (a recipe's ``lr``)."""

    def __init__(self, detail: str) -> None:
        self.detail = detail

    def __float__(self) -> float:
        raise UnpicklableError(7, self.detail)

    def __int__(self) -> int:
        raise UnpicklableError(7, self.detail)
