"""``initlab watch-demo``: a small CNN trained from a bad and a good start, watched, and its page."""

from __future__ import annotations

import click

from .base import FORCE, command_line, examples, main, out_console, out_folder


@main.command("watch-demo", epilog=examples("initlab watch-demo --out initlab-out/watch",
                                             "initlab watch-demo --quick --out /tmp/w"))
@click.option("--out", default="initlab-out/watch", show_default=True, type=click.Path(file_okay=False),
              help="Folder for watch.json and its page, index.html.")
@click.option("--quick", is_flag=True, help="A few steps only (seconds): to see the page, not the training.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the data, the weights and the batches.")
@FORCE
def watch_demo_cmd(out, quick, seed, force):
    """See what initlab.watch shows: a small CNN learns a synthetic image task twice, from a bad start
    (every weight from N(0, 1)) and a good one (He normal, a small readout), in a plain PyTorch loop
    with the watch's two lines; both runs go on one page."""
    from ..outputs import FILES
    from ..watchdemo import watch_demo

    folder = out_folder(out, "--out", FILES["watch"], force)
    result = watch_demo(folder, quick=quick, seed=seed, command=command_line())
    for name, w in result["runs"].items():
        counts = ", ".join(f"{k} {v}" for k, v in sorted(w.record.alert_counts.items())) or "none"
        out_console.print(f"[bold]{name}[/bold]: alerts {counts}. {w.first_loss['message']}")
    out_console.print(f"Page: [bold]{result['page']}[/bold]")
