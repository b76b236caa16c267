"""The ``initlab`` command: thin commands over the library. Each parses, calls, prints.

Bad input (an :class:`InitlabError`) becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from contextlib import contextmanager

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

os.environ.setdefault("MPLBACKEND", "Agg")  # figures are written to files, never shown

from . import demo as demo_mod  # noqa: E402
from . import experiment  # noqa: E402
from .schemes import get, initialize, parse_spec, schemes  # noqa: E402
from ._version import __version__  # noqa: E402
from .errors import InitlabError  # noqa: E402
from .models import mlp, parse_hidden  # noqa: E402

out_console = Console(width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True)


class BadInput(click.ClickException):
    """A one-line error for bad input, exit code 2."""

    exit_code = 2


class Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except InitlabError as e:
            raise BadInput(str(e)) from None


def _value(text: str):
    """A parameter value from the command line: a number where it reads as one."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _params(pairs: tuple[str, ...]) -> dict:
    params = {}
    for pair in pairs:
        if "=" not in pair:
            raise InitlabError(f"a scheme parameter is KEY=VALUE, like std=0.01; got '{pair}'.")
        key, value = pair.split("=", 1)
        params[key.strip()] = _value(value.strip())
    return params


def _command_line() -> str:
    return "initlab " + " ".join(shlex.quote(a) for a in sys.argv[1:])


@contextmanager
def _progress(total: int, enabled: bool):
    """A progress bar on stderr; yields ``update(label, step, steps)`` for the library's callbacks."""
    if not enabled:
        yield None
        return
    bar = Progress(TextColumn("{task.description:<28}"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                   TimeElapsedColumn(), TimeRemainingColumn(), console=err_console, transient=False)
    state = {"done": 0, "last": {}}
    with bar:
        task = bar.add_task("starting", total=total)

        def update(label: str, step: int, steps: int) -> None:
            prev = state["last"].get(label, 0)
            if step > prev:
                state["done"] += step - prev
                state["last"][label] = step
                if step % 10 == 0 or step == steps:
                    bar.update(task, completed=state["done"], description=label)

        yield update
        bar.update(task, completed=total, description="done")


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="initlab")
def main():
    """initlab: see, measure and fix how neural networks start.

    Start with `initlab demo`: the chapter on parameter initialization, trained and drawn.
    """


@main.command("schemes")
@click.option("--json", "as_json", is_flag=True, help="Print the schemes as JSON.")
def schemes_cmd(as_json):
    """List every initialization scheme with its formula and parameters."""
    rows = []
    for name in schemes():
        s = get(name)
        rows.append({"name": name, "formula": s.formula, "params": s.params(), "alias_of": s.alias_of})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="initlab schemes", show_lines=False)
    for col in ("scheme", "formula", "parameters (defaults)"):
        table.add_column(col)
    for r in rows:
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items())
        table.add_row(r["name"], r["formula"], params or "-")
    out_console.print(table)


def _scheme_options(f):
    f = click.option("--override", "overrides", multiple=True, metavar="PATTERN=SCHEME",
                     help="Another scheme for the layers whose name matches PATTERN, e.g. out=xavier_uniform.")(f)
    f = click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
                     help="A scheme parameter, e.g. std=0.01, value=0.05, nonlinearity=tanh, bias=0.1.")(f)
    f = click.option("--scheme", default="default", show_default=True,
                     help="The initialization scheme (see `initlab schemes`).")(f)
    return f


def _overrides(pairs):
    result = {}
    for pair in pairs:
        if "=" not in pair:
            raise InitlabError(f"an override is PATTERN=SCHEME, like out=xavier_uniform; got '{pair}'.")
        pattern, name = pair.split("=", 1)
        result[pattern] = name
    return result


@main.command("init")
@_scheme_options
@click.option("--hidden", default="32,32,32", show_default=True, help="Hidden widths: 32,32,32 or 32x3.")
@click.option("--activation", default="relu", show_default=True, help="relu, leaky_relu, tanh, sigmoid, gelu, identity.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON (replayable).")
def init_cmd(scheme, params, overrides, hidden, activation, seed, as_json):
    """Initialize an MLP and print the manifest: what was drawn for every parameter."""
    model = mlp(2, parse_hidden(hidden), 1, activation)
    manifest = initialize(model, scheme, seed=seed, overrides=_overrides(overrides) or None,
                                      **_params(params))
    click.echo(manifest.to_json() if as_json else manifest.table())


def _print_table(rows):
    table = Table(title="initlab: the same network from each initialization")
    for col in ("scheme", "train acc", "test acc", "final loss", "step to 90%", "effective width", "diverged"):
        table.add_column(col, justify="left" if col == "scheme" else "right")
    for r in rows:
        loss = "nan" if r["final_loss"] is None else f"{r['final_loss']:.4f}"
        table.add_row(r["scheme"], f"{r['train_accuracy']:.3f}", f"{r['test_accuracy']:.3f}", loss,
                      "never" if r["steps_to_90"] is None else str(r["steps_to_90"]),
                      "-" if r["effective_width"] is None else " ".join(map(str, r["effective_width"])),
                      f"at step {r['diverged_step']}" if r["diverged"] else "no")
    out_console.print(table)


def _json_rows(rows):
    keys = ("scheme", "train_accuracy", "test_accuracy", "final_loss", "steps_to_90", "effective_width",
            "diverged", "diverged_step")
    return {"results": [{k: r[k] for k in keys} for r in rows]}


def _common_run_options(f):
    f = click.option("--no-progress", is_flag=True, help="No progress bar.")(f)
    f = click.option("--json", "as_json", is_flag=True, help="Print the results table as JSON on stdout.")(f)
    f = click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)(f)
    f = click.option("--seed", type=int, default=0, show_default=True, help="Seed of the initialization.")(f)
    return f


@main.command("demo")
@_common_run_options
@click.option("--out", default="initlab-out/demo", show_default=True, type=click.Path(file_okay=False),
              help="Folder for figures, results.json and index.html.")
@click.option("--quick", is_flag=True, help="A smaller, faster run (for tests and a first look).")
def demo_cmd(seed, device, as_json, no_progress, out, quick):
    """Reproduce the chapter: the same deep network from constant, default, Xavier, He, and too small
    and too large weights; figures, a table and a page in --out."""
    cfg = demo_mod.config(quick=quick, seed=seed, device=device)
    with _progress(demo_mod.total_steps(cfg), not no_progress) as progress:
        records, extra = demo_mod.run(cfg, progress=progress)
    path = demo_mod.write(out, cfg, records, extra, command=_command_line())
    rows = [r["row"] for r in records]
    if as_json:
        click.echo(json.dumps(experiment._json_safe(_json_rows(rows)), indent=2))
        return
    _print_table(rows)
    base = extra["baseline"]["logistic_regression_test_accuracy"]
    out_console.print(f"A straight line (logistic regression) reaches test accuracy {base:.3f} on this data.")
    out_console.print(f"Figures, results.json and the page: [bold]{path / 'index.html'}[/bold]")


@main.command("train")
@_scheme_options
@_common_run_options
@click.option("--dataset", default="moons", show_default=True, help="moons, circles, blobs, xor, spiral.")
@click.option("--n", "n", type=int, default=1000, show_default=True, help="Points in the dataset.")
@click.option("--noise", type=float, default=0.2, show_default=True)
@click.option("--hidden", default="32,32,32,32", show_default=True, help="Hidden widths: 32,32,32 or 32x3.")
@click.option("--activation", default="relu", show_default=True, help="relu, leaky_relu, tanh, sigmoid, gelu, identity.")
@click.option("--steps", type=int, default=2000, show_default=True)
@click.option("--lr", type=float, default=0.1, show_default=True)
@click.option("--optimizer", default="sgd", show_default=True, help="sgd or adam.")
@click.option("--batch-size", type=int, default=None, help="Minibatch size (default: full batch).")
@click.option("--dtype", default="float32", show_default=True, help="float32 or float64.")
@click.option("--out", default="initlab-out/train", show_default=True, type=click.Path(file_okay=False))
def train_cmd(scheme, params, overrides, seed, device, as_json, no_progress, dataset, n, noise, hidden,
              activation, steps, lr, optimizer, batch_size, dtype, out):
    """Train one MLP from one scheme and write its figures, results.json and index.html to --out."""
    if overrides:
        raise InitlabError("--override is for `initlab init`; `train` takes one --scheme and its --param.")
    cfg = experiment.ExperimentConfig(dataset=dataset, n=n, noise=noise, hidden=hidden, activation=activation,
                                      steps=steps, lr=lr, optimizer=optimizer, batch_size=batch_size,
                                      seed=seed, device=device, dtype=dtype)
    spec = parse_spec({"name": scheme, "params": _params(params)})
    data = cfg.data()
    label = experiment.label_of(spec)
    with _progress(steps, not no_progress) as progress:
        cb = (lambda step, _m: progress(label, step, steps)) if progress else None
        record = experiment.run_scheme(cfg, spec, data, callback=cb)
    from . import report

    path = experiment.save(out, cfg, [record], data, command=_command_line(), extra={"kind": "train"})
    page = report.render(path)
    if as_json:
        click.echo(json.dumps(experiment._json_safe(_json_rows([record["row"]])), indent=2))
        return
    _print_table([record["row"]])
    out_console.print(f"Figures, results.json and the page: [bold]{page}[/bold]")


if __name__ == "__main__":  # pragma: no cover
    main()
