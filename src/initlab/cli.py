"""The ``initlab`` command: thin commands over the library. Each parses, calls, prints.

Bad input (an :class:`InitlabError`) becomes one line on stderr and exit code 2; a file that cannot be
written or read while a command works (an :class:`OSError`) becomes one line and exit code 1.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import sys
from contextlib import contextmanager
from pathlib import Path

import click
from click.core import ParameterSource
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

os.environ.setdefault("MPLBACKEND", "Agg")  # figures are written to files, never shown

from . import demo as demo_mod  # noqa: E402
from . import experiment  # noqa: E402
from .init import initialize  # noqa: E402
from .schemes import get, parse_spec, schemes  # noqa: E402
from ._version import __version__  # noqa: E402
from .errors import InitlabError  # noqa: E402
from .jsonsafe import json_safe  # noqa: E402
from .models import mlp, parse_hidden  # noqa: E402

out_console = Console(width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True)


INPUT_SEED_OFFSET = 0x5EED_1A7E_2B


class BadInput(click.ClickException):
    """A one-line error for bad input, exit code 2."""

    exit_code = 2


class AliasOption(click.Option):
    """An option's old name, kept working: hidden from ``--help``, checked by the same type, and its value
    given to the option named ``alias_of`` (by :class:`Command`), as if the new name had been used."""

    def __init__(self, param_decls, alias_of: str, **kwargs):
        old = param_decls[0]
        super().__init__([old, "alias_" + old.lstrip("-").replace("-", "_")], hidden=True, **kwargs)
        self.alias_of = alias_of


class Command(click.Command):
    """A command whose old option names (:class:`AliasOption`) still work as the new ones."""

    def parse_args(self, ctx, args):
        rest = super().parse_args(ctx, args)
        for alias in [p for p in self.params if isinstance(p, AliasOption)]:
            value = ctx.params.pop(alias.name, None)
            source = ctx.get_parameter_source(alias.name)
            if source in (None, ParameterSource.DEFAULT):
                continue
            new = next(p for p in self.params if p.name == alias.alias_of)
            if ctx.get_parameter_source(new.name) not in (None, ParameterSource.DEFAULT):
                raise BadInput(f"{alias.opts[0]} is the old name of {new.opts[0]}: give {new.opts[0]} alone.")
            ctx.params[new.name] = value
            ctx.set_parameter_source(new.name, source)
        return rest


class Group(click.Group):
    command_class = Command

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except InitlabError as e:
            raise BadInput(str(e)) from None
        except OSError as e:  # the disk, not the input: a folder that went away, a full disk, no permission
            where = f"'{e.filename}': " if e.filename else ""
            raise click.ClickException(f"cannot use {where}{e.strerror or e}.") from None


class Number(click.FloatRange):
    """A finite number, within a range when given (click's FloatRange lets nan and inf through)."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


def _given(name: str) -> bool:
    """Whether the current command's option ``name`` was given (on the command line or by environment)."""
    return click.get_current_context().get_parameter_source(name) not in (ParameterSource.DEFAULT, None)


def _writable(path, flag: str, folder: bool = False) -> Path | None:
    """Check, before any work, that ``path`` (a folder, or a file) can be written: it is of the right
    kind and writable, or the nearest folder above it that exists is one we may create it in. Nothing
    is created. Raises an :class:`InitlabError` that names ``flag`` and the path. ``None`` passes."""
    if path is None:
        return None
    path = Path(path)
    kind = "folder" if folder else "file"
    if path.exists():
        if folder and not path.is_dir():
            raise InitlabError(f"{flag} '{path}' is a file, not a folder; give a folder to write into.")
        if not folder and path.is_dir():
            raise InitlabError(f"{flag} '{path}' is a folder; give a file name inside it, like "
                               f"'{path / ('x' + (path.suffix or '.out'))}'.")
        if not os.access(path, os.W_OK | (os.X_OK if folder else 0)):
            raise InitlabError(f"{flag} '{path}' is read-only; give a {kind} you may write to.")
        return path
    above = path.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        raise InitlabError(f"{flag} '{path}' cannot be created: '{above}' is a file, not a folder.")
    if not os.access(above, os.W_OK | os.X_OK):
        raise InitlabError(f"{flag} '{path}' cannot be created: the folder '{above}' is read-only.")
    return path


#: The files `train` and `demo` write into --out, and those `diagnose` writes.
RUN_FILES = ("results.json", "arrays.npz", "index.html",
             *(f"{name}.{ext}" for name in ("contours", "curves", "scale", "symmetry") for ext in ("png", "svg")))
DIAGNOSE_FILES = ("diagnoses.json", "diagnose.png", "diagnose.svg")
#: The figures a page may write beside itself (see :func:`initlab.report.asset`).
PAGE_ASSETS = ("heatmap", "curves", "thumbnails", "trainability")

_FORCE = click.option("--force", is_flag=True, help="Overwrite files in the way that initlab did not write.")


def _refuse(flag: str, path: Path, known: bool = True) -> InitlabError:
    why = "initlab did not write it" if known else "initlab cannot tell whether it wrote it"
    return InitlabError(f"{flag}: '{path}' exists and {why}; give another path, or add --force to overwrite it.")


def _out_folder(out, flag: str, writes: tuple[str, ...], force: bool) -> Path | None:
    """:func:`_writable`, and a folder that does not hold this command's own output (its marker, the
    first of ``writes``: see :func:`initlab.outputs.is_initlab_folder`) must not hold a file of
    ``writes`` unless ``force``."""
    from .outputs import is_initlab_folder

    path = _writable(out, flag, folder=True)
    if path is None or force or not path.is_dir() or is_initlab_folder(path, writes[0]):
        return path
    for name in writes:
        if (path / name).exists():
            raise _refuse(flag, path / name, known=writes[0] in ("results.json", "diagnoses.json"))
    return path


def _out_file(path, flag: str, force: bool, ours=None, beside: tuple[Path, ...] = ()) -> Path | None:
    """:func:`_writable`, and the file (and the files ``beside`` it that go with it) must be new, or
    ``ours(path)`` (a file initlab wrote, where that can be told), unless ``force``."""
    path = _writable(path, flag)
    if path is None or force or (path.exists() and ours is not None and ours(path)):
        return path
    for p in (path, *beside):
        if p.exists():
            raise _refuse(flag, p, known=ours is not None)
    return path


def _mlp_options(depth: int, width: int):
    """``--depth`` and ``--width`` of a built-in MLP (as in `initlab sweep` and the playground), and the
    old ``--hidden 32,32,32`` / ``32x3``, hidden from ``--help``; :func:`_widths` reads them."""
    def decorate(f):
        f = click.option("--max-memory", type=Number(0), default=4.0, show_default=True, metavar="GB",
                         help="Refuse a network whose estimated memory is over this many GB.")(f)
        f = click.option("--hidden", default=None, hidden=True)(f)
        f = click.option("--width", type=click.IntRange(min=1), default=width, show_default=True,
                         help="Units in each hidden layer.")(f)
        f = click.option("--depth", type=click.IntRange(min=1), default=depth, show_default=True,
                         help="Hidden layers.")(f)
        return f
    return decorate


def _check_mlp_size(widths: list[int], n: int, max_memory: float, what: str, dtype: str = "float32",
                    optimizer: str = "sgd") -> None:
    """The sweep's one size estimate (:func:`initlab.sweep.estimate`) for a single MLP on ``n`` points,
    checked before anything is allocated."""
    from . import sweep as sw

    axes = {k: [v] for k, v in sw.DEFAULTS.items()}
    axes.update(width=[max(widths)], depth=[len(widths)], n=[max(n, 1)],
                dtype=[dtype if dtype in sw.DTYPE_BYTES else "float32"],
                optimizer=[optimizer if optimizer in sw.OPTIMIZER_STATES else "sgd"])
    sw.check_size(sw.estimate(sw.Sweep(axes=axes), group_size=1), None, max_memory, what)


def _widths(depth: int, width: int, hidden: str | None) -> list[int]:
    """The hidden widths: ``[width] * depth``, or the old ``--hidden`` (which may also give unequal widths)."""
    if hidden is None:
        return [width] * depth
    given = [f for f in ("depth", "width") if _given(f)]
    if given:
        flags = " and ".join("--" + f for f in given)
        raise InitlabError(f"--hidden is the old form of --depth and --width: give {flags} without --hidden.")
    return parse_hidden(hidden)


def _value(text: str):
    """A parameter value from the command line: a number where it reads as one."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _split_pairs(pairs, form: str) -> dict[str, str]:
    """``("a=1", "b=2")`` -> ``{"a": "1", "b": "2"}``; ``form`` says what a pair should look like."""
    result = {}
    for pair in pairs:
        if "=" not in pair:
            raise InitlabError(f"{form}; got '{pair}'.")
        key, value = pair.split("=", 1)
        result[key.strip()] = value.strip()
    return result


def _params(pairs: tuple[str, ...]) -> dict:
    return {k: _value(v) for k, v in _split_pairs(pairs, "a scheme parameter is KEY=VALUE, like std=0.01").items()}


def _examples(*lines: str) -> str:
    """A command's epilog: its examples, one per line, kept as written by ``--help``."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


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


@main.command("schemes", epilog=_examples("initlab schemes", "initlab schemes --json"))
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
    return _split_pairs(pairs, "an override is PATTERN=SCHEME, like out=xavier_uniform")


@main.command("init", epilog=_examples("initlab init --scheme he_normal --depth 3 --width 64",
                                       "initlab init --scheme normal --param std=0.02 --override out=zeros --json"))
@_scheme_options
@_mlp_options(depth=3, width=32)
@click.option("--activation", default="relu", show_default=True, help="relu, leaky_relu, tanh, sigmoid, gelu, identity.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the initialization.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON (replayable).")
def init_cmd(scheme, params, overrides, depth, width, hidden, max_memory, activation, seed, as_json):
    """Initialize an MLP and print the manifest: what was drawn for every parameter."""
    widths = _widths(depth, width, hidden)
    _check_mlp_size(widths, 0, max_memory, "this network")
    model = mlp(2, widths, 1, activation)
    manifest = initialize(model, scheme, seed=seed, overrides=_overrides(overrides) or None,
                                      **_params(params))
    click.echo(manifest.to_json() if as_json else manifest.table())


def _print_table(rows):
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


@main.command("demo", epilog=_examples("initlab demo --quick", "initlab demo --out chapter --seed 1"))
@_common_run_options
@click.option("--out", default="initlab-out/demo", show_default=True, type=click.Path(file_okay=False),
              help="Folder for figures, results.json and index.html.")
@click.option("--quick", is_flag=True, help="A smaller, faster run (for tests and a first look).")
@_FORCE
def demo_cmd(seed, device, as_json, no_progress, out, quick, force):
    """Reproduce the chapter: the same deep network from constant, default, Xavier, He, and too small
    and too large weights; figures, a table and a page in --out."""
    _out_folder(out, "--out", RUN_FILES, force)
    cfg = demo_mod.config(quick=quick, seed=seed, device=device)
    with _progress(demo_mod.total_steps(cfg), not no_progress) as progress:
        records, extra = demo_mod.run(cfg, progress=progress)
    path = demo_mod.write(out, cfg, records, extra, command=_command_line())
    rows = [r["row"] for r in records]
    if as_json:
        click.echo(json.dumps(json_safe(_json_rows(rows)), indent=2))
        return
    _print_table(rows)
    base = extra["baseline"]["logistic_regression_test_accuracy"]
    out_console.print(f"A straight line (logistic regression) reaches test accuracy {base:.3f} on this data.")
    out_console.print(f"Figures, results.json and the page: [bold]{path / 'index.html'}[/bold]")


@main.command("train", epilog=_examples(
    "initlab train --scheme he_normal --depth 4 --width 32 --activation relu",
    "initlab train --scheme normal --param std=0.01 --dataset spiral --steps 500 --out runs/small"))
@_scheme_options
@_common_run_options
@click.option("--dataset", default="moons", show_default=True, help="moons, circles, blobs, xor, spiral.")
@click.option("--n", "n", type=int, default=1000, show_default=True, help="Points in the dataset.")
@click.option("--noise", type=float, default=0.2, show_default=True, help="Dataset noise.")
@click.option("--data-seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the dataset's points and its train/test split.")
@_mlp_options(depth=4, width=32)
@click.option("--activation", default="relu", show_default=True, help="relu, leaky_relu, tanh, sigmoid, gelu, identity.")
@click.option("--steps", type=int, default=2000, show_default=True, help="Training steps.")
@click.option("--lr", type=float, default=0.1, show_default=True, help="Learning rate.")
@click.option("--optimizer", default="sgd", show_default=True, help="sgd or adam.")
@click.option("--batch-size", type=int, default=None, help="Minibatch size (default: full batch).")
@click.option("--eval-every", type=int, default=10, show_default=True, help="Evaluate every this many steps.")
@click.option("--dtype", default="float32", show_default=True, help="float32 or float64.")
@click.option("--name", default=None, help="A name for the run, shown in the table and the page (default: the scheme).")
@click.option("--out", default="initlab-out/train", show_default=True, type=click.Path(file_okay=False),
              help="Folder for figures, results.json and index.html.")
@_FORCE
def train_cmd(scheme, params, overrides, seed, device, as_json, no_progress, dataset, n, noise, data_seed, depth,
              width, hidden, max_memory, activation, steps, lr, optimizer, batch_size, eval_every, dtype, name, out,
              force):
    """Train one MLP from one scheme and write its figures, results.json and index.html to --out."""
    if overrides:
        raise InitlabError("--override is for `initlab init`; `train` takes one --scheme and its --param.")
    _check_mlp_size(_widths(depth, width, hidden), n, max_memory, "this training run", dtype, optimizer)
    _out_folder(out, "--out", RUN_FILES, force)
    cfg = experiment.ExperimentConfig(dataset=dataset, n=n, noise=noise, data_seed=data_seed,
                                      hidden=_widths(depth, width, hidden), activation=activation, steps=steps,
                                      lr=lr, optimizer=optimizer, batch_size=batch_size, eval_every=eval_every,
                                      seed=seed, device=device, dtype=dtype)
    spec = parse_spec({"name": scheme, "params": _params(params)})
    data = cfg.data()
    label = name or experiment.label_of(spec)
    with _progress(steps, not no_progress) as progress:
        cb = (lambda step, _m: progress(label, step, steps)) if progress else None
        record = experiment.run_scheme(cfg, spec, data, callback=cb, label=label)
    from . import report

    path = experiment.save(out, cfg, [record], data, command=_command_line(), extra={"kind": "train"})
    page = report.render(path, path / "index.html")
    if as_json:
        click.echo(json.dumps(json_safe(_json_rows([record["row"]])), indent=2))
        return
    _print_table([record["row"]])
    out_console.print(f"Figures, results.json and the page: [bold]{page}[/bold]")


@main.command("diagnose", epilog=_examples(
    "initlab diagnose --depth 30 --width 256 --scheme xavier_uniform,he_normal",
    "initlab diagnose --model mymodels:make_cnn --input-shape 3,32,32 --out diag"))
@_mlp_options(depth=30, width=256)
@click.option("--activation", default="relu", show_default=True, help="The MLP's activation.")
@click.option("--in-features", type=click.IntRange(min=1), default=None,
              help="MLP input size (default: --width).")
@click.option("--model", "model_path", default=None, metavar="PACKAGE.MODULE:FACTORY",
              help="Diagnose your own model: a factory returning an nn.Module (instead of the built-in MLP).")
@click.option("--input-shape", default=None, metavar="C,H,W",
              help="Shape of one input for --model, without the batch dimension, e.g. 3,32,32 (or 128: "
                   "a sequence of 128 token ids, with --input-dtype long).")
@click.option("--input-dtype", type=click.Choice(["float", "long"], case_sensitive=False), default="float",
              show_default=True, help="float: standard normal inputs; long: token ids, for a --model that starts "
                                      "with an Embedding (needs --vocab).")
@click.option("--vocab", type=click.IntRange(min=1), default=None, metavar="N",
              help="With --input-dtype long: token ids are drawn uniformly from 0 to N - 1.")
@click.option("--scheme", "scheme_list", default=None,
              help="Comma-separated schemes to compare, e.g. xavier_uniform,he_normal,default,lsuv "
                   "(default: the model as built).")
@click.option("--input-batch", type=click.IntRange(min=2), default=512, show_default=True,
              help="How many random inputs go through the model at once (the batch of one forward pass).")
@click.option("--batch", cls=AliasOption, alias_of="input_batch", type=click.IntRange(min=2), default=None)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the inputs and the schemes.")
@click.option("--json", "as_json", is_flag=True, help="Print the diagnoses as JSON.")
@click.option("--out", default=None, type=click.Path(file_okay=False), help="Folder for the plot and the JSON.")
@_FORCE
def diagnose_cmd(depth, width, hidden, max_memory, activation, in_features, model_path, input_shape, input_dtype,
                 vocab, scheme_list, input_batch, seed, as_json, out, force):
    """Report card at initialization: per-layer std of activations and gradients, measured and
    predicted, and a verdict (vanishing, exploding, symmetric, dead, saturated) with a fix."""
    import torch

    from .diagnose import compare, load_factory

    schemes_to_try = [s.strip() for s in scheme_list.split(",") if s.strip()] if scheme_list is not None \
        else [None]
    if not schemes_to_try:
        raise InitlabError(f"--scheme names schemes to compare, like xavier_uniform,he_normal; got '{scheme_list}'.")
    mlp_flags = [f"--{n.replace('_', '-')}" for n in ("depth", "width", "hidden", "activation", "in_features")
                 if _given(n)]
    if model_path and mlp_flags:
        flags = " and ".join([", ".join(mlp_flags[:-1]), mlp_flags[-1]] if len(mlp_flags) > 1 else mlp_flags)
        raise InitlabError(f"{flags} {'is' if len(mlp_flags) == 1 else 'are'} for the built-in MLP; "
                           f"--model builds your own: leave {'it' if len(mlp_flags) == 1 else 'them'} out.")
    if input_shape is not None and not model_path:
        raise InitlabError("--input-shape is for --model; the built-in MLP's input size is --in-features.")
    _out_folder(out, "--out", DIAGNOSE_FILES, force)
    for s in schemes_to_try:
        if s is not None:
            get(s)  # an unknown name fails here, before any work
    tokens = input_dtype.lower() == "long"
    if tokens and vocab is None:
        raise InitlabError("--input-dtype long needs --vocab N: token ids are drawn from 0 to N - 1 (N is your "
                           "Embedding's num_embeddings).")
    if not tokens and vocab is not None:
        raise InitlabError("--vocab is for token ids: add --input-dtype long, or leave --vocab out for float inputs.")
    if tokens and not model_path:
        raise InitlabError("--input-dtype long is for a --model that takes token ids; the built-in MLP takes "
                           "float inputs.")
    if model_path:
        if not input_shape:
            raise InitlabError("--model needs --input-shape, the shape of one input, e.g. 3,32,32.")
        try:
            shape = [int(v) for v in input_shape.split(",")]
        except ValueError:
            raise InitlabError(f"--input-shape is like 3,32,32; got '{input_shape}'.") from None
        if any(v < 1 for v in shape):
            raise InitlabError(f"--input-shape needs sizes of at least 1, like 3,32,32; got '{input_shape}'.")
        factory = load_factory(model_path)
    else:
        widths = _widths(depth, width, hidden)
        _check_mlp_size([*widths, in_features or widths[0]], input_batch, max_memory, "this diagnosis")
        shape = [in_features or widths[0]]
        factory = lambda: mlp(shape[0], widths, 1, activation)  # noqa: E731
    # the inputs' stream must differ from the schemes' (same seed, same numbers: W would copy X)
    gen = torch.Generator().manual_seed(seed + INPUT_SEED_OFFSET)
    inputs = (torch.randint(0, vocab, (input_batch, *shape), generator=gen) if tokens
              else torch.randn(input_batch, *shape, generator=gen))
    try:
        with torch.random.fork_rng(devices=[]):  # a model "as built" draws from the global stream: seed it too
            torch.manual_seed(seed)
            diagnoses = compare(factory, inputs, schemes_to_try, seed=seed)
    except InitlabError as e:
        if tokens and "IndexError" in str(e):  # a token id past the end of an Embedding
            raise InitlabError(f"{e} (is --vocab {vocab} larger than the model's Embedding?)") from None
        raise
    docs = [d.to_dict() for d in diagnoses]
    if out:
        from . import plots

        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        plots.save_figure(plots.diagnosis_panels(docs), folder / "diagnose")
        stored = {"diagnoses": docs, "command": _command_line(), "environment": experiment.environment()}
        (folder / "diagnoses.json").write_text(json.dumps(json_safe(stored), indent=2))
    if as_json:
        click.echo(json.dumps({"diagnoses": docs}, indent=2))
        return
    for d in diagnoses:
        out_console.rule(f"[bold]{d.scheme}[/bold]")
        click.echo(d.table())
    if out:
        out_console.print(f"Plot: [bold]{Path(out) / 'diagnose.png'}[/bold]")


# --------------------------------------------------------------------------------------------------
# sweeps and their results (issue 4)

@main.command("theory", epilog=_examples(
    "initlab theory --activation tanh",
    "initlab theory --activation tanh --sigma-w2 1.5 --scheme xavier_uniform,he_normal --plot phase.png"))
@click.option("--activation", default="tanh", show_default=True, help="relu, leaky_relu, tanh, sigmoid, gelu, identity.")
@click.option("--sigma-w2", type=Number(min=0, min_open=True), default=None,
              help="Weight variance times fan_in (default: the critical one).")
@click.option("--sigma-b2", type=Number(min=0), default=0.05, show_default=True, help="Bias variance.")
@click.option("--scheme", "scheme_list", default=None,
              help="Comma-separated schemes to place on the diagram, e.g. xavier_uniform,he_normal,default.")
@click.option("--width", type=click.IntRange(min=1), default=256, show_default=True,
              help="Layer width for --scheme points.")
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON.")
@click.option("--plot", "plot_path", default=None, type=click.Path(dir_okay=False),
              help="Draw the phase diagram to this PNG (and SVG beside it).")
@_FORCE
def theory_cmd(activation, sigma_w2, sigma_b2, scheme_list, width, as_json, plot_path, force):
    """Mean-field theory: q*, chi_1, depth scales, the phase (ordered, critical, chaotic) and the
    critical sigma_w^2 for an activation, with an optional phase diagram."""
    from . import theory

    theory.activation_functions(activation)  # an unknown name fails here
    names = [s.strip() for s in scheme_list.split(",") if s.strip()] if scheme_list is not None else []
    if scheme_list is not None and not names:
        raise InitlabError(f"--scheme names schemes to place, like xavier_uniform,he_normal; got '{scheme_list}'.")
    if _given("width") and not names:
        raise InitlabError("--width is the layer width of the --scheme points: give --scheme too, "
                           "or leave --width out.")
    stem = None
    if plot_path:
        stem = plot_path[:-4] if plot_path.lower().endswith(".png") else plot_path
        _out_file(stem + ".png", "--plot", force, beside=(Path(stem + ".svg"),))
    critical = theory.critical_sigma_w2(activation, sigma_b2)
    point = sigma_w2 if sigma_w2 is not None else critical
    if point is None:
        raise InitlabError(f"{activation} has no critical sigma_w^2 at sigma_b^2={sigma_b2:g}; give --sigma-w2.")
    mf = theory.mean_field(activation, point, sigma_b2).to_dict()
    points = []
    for name in names:
        sw, sb = theory.scheme_sigmas(name, width)
        points.append({"label": name, "sigma_w2": sw, "sigma_b2": sb,
                       **{k: v for k, v in theory.mean_field(activation, sw, sb).to_dict().items()
                          if k in ("chi_1", "xi_c", "phase")}})
    if plot_path:
        import numpy as np

        from . import plots

        top = max(4.0, 1.3 * max([point] + [p["sigma_w2"] for p in points]))
        grid = theory.phase_grid(activation, np.linspace(0.05, top, 36), np.linspace(0, max(0.3, 1.3 * sigma_b2), 22))
        fig, ax = plots.plt.subplots(figsize=(8, 5.2))
        plots.phase_diagram(grid, [{"label": f"sigma_w^2={point:.3g}", "sigma_w2": point, "sigma_b2": sigma_b2}]
                            + points, ax=ax)
        Path(stem).parent.mkdir(parents=True, exist_ok=True)
        plots.save_figure(fig, stem)
    if as_json:
        click.echo(json.dumps(json_safe({**mf, "points": points}), indent=2))
        return
    table = Table(title=f"mean-field theory: {activation}, sigma_b^2 = {sigma_b2:g}")
    for col in ("sigma_w^2", "q*", "chi_1", "xi_q", "xi_c", "phase"):
        table.add_column(col, justify="right")
    rows = [(f"{point:.4g}", mf)] + [(f"{p['sigma_w2']:.4g} ({p['label']})", theory.mean_field(
        activation, p["sigma_w2"], p["sigma_b2"]).to_dict()) for p in points]
    for label, r in rows:
        table.add_row(label, f"{r['q_star']:.4g}", f"{r['chi_1']:.4f}", f"{r['xi_q']:.3g}", f"{r['xi_c']:.3g}", r["phase"])
    out_console.print(table)
    crit = "none" if critical is None else f"{critical:.4f}"
    out_console.print(f"critical sigma_w^2 (chi_1 = 1) at sigma_b^2 = {sigma_b2:g}: {crit}")
    if plot_path:
        out_console.print(f"Phase diagram: [bold]{plot_path}[/bold]")


@main.command("report", epilog=_examples("initlab report initlab-out/demo --lang he --open",
                                         "initlab report initlab-out/sweep/runs.db --out sweep.html"))
@click.argument("path", type=click.Path(exists=True))
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="The page to write (default: report.html beside PATH).")
@click.option("--lang", default="en", show_default=True,
              help="en, or he for a demo's or a train folder's page in Hebrew (right to left, Hebrew figures).")
@click.option("--open", "open_page", is_flag=True, help="Open the page in the default browser.")
@_FORCE
def report_cmd(path, out, lang, open_page, force):
    """One self-contained HTML page for a demo or train folder, a diagnose folder or a sweep database.
    A sweep's figures go beside the page, named after it (page.html: page-heatmap.png ...)."""
    from . import report

    target = report.target(path, out)
    _out_file(target, "--out" if out else "the page", force, report.written_by_initlab,
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


from . import cli_sweep  # noqa: E402,F401  (registers `sweep` and `results` on main)

if __name__ == "__main__":  # pragma: no cover
    main()


# --------------------------------------------------------------------------------------------------
# the live playground (issue 8)

@main.command("playground", epilog=_examples(
    "initlab playground", "initlab playground --port 8001 --settings 'scheme=constant&scheme=he_normal&depth=6'"))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback lets anyone who can reach the port use it.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--no-open", is_flag=True, help="Do not open the browser.")
@click.option("--settings", "query", default="", metavar="QUERY",
              help="Settings to open with, as in the page's URL: scheme=constant&scheme=xavier_uniform&depth=6.")
@click.option("--max-sessions", type=click.IntRange(min=1), default=32, show_default=True,
              help="Browser tabs served at once.")
@click.option("--idle-timeout", type=Number(min=0, min_open=True), default=60.0, show_default=True,
              help="Seconds after which a session no tab is watching is freed.")
def playground_cmd(host, port, no_open, query, max_sessions, idle_timeout):
    """Train networks live in the browser: pick a dataset, a network and schemes, press play, and watch
    the boundary, the per-layer scales and the symmetry change step by step."""
    from urllib.parse import parse_qsl

    from .playground import Manager, parse, serve

    settings = parse(parse_qsl(query.lstrip("?"), keep_blank_values=True))
    _check_port(host, port)  # before the address is printed: a port in use would print another server's
    import ipaddress

    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        err_console.print(f"[bold yellow]warning:[/bold yellow] listening on {host}: anyone who can reach port "
                          f"{port} can use this playground (and its CPU).")
    url_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    click.echo(f"initlab playground: http://{url_host}:{port}/?{settings.query()}  (Ctrl+C stops it)")
    serve(host, port, open_browser=not no_open, query=settings.query(),
          manager=Manager(max_sessions=max_sessions, idle_timeout=idle_timeout))


def _check_port(host: str, port: int) -> None:
    """Refuse, in one line, a port that is in use or a host that is not this machine's, by binding to it
    as the server will (SO_REUSEADDR, as uvicorn does) and letting go at once."""
    import errno
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as e:
        raise InitlabError(f"--host '{host}' is not an address ({e.strerror}); use 127.0.0.1, or 0.0.0.0 for "
                           f"every address of this machine.") from None
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise InitlabError(f"port {port} is in use (another server, maybe another playground); "
                                   f"choose another with --port, like --port {port + 1 if port < 65535 else 8000}."
                                   ) from None
            if e.errno == errno.EADDRNOTAVAIL:
                raise InitlabError(f"--host '{host}' is not an address of this machine; use 127.0.0.1, or 0.0.0.0 "
                                   f"for every address.") from None
            raise InitlabError(f"cannot listen on {host}:{port}: {e.strerror}; try another --port.") from None
