"""The ``initlab`` command: thin commands over the library. Each parses, calls, prints.

:mod:`.base` holds the group :func:`main` and what every command shares; each other module registers
one family of commands on it and imports only :mod:`.base` (never another command module):
:mod:`.run` (schemes, init, demo, train), :mod:`.diagnose`, :mod:`.audit`, :mod:`.theory`, :mod:`.signal`, :mod:`.sweep` (sweep,
results), :mod:`.report`, :mod:`.playground` and :mod:`.watch` (watch-demo). No module here imports torch at its top: the library
is imported inside each command, so ``initlab --help`` loads neither torch nor scikit-learn.
"""

from . import audit, diagnose, playground, report, run, signal, sweep, theory, watch  # noqa: F401  (each registers its commands)
from .base import AliasOption, BadInput, Number, main

__all__ = ["AliasOption", "BadInput", "Number", "main"]

if __name__ == "__main__":  # pragma: no cover
    main()
