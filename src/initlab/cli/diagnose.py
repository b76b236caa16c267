"""``initlab diagnose``: the report card at initialization of the built-in MLP or any model."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import InitlabError
from .base import FORCE, AliasOption, check_mlp_size, command_line, examples, main, mlp_options, \
    out_console, out_folder, parse_input_shape, past_vocab, token_inputs, token_options, was_given, widths_of

#: The inputs' random stream is the seed plus this: never the stream a scheme draws its weights from.
INPUT_SEED_OFFSET = 0x5EED_1A7E_2B


@main.command("diagnose", epilog=examples(
    "initlab diagnose --depth 30 --width 256 --scheme xavier_uniform,he_normal",
    "initlab diagnose --model mymodels:make_cnn --input-shape 3,32,32 --out diag"))
@mlp_options(depth=30, width=256)
@click.option("--activation", default="relu", show_default=True, help="The MLP's activation.")
@click.option("--in-features", type=click.IntRange(min=1), default=None,
              help="MLP input size (default: --width).")
@click.option("--model", "model_path", default=None, metavar="PACKAGE.MODULE:FACTORY",
              help="Diagnose your own model: a factory returning an nn.Module (instead of the built-in MLP).")
@click.option("--input-shape", default=None, metavar="C,H,W",
              help="Shape of one input for --model, without the batch dimension, e.g. 3,32,32 (or 128: "
                   "a sequence of 128 token ids, with --input-dtype long).")
@token_options
@click.option("--scheme", "scheme_list", default=None,
              help="Comma-separated schemes to compare, e.g. xavier_uniform,he_normal,default,lsuv "
                   "(default: the model as built).")
@click.option("--input-batch", type=click.IntRange(min=2), default=512, show_default=True,
              help="How many random inputs go through the model at once (the batch of one forward pass).")
@click.option("--batch", cls=AliasOption, alias_of="input_batch", type=click.IntRange(min=2), default=None)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the inputs and the schemes.")
@click.option("--json", "as_json", is_flag=True, help="Print the diagnoses as JSON.")
@click.option("--out", default=None, type=click.Path(file_okay=False), help="Folder for the plot and the JSON.")
@FORCE
def diagnose_cmd(depth, width, hidden, max_memory, activation, in_features, model_path, input_shape, input_dtype,
                 vocab, scheme_list, input_batch, seed, as_json, out, force):
    """Report card at initialization: per-layer std of activations and gradients, measured and
    predicted, and a verdict (vanishing, exploding, symmetric, dead, saturated) with a fix."""
    import torch

    from ..diagnose import scheme_spec, build, compare, load_factory
    from ..models import mlp

    schemes_to_try = [s.strip() for s in scheme_list.split(",") if s.strip()] if scheme_list is not None \
        else [None]
    if not schemes_to_try:
        raise InitlabError(f"--scheme names schemes to compare, like xavier_uniform,he_normal; got '{scheme_list}'.")
    mlp_flags = [f"--{n.replace('_', '-')}" for n in ("depth", "width", "hidden", "activation", "in_features")
                 if was_given(n)]
    if model_path and mlp_flags:
        flags = " and ".join([", ".join(mlp_flags[:-1]), mlp_flags[-1]] if len(mlp_flags) > 1 else mlp_flags)
        raise InitlabError(f"{flags} {'is' if len(mlp_flags) == 1 else 'are'} for the built-in MLP; "
                           f"--model builds your own: leave {'it' if len(mlp_flags) == 1 else 'them'} out.")
    if input_shape is not None and not model_path:
        raise InitlabError("--input-shape is for --model; the built-in MLP's input size is --in-features.")
    from ..outputs import FILES

    out_folder(out, "--out", FILES["diagnose"], force)
    for s in schemes_to_try:
        if s is not None:
            scheme_spec(s)  # the library's check (schemes and recipes): an unknown name fails here, before any work
    tokens = token_inputs(input_dtype, vocab, model_path)
    if model_path:
        shape = parse_input_shape(input_shape)
        factory = load_factory(model_path)
    else:
        widths = widths_of(depth, width, hidden)
        check_mlp_size([*widths, in_features or widths[0]], input_batch, max_memory, "this diagnosis")
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
        if tokens:  # an index past the end of an Embedding: the token ids', or the positions'
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = build(factory)
            raise past_vocab(e, vocab, model, inputs) from None
        raise
    docs = [d.to_dict() for d in diagnoses]
    if out:
        _write_folder(Path(out), docs)
    if as_json:
        click.echo(json.dumps({"diagnoses": docs}, indent=2))
        return
    for d in diagnoses:
        out_console.rule(f"[bold]{d.scheme}[/bold]")
        click.echo(d.table())
    if out:
        out_console.print(f"Plot: [bold]{Path(out) / 'diagnose.png'}[/bold]")


def _write_folder(folder: Path, docs: list[dict]) -> None:
    """The diagnose folder: the figure and ``diagnoses.json`` (read back by :mod:`initlab.outputs`)."""
    from .. import plots
    from ..experiment import environment
    from ..outputs import write_diagnoses

    folder.mkdir(parents=True, exist_ok=True)
    plots.save_figure(plots.diagnosis_panels(docs), folder / "diagnose")
    write_diagnoses(folder, docs, command_line(), environment())
