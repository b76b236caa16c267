"""``initlab report``: the page of a demo, train, diagnose or audit folder, a watched run or a sweep's store."""

from __future__ import annotations

import click

from .base import FORCE, PAGE_ASSETS, err_console, examples, main, out_console, out_file


@main.command("report", epilog=examples("initlab report initlab-out/demo --lang he --open",
                                         "initlab report initlab-out/sweep/runs.db --out sweep.html"))
@click.argument("path", type=click.Path(exists=True))
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="The page to write (default: report.html beside PATH).")
@click.option("--lang", default="en", show_default=True,
              help="en, or he for a demo's or a train folder's page in Hebrew (right to left, Hebrew figures).")
@click.option("--open", "open_page", is_flag=True, help="Open the page in the default browser.")
@FORCE
def report_cmd(path, out, lang, open_page, force):
    """One self-contained HTML page for a demo or train folder, a diagnose or audit folder, a watched run
    (watch.json) or a sweep database.
    A sweep's figures go beside the page, named after it (page.html: page-heatmap.png ...)."""
    from .. import report

    target = report.target(path, out)
    out_file(target, "--out" if out else "the page", force, report.written_by_initlab,
              beside=tuple(report.asset(target, name) for name in PAGE_ASSETS))
    target.parent.mkdir(parents=True, exist_ok=True)
    page = report.render(path, out, lang)
    out_console.print(f"Page: [bold]{page}[/bold]")
    if open_page:
        import webbrowser

        try:
            opened = webbrowser.open(page.resolve().as_uri())
        except webbrowser.Error:
            opened = False
        if not opened:
            err_console.print("No browser could be opened here; open the page above yourself.")
