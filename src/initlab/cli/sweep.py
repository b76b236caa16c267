"""The ``sweep`` and ``results`` commands: grids of models trained many at once into a results
store, and their summary across seeds. Registered on :func:`initlab.cli.base.main`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import InitlabError
from ..jsonsafe import json_safe
from ..metrics import interval_text
from ..store import METRICS
from .base import ACTIVATION_HELP, FORCE, OPTIMIZER_HELP, Number, command_line, err_console, examples, main, \
    number_or_text, out_console, out_file, out_folder, split_pairs, was_given, writable


def _grid_value(text: str):
    """One flag value: a number, a word, or ``log:LOW:HIGH:COUNT`` / ``linear:LOW:HIGH:COUNT``."""
    if text.startswith(("log:", "linear:")):
        kind, *parts = text.split(":")
        if len(parts) != 3:
            raise InitlabError(f"a grid is {kind}:LOW:HIGH:COUNT, like log:0.01:10:7; got '{text}'.")
        return {kind: [number_or_text(parts[0]), number_or_text(parts[1]), number_or_text(parts[2])]}
    return number_or_text(text)


def _flag_list(text: str) -> list:
    values = [_grid_value(v.strip()) for v in text.split(",") if v.strip()]
    return values[0] if len(values) == 1 and isinstance(values[0], dict) else values


def _seeds(text: str):
    """``--seeds``: a count (``5``: seeds 0..4) or, with commas, the seeds themselves (``0,3,7``)."""
    return [number_or_text(v.strip()) for v in text.split(",") if v.strip()] if "," in text else number_or_text(text)


def _flag_sweep(name, scheme, params, axes):
    """The settings of a sweep given by flags: schemes, their parameter grids and the axes."""
    from ..schemes import BIAS_PARAMS, get as get_scheme

    settings = {k: (_flag_list(v) if k != "seeds" else _seeds(v)) for k, v in axes.items() if v is not None}
    names = [s.strip() for s in (scheme or "default").split(",") if s.strip()]
    form = "--param is KEY=V1,V2,..., like std=0.01,0.1 or std=log:0.01:10:7"
    grids = {key: _flag_list(values) for key, values in split_pairs(params, form).items()}
    entries = []
    for s in names:
        found = get_scheme(s)  # as parse_spec: a per-tensor scheme also takes the biases' parameters
        accepted = set(found.params()) | (set(BIAS_PARAMS) if found.fn is not None else set())
        entries.append({"name": s, **{k: v for k, v in grids.items() if k in accepted}})
    for key in grids:
        if not any(key in e for e in entries):
            raise InitlabError(f"--param {key}: none of the schemes {', '.join(names)} takes '{key}'.")
    settings["scheme"] = entries
    return settings


def _from_flags(settings: dict, name: str):
    """A sweep from flag values; an error names the flag (``--param std`` for a scheme's parameter)."""
    from ..sweep import build

    def fail_at(key, message, index):
        flag = f"--param {key}" if index is not None and key not in ("scheme", "name") else \
            "--" + key.replace("_", "-")
        raise InitlabError(f"{flag}: {message}.")
    return build({"name": name, **settings}, fail_at, name=name)


def _sweep_progress(total: int, enabled: bool):
    """A progress bar on stderr for runs: done/total, runs per second, elapsed, ETA."""
    if not enabled:
        return None, None
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(),
                   TextColumn("{task.fields[done]}/{task.total} runs  {task.fields[rate]} runs/s"),
                   TimeElapsedColumn(), TimeRemainingColumn(), console=err_console)
    task = bar.add_task("sweep", total=total, done=0, rate="-")
    state = {}

    def update(done: float, _total: int) -> None:
        import time

        now = time.perf_counter()
        state.setdefault("start", (now, done))
        t0, d0 = state["start"]
        rate = f"{(done - d0) / (now - t0):.1f}" if now > t0 and done > d0 else "-"
        bar.update(task, completed=done, done=int(done), rate=rate)

    return bar, update


@main.command("sweep", epilog=examples(
    "initlab sweep --scheme default,normal --param std=log:0.01:10:7 --depth 2,8 --seeds 3 --out runs",
    "initlab sweep --preset trainability --size small"))
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--name", default=None,
              help="The sweep's name (default: the file's name key, else its file name, or 'sweep').")
@click.option("--scheme", default=None, help="Schemes, comma-separated: default,xavier_uniform,normal.")
@click.option("--param", "params", multiple=True, metavar="KEY=V1,V2",
              help="A scheme parameter's values, for every scheme that takes it: std=0.01,0.1 or std=log:0.01:10:7.")
@click.option("--depth", default=None, help="Hidden layers: 2,4,8.")
@click.option("--width", default=None, help="Units in each hidden layer: 16,32.")
@click.option("--activation", default=None, help=ACTIVATION_HELP[:-1] + " (comma-separated).")
@click.option("--dataset", default=None, help="moons, circles, blobs, xor, spiral (comma-separated).")
@click.option("--n", default=None, help="Points per dataset.")
@click.option("--noise", default=None, help="Dataset noise: 0.1,0.2.")
@click.option("--data-seed", default=None, help="Seeds of the dataset's points and split: 0,1.")
@click.option("--optimizer", default=None, help=OPTIMIZER_HELP[:-1] + " (comma-separated).")
@click.option("--lr", default=None, help="Learning rates: 0.01,0.1 or log:0.001:0.1:3.")
@click.option("--weight-decay", default=None, help="Weight decay of adamw: 0.01,0.1 (default: the optimizer's).")
@click.option("--steps", default=None, help="Training steps.")
@click.option("--batch-size", default=None, help="Minibatch sizes, or 'full'.")
@click.option("--eval-every", default=None, help="Evaluate every this many steps.")
@click.option("--dtype", default=None, help="float32 or float64.")
@click.option("--seeds", default=None,
              help="Seeds of the initialization per cell: how many (5: seeds 0..4), or which (0,3,7).")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Folder of the results store runs.db (default: initlab-out/<name>).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--group-size", type=click.IntRange(min=1), default=256, show_default=True,
              help="At most this many models train as one computation (and are stored in one transaction).")
@click.option("--dry-run", is_flag=True,
              help="Print the size estimate and the first cells with how many runs each has; train nothing.")
@click.option("--max-runs", type=click.IntRange(min=1), default=100_000, show_default=True,
              help="Refuse a sweep of more runs than this (raise it to run a larger grid).")
@click.option("--max-memory", type=Number(0), default=4.0, show_default=True, metavar="GB",
              help="Refuse a sweep whose estimated memory (its largest group and its list of runs) passes this.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.option("--preset", type=click.Choice(["trainability"]), default=None,
              help="A ready-made sweep: 'trainability' trains tanh MLPs over sigma_w^2 x depth and draws the "
                   "heatmap with mean-field theory's depth limit 6 xi_c over it.")
@click.option("--size", type=click.Choice(["small", "default", "large"]), default="default", show_default=True,
              help="The preset's grid: default runs on a 2-core CPU in minutes; large is for --device cuda.")
@click.option("--executor", "executor_name", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where groups train: in this process, or as Ray tasks (pip install 'initlab[ray]').")
@click.option("--address", default=None,
              help="With --executor ray: 'auto' (the cluster this machine joined) or HOST:PORT of the head node "
                   "(default: RAY_ADDRESS, else a Ray instance started for the sweep).")
def sweep_cmd(file, name, scheme, params, out, device, group_size, dry_run, max_runs, max_memory, no_progress,
              as_json, preset, size, executor_name, address, **axes):
    """Train a grid of models (schemes x depth x width x ... x seeds) from a sweep file or flags, many
    at once, into a results store that a rerun completes after an interruption. FILE is a sweep file
    (TOML: its keys are this command's flags; see the README)."""
    from .. import sweep as sweep_mod

    given = [k for k, v in axes.items() if v is not None] + (["scheme"] if scheme else []) + \
        (["param"] if params else [])
    if was_given("size") and not preset:
        raise InitlabError("--size is the grid of a --preset: add --preset trainability, or leave --size out.")
    if address is not None and executor_name != "ray":
        raise InitlabError("--address is for --executor ray: add it, or leave --address out.")
    sweep = _sweep_of(file, name, scheme, params, preset, size, axes, given)
    if name:
        sweep.name = name
    db = Path(out or Path("initlab-out") / sweep.name) / "runs.db"
    estimate = sweep_mod.estimate(sweep, group_size)  # from the axes' lengths: nothing is expanded yet
    if dry_run:
        _dry_run(sweep, estimate, db, max_runs, max_memory, as_json)
        return
    sweep_mod.check_size(estimate, max_runs, max_memory)
    writable(db.parent, "--out", folder=True)
    total = estimate["runs"]
    from .. import executors

    executor = executors.get(executor_name, address)
    executor.connect(device)  # a missing GPU, Ray or cluster is one line, before the bar
    bar, update = _sweep_progress(total, not no_progress)
    try:
        if bar:
            with bar:
                outcome = sweep_mod.run(sweep, db, device=device, group_size=group_size, progress=update,
                                        executor=executor)
        else:
            outcome = sweep_mod.run(sweep, db, device=device, group_size=group_size, executor=executor)
    except KeyboardInterrupt:
        kept = _stored(db, sweep)
        err_console.print(f"Interrupted: {kept} of {total} runs are kept in {db}. The same command resumes "
                          f"and trains the other {total - kept}: {command_line()}", soft_wrap=True)
        raise click.exceptions.Exit(130) from None
    except sweep_mod.GroupFailed as e:
        raise InitlabError(f"{e}: {command_line()}") from None
    outcome["store"] = str(db)
    if as_json:
        click.echo(json.dumps(outcome, indent=2))
        return
    others = f"{outcome['others']} trained by another sweep on this store, " if outcome["others"] else ""
    out_console.print(f"{outcome['total']} runs: {outcome['trained']} trained, {outcome['skipped']} already "
                      f"stored, {others}{outcome['diverged']} diverged, in {outcome['seconds']:.1f} s.")
    if outcome["kept"]:
        err_console.print(f"The store stayed locked: {len(outcome['kept'])} group(s) are kept beside it in "
                          f"{', '.join(outcome['kept'])}; the next sweep on this store imports "
                          f"them (the same command does).", soft_wrap=True)
    out_console.print(f"Store: [bold]{db}[/bold]   Summary: initlab results {db}")
    if preset == "trainability":
        _trainability_outputs(db)


def _sweep_of(file, name, scheme, params, preset, size, axes, given):
    """The sweep asked for: a --preset, a sweep FILE, or the axis flags (one of the three)."""
    from .. import sweep as sweep_mod

    if preset:
        if file or given:
            raise InitlabError("--preset is a whole sweep: give it alone (with --size, --out, --device).")
        from ..trainability import preset as trainability_preset

        def fail_at(key, message, _index):
            raise InitlabError(f"preset {preset}, {key}: {message}.")
        return sweep_mod.build(trainability_preset(size), fail_at)
    elif file:
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise InitlabError(f"give a sweep file or axis flags, not both (got the file and {flag}).")
        return sweep_mod.from_toml(file)
    else:
        return _from_flags(_flag_sweep(name, scheme, params, axes), name=name or "sweep")


def _stored(db: Path, sweep) -> int:
    """How many of ``sweep``'s runs the store at ``db`` holds (0 when there is no store yet)."""
    from ..store import Store, run_id

    if not db.is_file():
        return 0
    with Store(db, readonly=True) as store:
        done = store.finished()
    return sum(run_id(r) in done for r in sweep.iter_runs())


#: A dry run lists at most this many cells (a grid may have millions).
DRY_RUN_CELLS = 50


def _dry_run(sweep, estimate: dict, db: Path, max_runs: int, max_memory: float, as_json: bool) -> None:
    """Print the size estimate, then the first :data:`DRY_RUN_CELLS` cells with their runs and how
    many the store holds; the grid is walked no further than those cells."""
    import itertools

    from rich.table import Table

    from ..store import Store, run_id
    from ..sweep import check_size, size_text

    try:
        check_size(estimate, max_runs, max_memory)
        refused = None
    except InitlabError as e:
        refused = str(e)
    done = None
    if db.is_file() and refused is None:  # stored counts hash each listed run: only for a grid that may run
        with Store(db, readonly=True) as store:
            done = store.finished()
    cols = sweep.swept() or ["scheme"]
    rows = []
    for cell in itertools.islice(sweep.iter_cells(), DRY_RUN_CELLS):
        stored = "-" if done is None else str(sum(run_id({**cell, "seed": s}) in done for s in sweep.seeds))
        rows.append(([_cell_label(cell, c) for c in cols], stored))
    if as_json:
        click.echo(json.dumps({"runs": estimate["runs"], "estimate": estimate, "refused": refused,
                               "cells_total": estimate["cells"], "cells": [dict(zip(cols, k)) for k, _ in rows]},
                              indent=2))
        return
    out_console.print(f"Estimate: {size_text(estimate)}.", soft_wrap=True)
    if refused:
        err_console.print(f"Without --dry-run it would be refused: {refused}", soft_wrap=True)
    shown = "" if len(rows) == estimate["cells"] else f" (the first {len(rows)} of {estimate['cells']:,} cells)"
    table = Table(title=f"sweep '{sweep.name}': {estimate['runs']} runs in {estimate['groups']} groups -> {db}{shown}")
    for col in (*cols, "runs", "stored"):
        table.add_column(col)
    for labels, stored in rows:
        table.add_row(*labels, str(len(sweep.seeds)), stored)
    out_console.print(table)



def _trainability_outputs(db: Path) -> dict:
    """Analyze a trainability store: the heatmap with 6 xi_c over it and the fractions that trained."""
    from .. import plots
    from ..results import load
    from ..outputs import write_trainability
    from ..trainability import analyze

    result = analyze(load(db))
    png = plots.save_trainability(result, db.parent / "trainability")[0]
    write_trainability(db.parent / "trainability.json", result)
    within, beyond = result["within"], result["beyond"]
    def share(part):
        if part["trained"] is None:
            return "n/a"
        ci = "" if part.get("ci_low") is None else f", 95% interval {part['ci_low']:.0%} to {part['ci_high']:.0%}"
        return f"{part['trained']:.0%} of {part['runs']} runs{ci}"

    out_console.print(f"Trained well within the depth limit (depth <= 6 xi_c / 1.5): {share(within)}; "
                      f"well beyond it (depth >= 1.5 x 6 xi_c): {share(beyond)}.")
    out_console.print(f"Heatmap: [bold]{png}[/bold]")
    return result


def _cell_label(config: dict, key: str) -> str:
    if key == "scheme":
        from ..schemes import label_of as _label
        return _label(config["scheme"])
    value = config[key]
    return "full" if key == "batch_size" and value is None else str(value)


def _our_csv(path: Path) -> bool:
    """A CSV that ``results --csv`` wrote: its header starts with the store's columns."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().startswith("run_id,sweep,status,")
    except (OSError, UnicodeDecodeError):
        return False


@main.command("results", epilog=examples("initlab results runs/runs.db --by scheme,depth --threshold 0.85",
                                          "initlab results runs/runs.db --csv runs.csv --figures figs"))
@click.argument("path", type=click.Path())
@click.option("--metric", type=click.Choice(METRICS), default="test_accuracy", show_default=True,
              help="The number summarized across seeds.")
@click.option("--threshold", type=Number(0, 1), default=0.9, show_default=True,
              help="Test accuracy that counts as success (and whose first step is reported).")
@click.option("--by", default=None, help="Columns to group by, comma-separated (default: the swept axes).")
@click.option("--csv", "csv_path", default=None, type=click.Path(dir_okay=False),
              help="Write every run (one row each) as CSV.")
@click.option("--parquet", "parquet_path", default=None, type=click.Path(dir_okay=False),
              help="Write every run as Parquet (needs pyarrow).")
@click.option("--figures", default=None, type=click.Path(file_okay=False),
              help="Folder for a heatmap of two swept axes, curves with 95% bands and contour thumbnails.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@FORCE
def results_cmd(path, metric, threshold, by, csv_path, parquet_path, figures, as_json, force):
    """Summarize a results store across seeds: mean, std, 95% confidence interval, success rate and
    steps to the threshold, per cell."""
    from rich.table import Table

    from .. import results

    # the path given, whatever its suffix; a file in the way only when initlab wrote it (or --force)
    csv_path = out_file(csv_path and Path(csv_path), "--csv", force, ours=_our_csv)
    parquet_path = out_file(parquet_path and Path(parquet_path), "--parquet", force)
    out_folder(figures, "--figures", ("heatmap.png", "curves.png", "thumbnails.png"), force)
    df = results.load(path)
    if df.empty:
        raise InitlabError(f"'{path}' holds no runs yet.")
    swept = results.swept_axes(df) or ["scheme"]
    columns = [c.strip() for c in by.split(",")] if by else swept
    for c in columns:
        if c not in df:
            raise InitlabError(f"--by: no column '{c}'; columns: {', '.join(c for c in results.AXES if c in df)}.")
    summary = results.summarize(df, by=columns, metric=metric, threshold=threshold)
    for target, fmt in ((csv_path, "csv"), (parquet_path, "parquet")):
        if target:
            target.parent.mkdir(parents=True, exist_ok=True)
            results.export(df, target, fmt)
    if figures:
        from .. import plots

        written = plots.sweep_figures(df, figures, axes=swept, metric=metric)
        err_console.print(f"Figures: {', '.join(str(p) for p in written.values())}")
    if as_json:
        click.echo(json.dumps(json_safe(summary.to_dict(orient="records")), indent=2, default=str))
        return
    table = Table(title=f"{len(df)} runs in {len(summary)} cells: {metric} across seeds "
                        f"(success: test accuracy >= {threshold:g})")
    for col in (*columns, "runs", "mean ± std", "95% CI", "success", f"steps to {threshold:g}", "diverged"):
        table.add_column(col, justify="left" if col in columns else "right")
    fmt = lambda v, f=".3f": "-" if v != v else format(v, f)  # noqa: E731  (v != v: NaN)
    for r in summary.to_dict(orient="records"):
        table.add_row(*(str(r[c]) if c != "batch_size" or r[c] == r[c] else "full" for c in columns),
                      str(r["runs"]), f"{fmt(r['mean'])} ± {fmt(r['std'])}",
                      interval_text(r["ci_low"], r["ci_high"], r["measured"]),
                      f"{r['success_rate']:.0%} ({interval_text(r['success_low'], r['success_high'], r['runs'], 2)})",
                      fmt(r["steps_to_threshold"], ".0f"), f"{r['diverged']:.0%}")
    out_console.print(table)
