"""Which page for which path: :func:`render` reads a demo or train folder, a diagnose folder or a
sweep's database and writes its page with the part that makes it."""

from __future__ import annotations

from pathlib import Path

from ..errors import InitlabError
from .audit import render_audit
from .base import target
from .diagnosis import render_diagnoses
from .experiment import render_experiment
from .signal import render_signal
from .sweep import sweep_page
from .text import TEXT
from .watch import render_watch


def render(path: str | Path, out: str | Path | None = None, lang: str = "en") -> Path:
    """Write the page for what ``path`` holds and return the page's path.

    ``path`` is a demo or train output folder (``results.json``), a diagnose output (a folder with
    ``diagnoses.json``, or that file), an audit folder (``audit.json``), a signal folder (``signal.json``), a watched run (``watch.json``,
    its folder, or a ``.json`` file of kind watch), or a sweep's database (``runs.db`` or its folder). The page is
    ``out`` when given, else ``report.html`` beside what was read (:func:`target`). What is read is
    checked first (:mod:`initlab.outputs`): a field of the wrong type is one :class:`InitlabError`.
    ``lang="he"``: a demo or train folder's page in Hebrew, with its figures drawn in Hebrew beside the
    English ones (``contours-he.png``); anything else is refused. A sweep's figures are written beside
    the page under names derived from it (:func:`asset`)."""
    path = Path(path)
    if lang not in TEXT:
        raise InitlabError(f"unknown language '{lang}'; use one of {', '.join(TEXT)}.")
    folder = path if path.is_dir() else path.parent
    page_path = target(path, out)
    if (folder / "results.json").is_file() and (path.is_dir() or path.name == "results.json"):
        return render_experiment(folder, page_path, lang)
    if lang != "en":
        raise InitlabError(f"--lang {lang} is for the demo's report and a train folder's; this is neither.")
    if path.name == "diagnoses.json" or (path.is_dir() and (path / "diagnoses.json").is_file()):
        return render_diagnoses(folder, page_path)
    if path.name == "audit.json" or (path.is_dir() and (path / "audit.json").is_file()):
        return render_audit(folder, page_path)
    if path.name == "signal.json" or (path.is_dir() and (path / "signal.json").is_file()):
        return render_signal(folder, page_path)
    if path.name == "watch.json" or (path.is_dir() and (path / "watch.json").is_file()) or _is_watch_file(path):
        return render_watch(path, page_path)
    db = path if path.suffix == ".db" else path / "runs.db"
    if db.is_file():
        html = sweep_page(db, page_path.parent, prefix=f"{page_path.stem}-")
        page_path.write_text(html, encoding="utf-8")
        return page_path
    raise InitlabError(f"'{path}' is not something initlab can report on: give a demo or train folder "
                       f"(results.json), a diagnose folder (diagnoses.json), an audit folder (audit.json), a signal folder "
                       f"(signal.json)"
                       f", a watched run (watch.json) or a sweep database (runs.db).")


def _is_watch_file(path: Path) -> bool:
    """A ``.json`` file of kind ``watch`` under another name (``Watch.save("run1.json")``)."""
    if not (path.is_file() and path.suffix == ".json"):
        return False
    try:
        with open(path, encoding="utf-8") as f:
            return '"kind": "watch"' in f.read(200)
    except (OSError, UnicodeDecodeError):
        return False
