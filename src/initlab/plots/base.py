"""What every figure shares: the colours and levels, round step ticks and whole-layer ticks, the
legend under the axes, the note an empty log axis shows, saving, and the words of a language (with
right-to-left text given to matplotlib as :func:`rtl_text` says)."""

from __future__ import annotations

import functools
import sys
import unicodedata
import warnings
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import ScaledTranslation

from ..errors import InitlabError
from ..report.text import RTL, TEXT, visual_order

LEVELS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
COLORS = plt.get_cmap("tab10").colors
#: Spacings of step ticks, times a power of ten: 0, 500, 1000 or 0, 20, 40, never 0, 240, 680.
ROUND_STEPS = (1, 2, 5, 10)
#: A font with Hebrew letters (matplotlib ships it), put first when a figure is drawn in Hebrew.
RTL_FONT = "DejaVu Sans"


def round_ticks(low: float, high: float, nbins: int = 6) -> np.ndarray:
    """Round values between ``low`` and ``high`` for a step axis: whole numbers spaced 1, 2 or 5 times
    a power of ten, at most ``nbins + 1`` of them."""
    ticks = MaxNLocator(nbins=nbins, steps=ROUND_STEPS, integer=True).tick_values(low, high)
    return ticks[(ticks >= low - 1e-9) & (ticks <= high + 1e-9)]


def _round_step_axis(axis) -> None:
    axis.set_major_locator(MaxNLocator(nbins=6, steps=ROUND_STEPS, integer=True, min_n_ticks=1))


def _layer_axis(axis, n: int) -> None:
    """Whole layers only: every layer when there are few, else whole numbers."""
    if n <= 16:
        axis.set_ticks(range(1, n + 1))
    else:
        axis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


@functools.cache
def draws_bidi() -> bool:
    """Whether this matplotlib orders right-to-left text itself (3.11 and later lay text out with
    libraqm): then a Hebrew string is given as written, else in :func:`~initlab.report.text.visual_order`."""
    try:
        from matplotlib import font_manager, ft2font

        font = ft2font.FT2Font(font_manager.findfont(RTL_FONT))
        font.set_size(12, 72)
        return [g.char for g in font._layout("\u05d0\u05d1", ft2font.LoadFlags.NO_HINTING)] == ["\u05d1", "\u05d0"]
    except Exception:  # no layout engine: glyphs go left to right as given
        return False


def rtl_text(text: str) -> str:
    """A right-to-left language's ``text`` as matplotlib must be given it to draw it in reading order:
    each line opened by a RIGHT-TO-LEFT MARK (so that a line that begins with code, ``normal(std=3)
    (...)``, still reads from the right) where matplotlib orders text itself, else reordered."""
    text = str(text)
    # through the package, so that replacing ``initlab.plots.draws_bidi`` (as the tests do) is seen here
    if not sys.modules[__package__].draws_bidi():
        return visual_order(text)
    if not any(unicodedata.bidirectional(c) in ("R", "AL") for c in text):
        return text
    return "\n".join("\u200f" + line for line in text.split("\n"))


def _words(lang: str) -> tuple[dict, callable]:
    """The figures' words in ``lang`` and the function that gives a string to matplotlib."""
    if lang not in TEXT:
        raise InitlabError(f"unknown language '{lang}'; use one of {', '.join(TEXT)}.")
    return TEXT[lang]["figures"], (rtl_text if lang in RTL else str)


def legend_below(ax, lang: str = "en", ncol: int = 1, fontsize: float = 8, **kwargs):
    """The axes' legend under its x label, where it covers no data. In a right-to-left language the
    marker follows the words and the first column is the rightmost. Layout (``tight_layout``,
    ``bbox_inches="tight"``) makes room for it."""
    handles, labels = ax.get_legend_handles_labels()
    ncol = max(1, min(ncol, len(handles)))
    if lang in RTL:
        handles, labels = _columns_from_the_right(handles, labels, ncol)
    below = ScaledTranslation(0, -0.48, ax.figure.dpi_scale_trans)
    return ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0),
                     bbox_transform=ax.transAxes + below, ncol=ncol, fontsize=fontsize, frameon=False,
                     markerfirst=lang not in RTL, **kwargs)


def _columns_from_the_right(handles: list, labels: list, ncol: int) -> tuple[list, list]:
    """Legend entries reordered so that the columns, which matplotlib fills from the left, read from
    the right; blank entries make the columns equally long."""
    from matplotlib.lines import Line2D

    rows = -(-len(handles) // ncol)
    pad = rows * ncol - len(handles)
    entries = list(zip(handles, labels)) + [(Line2D([], [], alpha=0), "")] * pad
    columns = [entries[i * rows:(i + 1) * rows] for i in range(ncol)]
    ordered = [e for column in reversed(columns) for e in column]
    return [h for h, _ in ordered], [lab for _, lab in ordered]


def _empty_note(ax, text: str) -> None:
    """Say in the middle of the axes why there is nothing to see."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=10, color="0.25",
            bbox={"facecolor": "#fff8e0", "edgecolor": "0.7", "boxstyle": "round,pad=0.5"})


def _lone_point(values) -> dict:
    """A marker for a line with a single finite value, which a line style alone does not draw."""
    return {"marker": "o", "markersize": 4} if np.isfinite(np.asarray(values, dtype=float)).sum() == 1 else {}


def _drawable_on_log(*arrays) -> bool:
    return any(np.any(np.isfinite(a) & (a > 0)) for a in (np.asarray(x, dtype=float) for x in arrays))


def _log_y(ax, arrays, note: str) -> None:
    """A log y axis; when no value of ``arrays`` is above 0, the axes say ``note`` instead of
    matplotlib warning that it has nothing to scale."""
    if _drawable_on_log(*arrays):
        ax.set_yscale("log")
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ax.set_yscale("log")
    _empty_note(ax, note)


def save_figure(fig, stem: str | Path, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Save ``fig`` as ``stem.png`` and ``stem.svg`` and close it."""
    paths = []
    for fmt in formats:
        path = Path(f"{stem}.{fmt}")
        fig.savefig(path, dpi=110, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def _axis_label(value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "full"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _sort_key(v):
    return (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v))
