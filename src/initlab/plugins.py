"""What is found by name rather than imported: entry points, so that a lower floor can use what a
higher floor (or another package) provides without importing it.

Two groups, declared in ``pyproject.toml`` and open to other packages:

- ``initlab.schemes``: each entry is a function that registers data-dependent schemes
  (:func:`initlab.schemes.register_data_scheme`); initlab's own is ``lsuv``. Loaded when a scheme
  name is first asked.
- ``initlab.plots``: drawing functions the library's objects offer as a convenience
  (``Diagnosis.plot`` draws with the ``diagnosis`` entry), as pandas finds its plotting backend.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from .errors import InitlabError


@cache
def entries(group: str) -> dict:
    """The entry points of ``group`` by name (read from the installed packages' metadata once)."""
    return {ep.name: ep for ep in entry_points(group=group)}


def find(group: str, name: str):
    """The object the entry point ``name`` of ``group`` names, imported now."""
    found = entries(group).get(name)
    if found is None:
        raise InitlabError(f"no '{name}' in the entry points '{group}': is initlab installed (pip install -e .)?")
    return found.load()
