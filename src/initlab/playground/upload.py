"""Your own data in the playground: a CSV of two numeric columns and a 0/1 label, uploaded or pasted,
checked row by row, split and standardized exactly as the built-in datasets are
(:func:`initlab.datasets.split`), and kept in the session's memory only: nothing is written to disk.

The server reads at most :data:`MAX_BYTES` of a request's body before it parses anything (the
``Content-Length`` it announces first, then what actually arrives), and every malformed file gets one
message that says which row is wrong and what would be right:

>>> X, y = parse("x,y,label\\n0,0,0\\n1,1,1\\n" + "\\n".join(f"{i},{-i},{i % 2}" for i in range(2, 20)))
>>> data = dataset(X, y, seed=0)
>>> data.name, len(data.X_train) + len(data.X_test)
('custom', 20)
"""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np

from ..datasets import Dataset, split
from ..errors import InitlabError

MAX_BYTES = 256 * 1024     # a request's body, JSON and all; 2,000 rows of three numbers fit easily
MAX_ROWS = 2000            # as many points as the built-in datasets may have
MIN_ROWS = 10
MIN_PER_CLASS = 3          # so that the stratified 70/30 split leaves each class in both halves
MAX_MAGNITUDE = 1e100      # beyond it (or below 1/MAX_MAGNITUDE but not 0) a column's variance over-
                           # or underflows in float64, and standardizing would silently flatten it to 0
FORMAT = "three columns per row: x1, x2 (numbers) and a label (0 or 1), with an optional header row"


class TooLarge(InitlabError):
    """The upload is larger than the server reads (HTTP 413)."""


def limits() -> dict:
    """The upload limits, as the page shows and checks them (the server is their one home)."""
    return {"max_bytes": MAX_BYTES, "max_rows": MAX_ROWS, "min_rows": MIN_ROWS, "min_per_class": MIN_PER_CLASS,
            "format": FORMAT}


def _number(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _absurd(v: float) -> bool:
    """Too large or too small (but not 0) to standardize in float64 without losing the column."""
    return abs(v) > MAX_MAGNITUDE or 0 < abs(v) < 1 / MAX_MAGNITUDE


def body_text(raw: bytes) -> str:
    """The CSV text of an upload's JSON body ``{"csv": "..."}``."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InitlabError('an upload is JSON like {"csv": "x1,x2,label\\n0.5,1.2,1\\n..."}; this body is '
                           'not JSON.') from None
    if not isinstance(doc, dict) or not isinstance(doc.get("csv"), str):
        raise InitlabError('an upload is JSON like {"csv": "x1,x2,label\\n..."}: a "csv" field holding the '
                           'file\'s text.')
    return doc["csv"]


def dataset(X: np.ndarray, y: np.ndarray, seed: int = 0) -> Dataset:
    """Parsed points split 70/30 (the split drawn from ``seed``) and standardized, as built-ins are."""
    return split(X, y, np.random.default_rng(seed), name="custom", config={"name": "custom", "n": len(X)})


def parse(text: str) -> tuple[np.ndarray, np.ndarray]:
    """The points ``X`` (n, 2) and 0/1 labels ``y`` in CSV ``text``.

    Raises :class:`InitlabError` naming the first wrong row: wrong number of columns, a value that is
    not a finite number or of an absurd magnitude (beyond ``MAX_MAGNITUDE``), a label that is not 0 or
    1 (more than two classes), too few or too many rows. A leading byte-order mark is skipped.
    """
    text = text.removeprefix("\ufeff")  # a BOM, as spreadsheet programs write one
    if len(text.encode("utf-8")) > MAX_BYTES:
        raise TooLarge(f"the file is larger than {MAX_BYTES // 1024} KiB, the playground's limit for "
                       f"{MAX_ROWS} rows.")
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    if rows and all(_number(c.strip()) is None for c in rows[0]):
        rows = rows[1:]  # a header
    if len(rows) > MAX_ROWS:
        raise InitlabError(f"the file has {len(rows)} rows; the playground takes at most {MAX_ROWS}.")
    if len(rows) < MIN_ROWS:
        raise InitlabError(f"the file has {len(rows)} data rows; the playground needs at least {MIN_ROWS} "
                           f"({FORMAT}).")
    X, y = np.empty((len(rows), 2)), np.empty(len(rows))
    for i, row in enumerate(rows):
        if len(row) != 3:
            raise InitlabError(f"row {i + 1} has {len(row)} columns; the playground reads {FORMAT}.")
        values = [_number(c.strip()) for c in row]
        for col, (cell, v) in enumerate(zip(row, values)):
            if v is None:
                what = "label" if col == 2 else f"x{col + 1}"
                raise InitlabError(f"row {i + 1}: its {what} {cell.strip()[:40]!r} is not a finite number.")
            if col < 2 and _absurd(v):
                size = "large" if abs(v) > 1 else "small"
                raise InitlabError(f"row {i + 1}: its x{col + 1} {cell.strip()[:40]} is too {size} to standardize; "
                                   f"the playground takes values from {1 / MAX_MAGNITUDE:g} to {MAX_MAGNITUDE:g} "
                                   f"in size (or 0): rescale the column.")
        X[i], y[i] = values[:2], values[2]
    classes = sorted(set(y.tolist()))
    if len(classes) > 2 or not set(classes) <= {0.0, 1.0}:
        shown = ", ".join(f"{c:g}" for c in classes[:6]) + (", ..." if len(classes) > 6 else "")
        raise InitlabError(f"the labels take {len(classes)} values ({shown}); the playground classifies two "
                           f"classes: label each row 0 (white) or 1 (black).")
    counts = {c: int((y == c).sum()) for c in (0.0, 1.0)}
    if min(counts.values()) < MIN_PER_CLASS:
        raise InitlabError(f"the file has {counts[0.0]} rows labelled 0 and {counts[1.0]} labelled 1; each class "
                           f"needs at least {MIN_PER_CLASS}.")
    return X, y.astype(int)
