"""The page of an audit folder (``audit.json``): whether the model holds what its recipe says, the
table of tensor groups with expected beside measured, and the tensors that failed, look untouched,
are tied or are covered by no rule."""

from __future__ import annotations

from pathlib import Path

from ..audit import tied_text, unchecked_text, uncovered_text, untouched_text
from ..escaping import esc
from ..outputs import check_audit, read_json
from ..schemes import label_of
from ..tables import html_table
from .base import scroll_box, write_page

COLUMNS = ["role", "layer", "tensor", "tensors", "n", "check", "expected", "measured", "tolerance", "result"]


def _rows(groups: list[dict]) -> list[dict]:
    return [{**g, "tensors": len(g.get("tensors") or []), "result": "pass" if g["passed"] else "FAIL"} for g in groups]


def _listing(title: str, items: list, describe, shown: int = 12) -> str:
    """A titled list, each item a sentence by ``describe`` (a stored item that is not a dict, as
    written by an older initlab, as it is); past ``shown`` items the rest fold under "and N more"."""
    if not items:
        return ""
    li = [f"<li>{esc(describe(i) if isinstance(i, dict) else i)}</li>" for i in items]
    more = (f"<details><summary>and {len(li) - shown} more</summary><ul>{''.join(li[shown:])}</ul></details>"
            if len(li) > shown else "")
    return f"<h3>{esc(title)} ({len(items)})</h3><ul>{''.join(li[:shown])}</ul>{more}"


def audit_body(audit: dict) -> tuple[str, str]:
    """The verdict line and the body of an audit's page."""
    groups = audit.get("groups") or []
    failed = [g for g in groups if not g["passed"]]
    recipe = audit.get("recipe")
    recipe = label_of(recipe) if isinstance(recipe, dict) and "name" in recipe else recipe
    if audit["passed"]:
        verdict = f"<b>Passed.</b> Every one of {len(groups)} groups of tensors holds what {esc(recipe)} says."
    else:
        verdict = (f"<b>Failed.</b> {len(failed)} of {len(groups)} groups of tensors do not hold what "
                   f"{esc(recipe)} says.")
    tol = audit.get("tolerance") or {}
    body = (f"<p class='small'>A group passes when its measured std is within {esc(tol.get('sigmas', 5))} "
            f"standard errors of the expected one, plus {esc(round(100 * tol.get('floor', 0.01), 3))}%; "
            f"constants are compared exactly; every tensor is also checked alone.</p>"
            f"{scroll_box(html_table(COLUMNS, _rows(groups)))}"
            f"{_listing('Failing groups', audit.get('failures') or [], str)}"
            f"{_listing('Looks untouched (PyTorch default)', audit.get('untouched') or [], untouched_text)}"
            f"{_listing('Tied tensors', audit.get('tied') or [], tied_text)}"
            f"{_listing('Covered by no rule', audit.get('uncovered') or [], uncovered_text)}"
            f"{_listing('Not checked', audit.get('unchecked') or [], unchecked_text)}")
    return verdict, body


def render_audit(folder: Path, page_path: Path) -> Path:
    """Write the page of the audit folder ``folder`` to ``page_path``."""
    stored = check_audit(read_json(folder / "audit.json"), folder / "audit.json")
    verdict, body = audit_body(stored["audit"])
    return write_page(page_path, "initlab audit", verdict, body, stored)
