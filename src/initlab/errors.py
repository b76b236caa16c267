"""The one error type initlab raises for bad input.

The CLI turns an :class:`InitlabError` into a single line on stderr and a non-zero exit code; the
library lets it propagate. It subclasses :class:`ValueError`, so ``except ValueError`` also works.
"""

from __future__ import annotations

import difflib
from typing import Iterable


class InitlabError(ValueError):
    """Bad input to initlab: the message names what was wrong and what would be right."""


def unknown_name(kind: str, name: object, known: Iterable[str]) -> InitlabError:
    """An error for an unknown ``name`` of ``kind`` that lists the known ones and the closest match."""
    known = sorted(known)
    close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return InitlabError(f"unknown {kind} '{name}'.{hint} Known: {', '.join(known)}.")
