"""The commands that make and train one network: ``schemes``, ``init``, ``demo`` and ``train``."""

from __future__ import annotations

import json

import click

from ..errors import InitlabError
from ..outputs import FILES
from .base import ACTIVATION_HELP, FORCE, OPTIMIZER_HELP, check_mlp_size, command_line, examples, main, \
    mlp_options, out_console, out_folder, scheme_params, split_pairs, step_progress, widths_of


@main.command("schemes", epilog=examples("initlab schemes", "initlab schemes --json"))
@click.option("--json", "as_json", is_flag=True, help="Print the schemes as JSON.")
def schemes_cmd(as_json):
    """List every per-tensor scheme with its formula and parameters, then the recipes (schemes that
    know roles: residual branches, embeddings, the readout) with their formulas and the roles each needs."""
    from rich.table import Table

    from ..recipes import RECIPES
    from ..schemes import get, schemes

    rows = []
    for name in schemes():
        s = get(name)
        rows.append({"name": name, "kind": "scheme", "formula": s.formula, "params": s.params(),
                     "alias_of": s.alias_of})
    recipes = [{"name": r.name, "kind": "recipe", "formula": r.formula, "paper": r.paper, "params": dict(r.params),
                "needs": list(r.needs), "uses": list(r.uses)} for r in RECIPES.values()]
    if as_json:
        click.echo(json.dumps(rows + recipes, indent=2))
        return
    table = Table(title="initlab schemes", show_lines=False)
    for col in ("scheme", "formula", "parameters (defaults)"):
        table.add_column(col)
    for r in rows:
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items())
        table.add_row(r["name"], r["formula"], params or "-")
    out_console.print(table)
    table = Table(title="initlab recipes: schemes that know roles (initialize(model, 'gpt2', n_layer=12))")
    for col in ("recipe", "formula", "paper", "roles needed (and used when found)", "parameters (defaults)"):
        table.add_column(col)
    for r in recipes:
        roles = ", ".join(r["needs"]) + (f" ({', '.join(r['uses'])})" if r["uses"] else "")
        table.add_row(r["name"], r["formula"], r["paper"], roles,
                      ", ".join(f"{k}={v}" for k, v in r["params"].items()))
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
    return split_pairs(pairs, "an override is PATTERN=SCHEME, like out=xavier_uniform")


@main.command("init", epilog=examples("initlab init --scheme he_normal --depth 3 --width 64",
                                       "initlab init --scheme normal --param std=0.02 --override out=zeros --json"))
@_scheme_options
@mlp_options(depth=3, width=32)
@click.option("--activation", default="relu", show_default=True, help=ACTIVATION_HELP)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the initialization.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON (replayable).")
def init_cmd(scheme, params, overrides, depth, width, hidden, max_memory, activation, seed, as_json):
    """Initialize an MLP and print the manifest: what was drawn for every parameter."""
    from ..init import initialize
    from ..models import mlp

    widths = widths_of(depth, width, hidden)
    check_mlp_size(widths, 0, max_memory, "this network")
    model = mlp(2, widths, 1, activation)
    manifest = initialize(model, scheme, seed=seed, overrides=_overrides(overrides) or None,
                                      **scheme_params(params))
    click.echo(manifest.to_json() if as_json else manifest.table())


def _print_table(rows):
    from rich.table import Table

    from .. import experiment

    table = Table(title="initlab: the same network from each initialization")
    for col in ("scheme", "train acc", "test acc", "final loss", "step to 90%", "effective width", "diverged"):
        table.add_column(col, justify="left" if col == "scheme" else "right")
    for r in rows:
        loss = "n/a" if r["final_loss"] is None else f"{r['final_loss']:.4f}"
        table.add_row(r["scheme"], experiment.accuracy_text(r, "train"), experiment.accuracy_text(r), loss,
                      "never" if r["steps_to_90"] is None else str(r["steps_to_90"]),
                      "-" if r["effective_width"] is None else " ".join(map(str, r["effective_width"])),
                      f"at step {r['diverged_step']}" if r["diverged"] else "no")
    out_console.print(table)


def _json_rows(rows):
    keys = ("scheme", "train_accuracy", "test_accuracy", "final_loss", "steps_to_90", "effective_width",
            "diverged", "diverged_step", "output_signal")
    return {"results": [{k: r.get(k) for k in keys} for r in rows]}


def _common_run_options(f):
    f = click.option("--no-progress", is_flag=True, help="No progress bar.")(f)
    f = click.option("--json", "as_json", is_flag=True, help="Print the results table as JSON on stdout.")(f)
    f = click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)(f)
    f = click.option("--seed", type=int, default=0, show_default=True,
                     help="Seed of the initialization and of the minibatch order.")(f)
    return f


@main.command("demo", epilog=examples("initlab demo --quick", "initlab demo --out chapter --seed 1"))
@_common_run_options
@click.option("--out", default="initlab-out/demo", show_default=True, type=click.Path(file_okay=False),
              help="Folder for figures, results.json and index.html.")
@click.option("--quick", is_flag=True, help="A smaller, faster run (for tests and a first look).")
@FORCE
def demo_cmd(seed, device, as_json, no_progress, out, quick, force):
    """Reproduce the chapter: the same deep network from constant, default, Xavier, He, and too small
    and too large weights; figures, a table and a page in --out."""
    from .. import demo as demo_mod
    from ..jsonsafe import json_safe

    out_folder(out, "--out", FILES["experiment"], force)
    cfg = demo_mod.config(quick=quick, seed=seed, device=device)
    with step_progress(demo_mod.total_steps(cfg), not no_progress) as progress:
        records, extra = demo_mod.run(cfg, progress=progress)
    path = demo_mod.write(out, cfg, records, extra, command=command_line())
    rows = [r["row"] for r in records]
    if as_json:
        click.echo(json.dumps(json_safe(_json_rows(rows)), indent=2))
        return
    _print_table(rows)
    base = extra["baseline"]["logistic_regression_test_accuracy"]
    out_console.print(f"A straight line (logistic regression) reaches test accuracy {base:.3f} on this data.")
    out_console.print(f"Figures, results.json and the page: [bold]{path / 'index.html'}[/bold]")


@main.command("train", epilog=examples(
    "initlab train --scheme he_normal --depth 4 --width 32 --activation relu",
    "initlab train --scheme normal --param std=0.01 --dataset spiral --steps 500 --out runs/small"))
@_scheme_options
@_common_run_options
@click.option("--dataset", default="moons", show_default=True, help="moons, circles, blobs, xor, spiral.")
@click.option("--n", "n", type=int, default=1000, show_default=True, help="Points in the dataset.")
@click.option("--noise", type=float, default=0.2, show_default=True, help="Dataset noise.")
@click.option("--data-seed", type=int, default=0, show_default=True,
              help="Seed of the dataset's points and its train/test split.")
@mlp_options(depth=4, width=32)
@click.option("--activation", default="relu", show_default=True, help=ACTIVATION_HELP)
@click.option("--steps", type=int, default=2000, show_default=True, help="Training steps.")
@click.option("--lr", type=float, default=0.1, show_default=True, help="Learning rate.")
@click.option("--optimizer", default="sgd", show_default=True, help=OPTIMIZER_HELP)
@click.option("--weight-decay", type=float, default=None,
              help="For optimizers that take it (adamw; default 0.01).")
@click.option("--batch-size", type=int, default=None, help="Minibatch size (default: full batch).")
@click.option("--eval-every", type=int, default=10, show_default=True, help="Evaluate every this many steps.")
@click.option("--dtype", default="float32", show_default=True, help="float32 or float64.")
@click.option("--name", default=None, help="A name for the run, shown in the table and the page (default: the scheme).")
@click.option("--out", default="initlab-out/train", show_default=True, type=click.Path(file_okay=False),
              help="Folder for figures, results.json and index.html.")
@FORCE
def train_cmd(scheme, params, overrides, seed, device, as_json, no_progress, dataset, n, noise, data_seed, depth,
              width, hidden, max_memory, activation, steps, lr, optimizer, weight_decay, batch_size, eval_every, dtype,
              name, out, force):
    """Train one MLP from one scheme and write its figures, results.json and index.html to --out."""
    from .. import experiment, report
    from ..config import RunConfig
    from ..jsonsafe import json_safe
    from ..schemes import label_of, parse_spec

    if overrides:
        raise InitlabError("--override is for `initlab init`; `train` takes one --scheme and its --param.")
    spec = parse_spec({"name": scheme, "params": scheme_params(params)})
    cfg = RunConfig(dataset=dataset, n=n, noise=noise, data_seed=data_seed, hidden=widths_of(depth, width, hidden),
                    activation=activation, scheme=spec, optimizer=optimizer, lr=lr, weight_decay=weight_decay,
                    steps=steps, batch_size=batch_size, eval_every=eval_every, seed=seed, device=device, dtype=dtype)
    check_mlp_size(list(cfg.hidden), n, max_memory, "this training run", dtype, optimizer)
    out_folder(out, "--out", FILES["experiment"], force)
    data = cfg.data()
    label = name or label_of(spec)
    with step_progress(steps, not no_progress) as progress:
        cb = (lambda step, _m: progress(label, step, steps)) if progress else None
        record = experiment.run_scheme(cfg, spec, data, callback=cb, label=label)
    path = experiment.save(out, cfg, [record], data, command=command_line(), extra={"kind": "train"})
    page = report.render(path, path / "index.html")
    if as_json:
        click.echo(json.dumps(json_safe(_json_rows([record["row"]])), indent=2))
        return
    _print_table([record["row"]])
    out_console.print(f"Figures, results.json and the page: [bold]{page}[/bold]")
