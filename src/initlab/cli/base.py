"""What every command of ``initlab`` shares: the group :func:`main`, errors as one line, the
common options and types, the checks of output paths, the examples epilog and the progress bar.

Bad input (an :class:`InitlabError`) becomes one line on stderr and exit code 2; a file that cannot be
written or read while a command works (an :class:`OSError`) becomes one line and exit code 1.

The command modules import this one and never each other. Nothing here imports torch, scikit-learn
or matplotlib: ``initlab --help`` stays fast, and each command imports the library inside its body.
"""

from __future__ import annotations

import math
import os
import shlex
import sys
from contextlib import contextmanager
from pathlib import Path

import click
from click.core import ParameterSource
from rich.console import Console

from .. import activations, optimizers
from .._version import __version__
from ..errors import InitlabError

os.environ.setdefault("MPLBACKEND", "Agg")  # figures are written to files, never shown

out_console = Console(width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True)

#: Help lines read from the tables, never written out here.
ACTIVATION_HELP = activations.help_text()
OPTIMIZER_HELP = ", ".join(optimizers.names()) + "."

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


def was_given(name: str) -> bool:
    """Whether the current command's option ``name`` was given (on the command line or by environment)."""
    return click.get_current_context().get_parameter_source(name) not in (ParameterSource.DEFAULT, None)


def writable(path, flag: str, folder: bool = False) -> Path | None:
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


#: The figures a page may write beside itself (see :func:`initlab.report.asset`).
PAGE_ASSETS = ("heatmap", "curves", "thumbnails", "trainability")

FORCE = click.option("--force", is_flag=True, help="Overwrite files in the way that initlab did not write.")


def _refuse(flag: str, path: Path, known: bool = True) -> InitlabError:
    why = "initlab did not write it" if known else "initlab cannot tell whether it wrote it"
    return InitlabError(f"{flag}: '{path}' exists and {why}; give another path, or add --force to overwrite it.")


def out_folder(out, flag: str, writes: tuple[str, ...], force: bool) -> Path | None:
    """:func:`writable`, and a folder that does not hold this command's own output (its marker, the
    first of ``writes``: see :func:`initlab.outputs.is_initlab_folder`) must not hold a file of
    ``writes`` unless ``force``."""
    from ..outputs import is_initlab_folder

    path = writable(out, flag, folder=True)
    if path is None or force or not path.is_dir() or is_initlab_folder(path, writes[0]):
        return path
    for name in writes:
        if (path / name).exists():
            raise _refuse(flag, path / name, known=writes[0] in ("results.json", "diagnoses.json"))
    return path


def out_file(path, flag: str, force: bool, ours=None, beside: tuple[Path, ...] = ()) -> Path | None:
    """:func:`writable`, and the file (and the files ``beside`` it that go with it) must be new, or
    ``ours(path)`` (a file initlab wrote, where that can be told), unless ``force``."""
    path = writable(path, flag)
    if path is None or force or (path.exists() and ours is not None and ours(path)):
        return path
    for p in (path, *beside):
        if p.exists():
            raise _refuse(flag, p, known=ours is not None)
    return path


def mlp_options(depth: int, width: int):
    """``--depth`` and ``--width`` of a built-in MLP (as in `initlab sweep` and the playground), and the
    old ``--hidden 32,32,32`` / ``32x3``, hidden from ``--help``; :func:`widths_of` reads them."""
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


def check_mlp_size(widths: list[int], n: int, max_memory: float, what: str, dtype: str = "float32",
                    optimizer: str = "sgd") -> None:
    """The sweep's one size estimate (:func:`initlab.sweep.estimate`) for a single MLP on ``n`` points,
    checked before anything is allocated."""
    from .. import sweep as sw

    axes = {k: [v] for k, v in sw.DEFAULTS.items()}
    axes.update(width=[max(widths)], depth=[len(widths)], n=[max(n, 1)],
                dtype=[dtype if dtype in sw.DTYPE_BYTES else "float32"],
                optimizer=[optimizer if optimizer in optimizers.OPTIMIZERS else "sgd"])
    sw.check_size(sw.estimate(sw.Sweep(axes=axes), group_size=1), None, max_memory, what)


def widths_of(depth: int, width: int, hidden: str | None) -> list[int]:
    """The hidden widths: ``[width] * depth``, or the old ``--hidden`` (which may also give unequal widths)."""
    from ..models import parse_hidden

    if hidden is None:
        return [width] * depth
    given = [f for f in ("depth", "width") if was_given(f)]
    if given:
        flags = " and ".join("--" + f for f in given)
        raise InitlabError(f"--hidden is the old form of --depth and --width: give {flags} without --hidden.")
    return parse_hidden(hidden)


def parse_input_shape(text: str | None) -> list[int]:
    """``--input-shape 3,32,32`` -> ``[3, 32, 32]`` (the shape of one input of a ``--model``, required)."""
    if not text:
        raise InitlabError("--model needs --input-shape, the shape of one input, e.g. 3,32,32.")
    try:
        shape = [int(v) for v in text.split(",")]
    except ValueError:
        raise InitlabError(f"--input-shape is like 3,32,32; got '{text}'.") from None
    if any(v < 1 for v in shape):
        raise InitlabError(f"--input-shape needs sizes of at least 1, like 3,32,32; got '{text}'.")
    return shape


def token_options(f):
    """``--input-dtype float|long`` and ``--vocab N``: random float inputs, or token ids for a ``--model``
    that starts with an Embedding (diagnose, signal); :func:`token_inputs` checks them."""
    f = click.option("--vocab", type=click.IntRange(min=1), default=None, metavar="N",
                     help="With --input-dtype long: token ids are drawn uniformly from 0 to N - 1.")(f)
    return click.option("--input-dtype", type=click.Choice(["float", "long"], case_sensitive=False), default="float",
                        show_default=True, help="float: standard normal inputs; long: token ids, for a --model that "
                                                "starts with an Embedding (needs --vocab).")(f)


def token_inputs(input_dtype: str, vocab: int | None, model_path: str | None) -> bool:
    """Whether the inputs are token ids (``--input-dtype long``), checked against --vocab and --model."""
    tokens = input_dtype.lower() == "long"
    if tokens and vocab is None:
        raise InitlabError("--input-dtype long needs --vocab N: token ids are drawn from 0 to N - 1 (N is your "
                           "Embedding's num_embeddings).")
    if not tokens and vocab is not None:
        raise InitlabError("--vocab is for token ids: add --input-dtype long, or leave --vocab out for float inputs.")
    if tokens and not model_path:
        raise InitlabError("--input-dtype long is for a --model that takes token ids; the built-in MLP takes "
                           "float inputs.")
    return tokens


def past_vocab(e: InitlabError, vocab: int, model=None, inputs=None) -> InitlabError:
    """A model's IndexError on token ids, with its cause: the ``nn.Embedding`` of ``model`` whose table
    ``inputs`` overflow (:func:`overflowing_embedding`), named with what to give instead: a smaller
    --vocab when the token ids overflow it, a shorter --input-shape when the positions do. Without a
    model (or when no Embedding overflows), both causes are named."""
    if "IndexError" not in str(e):
        return e
    found = None if model is None or inputs is None else overflowing_embedding(model, inputs)
    if found is None:
        return InitlabError(f"{e} (is --vocab {vocab} more than the model's token Embedding has rows, or the "
                            f"sequence longer than a position Embedding?)")
    name, rows, index, positions = found
    length = inputs.shape[-1]
    if positions:
        shape = ",".join([*map(str, inputs.shape[1:-1]), str(rows)])
        return InitlabError(f"{e}: the sequence of {length} tokens is longer than Embedding '{name}' ({rows} "
                            f"positions); give --input-shape {shape} or less.")
    if index < vocab:
        return InitlabError(f"{e}: token ids go up to {vocab - 1} (--vocab {vocab}), past the end of Embedding "
                            f"'{name}' ({rows} rows); give --vocab {rows} or less.")
    return InitlabError(f"{e}: Embedding '{name}' ({rows} rows) was given index {index}.")


def overflowing_embedding(model, inputs) -> tuple[str, int, int, bool] | None:
    """The first ``nn.Embedding`` of ``model`` (in call order) given an index outside its table when
    the first two rows of ``inputs`` go through it: ``(name, num_embeddings, the index, whether the
    indices were positions)``, positions being ``0 .. T - 1`` along the inputs' last axis rather than
    the inputs themselves; None when none is."""
    import torch
    from torch import nn

    class Found(Exception):
        pass

    x = inputs[:2]
    names = {m: n for n, m in model.named_modules()}

    def positions(idx) -> bool:  # 0 .. T - 1 along the last axis, not the ids themselves
        length = x.shape[-1]
        if idx.shape[-1] != length or (idx.shape == x.shape and torch.equal(idx, x)):
            return False
        return bool((idx.reshape(-1, length) == torch.arange(length, device=idx.device)).all())

    def check(module, args):
        idx = args[0] if args else None
        if not isinstance(idx, torch.Tensor) or idx.numel() == 0:
            return
        low, high = int(idx.min()), int(idx.max())
        if low < 0 or high >= module.num_embeddings:
            raise Found(names.get(module, type(module).__name__), module.num_embeddings,
                        high if high >= module.num_embeddings else low, positions(idx))

    handles = [m.register_forward_pre_hook(check) for m in model.modules() if isinstance(m, nn.Embedding)]
    try:
        with torch.no_grad():
            model(x)
    except Found as found:
        return found.args
    except Exception:  # another failure than an Embedding's: no cause to name
        return None
    finally:
        for h in handles:
            h.remove()
    return None


def number_or_text(text: str):
    """A parameter value from the command line: a number where it reads as one."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def split_pairs(pairs, form: str) -> dict[str, str]:
    """``("a=1", "b=2")`` -> ``{"a": "1", "b": "2"}``; ``form`` says what a pair should look like."""
    result = {}
    for pair in pairs:
        if "=" not in pair:
            raise InitlabError(f"{form}; got '{pair}'.")
        key, value = pair.split("=", 1)
        result[key.strip()] = value.strip()
    return result


def scheme_params(pairs: tuple[str, ...]) -> dict:
    return {k: number_or_text(v) for k, v in split_pairs(pairs, "a scheme parameter is KEY=VALUE, like std=0.01").items()}


def examples(*lines: str) -> str:
    """A command's epilog: its examples, one per line, kept as written by ``--help``."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def command_line() -> str:
    return "initlab " + " ".join(shlex.quote(a) for a in sys.argv[1:])


@contextmanager
def step_progress(total: int, enabled: bool):
    """A progress bar on stderr; yields ``update(label, step, steps)`` for the library's callbacks."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

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
