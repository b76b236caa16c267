"""The one way a value reaches an HTML page: :func:`esc`. Every page builder (the ``report``
package and ``tables``) passes each value it did not write itself through it."""

from __future__ import annotations

from html import escape


def esc(value) -> str:
    """``value`` as text safe inside an HTML element or a quoted attribute: its ``str()`` with
    ``&``, ``<``, ``>``, ``"`` and ``'`` escaped.

    >>> esc('<img src=x onerror="a()">')
    '&lt;img src=x onerror=&quot;a()&quot;&gt;'
    """
    return escape(str(value), quote=True)
