"""The one error type a bad recipe raises, carrying the path of the offending field.

Example:
    >>> str(RecipeError("stages[1].quantize.bits", "expected one of 4, 8, got 3"))
    'stages[1].quantize.bits: expected one of 4, 8, got 3'
"""

from __future__ import annotations


class RecipeError(ValueError):
    """A recipe that cannot run, found before any work starts.

    ``path`` names the field (``stages[1].quantize.group_size``) so the message points
    at the line to fix; the CLI turns this into exit code 2.

    Example:
        >>> RecipeError("seed", "must be an int >= 0, got -1").path
        'seed'
    """

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.detail = message
        super().__init__(f"{path}: {message}" if path else message)
