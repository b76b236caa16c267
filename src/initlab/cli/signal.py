"""``initlab signal``: Jacobian spectra, the correlation map and the NTK's condition number over
schemes and depths (or of your own model), in one page."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from ..errors import InitlabError
from .base import (ACTIVATION_HELP, FORCE, Number, command_line, examples, main, out_console, out_folder,
                   parse_input_shape, past_vocab, token_inputs, token_options, was_given)

#: The inputs' random stream is the seed plus this: never the stream a scheme draws its weights from.
INPUT_SEED_OFFSET = 0x5EED_1A7E_2B
#: ``--quick``: a narrow, shallow network and few inputs (seconds, for tests and a first look).
QUICK = {"width": 32, "depth": "4,8", "inputs": 4}


def _list(text: str, flag: str, cast=str) -> list:
    try:
        items = [cast(v.strip()) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InitlabError(f"{flag} is a comma-separated list, like 8,32,128; got '{text}'.") from None
    if not items:
        raise InitlabError(f"{flag} needs at least one value; got '{text}'.")
    twice = sorted({str(v) for v in items if items.count(v) > 1})
    if twice:
        raise InitlabError(f"{flag} names {', '.join(twice)} more than once; give each value once, like "
                           f"{','.join(map(str, dict.fromkeys(items)))}.")
    return items


@main.command("signal", epilog=examples(
    "initlab signal --activation tanh --scheme orthogonal,xavier_normal --depth 8,32,128 --critical --sigma-b2 1e-5",
    "initlab signal --model mymodels:make_cnn --input-shape 3,32,32 --scheme default,he_normal --out sig"))
@click.option("--activation", default="tanh", show_default=True, help=ACTIVATION_HELP)
@click.option("--scheme", "scheme_list", default=None,
              help="Comma-separated schemes, e.g. orthogonal,xavier_normal (MLP default: orthogonal,xavier_normal; "
                   "--model default: as built).")
@click.option("--depth", "depth_list", default="8,32", show_default=True,
              help="Comma-separated hidden depths of the built-in MLP.")
@click.option("--width", type=click.IntRange(min=1), default=128, show_default=True,
              help="Units in each layer of the built-in MLP (input and output too: a square Jacobian).")
@click.option("--inputs", "n_inputs", type=click.IntRange(min=2), default=8, show_default=True,
              help="Random inputs: the Jacobian's sample, the correlation map's pairs and the NTK's batch.")
@click.option("--input-std", type=Number(min=0, min_open=True), default=1.0, show_default=True,
              help="Std of the normal inputs (a small one puts tanh near its linear regime).")
@click.option("--input-correlation", type=Number(min=0, max=1, max_open=True), default=0.5,
              show_default=True, help="Correlation of every pair of inputs (a shared normal part): the c-map's start.")
@click.option("--sigma-b2", type=Number(min=0), default=0.0, show_default=True,
              help="Bias variance of the built-in MLP (biases ~ N(0, sigma_b^2)).")
@click.option("--critical", is_flag=True,
              help="Put the built-in MLP on the critical line chi_1 = 1 at --sigma-b2: every scheme's gain set to "
                   "sqrt(critical sigma_w^2), and the inputs scaled to start at q* (Pennington et al. 2017).")
@click.option("--model", "model_path", default=None, metavar="PACKAGE.MODULE:FACTORY",
              help="Measure your own model: a factory returning an nn.Module (instead of the built-in MLP).")
@click.option("--input-shape", default=None, metavar="C,H,W",
              help="Shape of one input for --model, without the batch dimension, e.g. 3,32,32 (or 128: a "
                   "sequence of 128 token ids, with --input-dtype long).")
@token_options
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the schemes (the inputs use their own).")
@click.option("--quick", is_flag=True, help="Width 32, depths 4,8 and 4 inputs unless given: a first look in seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print the measurements as JSON.")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Write signal.json, the figures and the page (index.html) to this folder.")
@FORCE
def signal_cmd(activation, scheme_list, depth_list, width, n_inputs, input_std, input_correlation, sigma_b2, critical,
               model_path, input_shape, input_dtype, vocab, seed, quick, as_json, out, force):
    """Signal propagation at initialization, measured beside mean-field theory: the input-output
    Jacobian's singular values (dynamical isometry), the correlation of pairs of inputs layer by layer
    (the c-map) and the condition number of the empirical NTK (of the first output)."""
    import torch

    from ..diagnose import build, load_factory
    from ..init import initialize
    from ..models import mlp
    from ..outputs import FILES
    from ..schemes import get
    from ..theory import activation_functions

    if quick:
        width = width if was_given("width") else QUICK["width"]
        depth_list = depth_list if was_given("depth_list") else QUICK["depth"]
        n_inputs = n_inputs if was_given("n_inputs") else QUICK["inputs"]
    if model_path:
        given = [f"--{n.replace('_', '-')}" for n in ("activation", "depth", "width", "sigma_b2", "critical")
                 if was_given(n if n != "depth" else "depth_list")]
        if given:
            raise InitlabError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for the built-in MLP; "
                               f"--model builds your own: leave {'it' if len(given) == 1 else 'them'} out.")
        shape = parse_input_shape(input_shape)
    elif input_shape is not None:
        raise InitlabError("--input-shape is for --model; the built-in MLP's input size is --width.")
    else:
        activation_functions(activation)
        shape = [width]
    tokens = token_inputs(input_dtype, vocab, model_path)
    floats_only = [f"--{n.replace('_', '-')}" for n in ("input_std", "input_correlation") if was_given(n)]
    if tokens and floats_only:
        raise InitlabError(f"{' and '.join(floats_only)} shape float inputs; token ids (--input-dtype long) are "
                           f"drawn uniformly: leave {'it' if len(floats_only) == 1 else 'them'} out.")
    schemes = _list(scheme_list, "--scheme") if scheme_list is not None else (
        [None] if model_path else ["orthogonal", "xavier_normal"])
    for s in schemes:
        if s is not None:
            get(s)
    if critical:
        _take_gain(schemes, get)
    depths = [None] if model_path else _list(depth_list, "--depth", int)
    if any(d is not None and d < 1 for d in depths):
        raise InitlabError(f"--depth needs depths of at least 1; got '{depth_list}'.")
    folder = out_folder(out, "--out", FILES["signal"], force)
    factory = load_factory(model_path) if model_path else None
    params = {"bias_std": math.sqrt(sigma_b2)} if sigma_b2 > 0 else {}
    if critical:
        input_std, params["gain"] = _critical(activation, sigma_b2, input_std, was_given("input_std"))
    gen = torch.Generator().manual_seed(seed + INPUT_SEED_OFFSET)
    if tokens:
        x = torch.randint(0, vocab, (n_inputs, *shape), generator=gen)
    else:
        shared = torch.randn(1, *shape, generator=gen)
        x = input_std * (math.sqrt(input_correlation) * shared
                         + math.sqrt(1 - input_correlation) * torch.randn(n_inputs, *shape, generator=gen))
    runs = []
    for depth in depths:
        for scheme in schemes:
            with torch.random.fork_rng(devices=[]):  # a model "as built" draws from the global stream
                torch.manual_seed(seed)
                model = build(factory) if factory else mlp(width, [width] * depth, width, activation)
            if scheme is not None:
                initialize(model, scheme, seed=seed, **params)
            label = (scheme or "as built") + (f", depth {depth}" if depth is not None else "")
            try:
                measured = _measure(model, x)
            except InitlabError as e:
                raise (past_vocab(e, vocab, model, x) if tokens else e) from None
            runs.append({"label": label, "scheme": scheme or "as built", "depth": depth, **measured})
    if folder is not None:
        _write_folder(Path(folder), runs)
    if as_json:
        from ..jsonsafe import json_safe

        click.echo(json.dumps(json_safe({"runs": runs}), indent=2))
        return
    _print(runs, activation if not model_path else model_path)
    if folder is not None:
        out_console.print(f"Page: [bold]{Path(folder) / 'index.html'}[/bold]")


def _take_gain(schemes: list, get) -> None:
    """--critical sets every scheme's gain: refuse, by name, the schemes that take none."""
    refused = [s for s in schemes if s is None or "gain" not in get(s).params()]
    if refused:
        from ..schemes import schemes as all_schemes

        taking = [n for n in all_schemes() if "gain" in get(n).params()]
        names = ", ".join(s or "the model as built" for s in refused)
        raise InitlabError(f"--critical sets each scheme's gain, and {names} take{'s' if len(refused) == 1 else ''} "
                           f"no gain; give --scheme from those that do: {', '.join(taking)}.")


def _critical(activation: str, sigma_b2: float, input_std: float, std_given: bool) -> tuple[float, float]:
    """``(input std, gain)`` that put an MLP on the critical line at ``sigma_b2``, its inputs at q*."""
    from ..theory import critical_sigma_w2, length_fixed_point

    if std_given:
        raise InitlabError("--critical scales the inputs to start at q*: leave --input-std out.")
    sw2 = critical_sigma_w2(activation, sigma_b2)
    if sw2 is None:
        raise InitlabError(f"{activation} has no critical line at sigma_b^2 = {sigma_b2:g} (chi_1 = 1 is not reached).")
    q = length_fixed_point(activation, sw2, sigma_b2)
    if q - sigma_b2 <= 0:
        raise InitlabError(f"{activation} at sigma_b^2 = {sigma_b2:g} has q* = {q:.3g}: give --sigma-b2 > 0, "
                           f"like 1e-5.")
    return math.sqrt((q - sigma_b2) / sw2), math.sqrt(sw2)


def _measure(model, x) -> dict:
    from ..errors import InitlabError as Error
    from ..ntk import ntk
    from ..signal import correlation_map, jacobian_spectrum

    out = {}
    try:
        out["jacobian"] = jacobian_spectrum(model, x, n=None).to_dict()
    except Error as e:  # token inputs: no input-output Jacobian; the rest still holds
        out["jacobian"] = None
        out["jacobian_reason"] = str(e)
    out["correlation"] = correlation_map(model, x, n=None).to_dict()
    out["ntk"] = ntk(model, x, output=0).to_dict()
    return out


def _print(runs: list[dict], what: str) -> None:
    from rich.table import Table

    table = Table(title=f"signal propagation at initialization: {what}")
    for col in ("run", "mean s^2", "predicted", "spread", "s max", "cond(J)", "c last", "c predicted",
                "cond(NTK)"):
        table.add_column(col, justify="right")
    g = lambda v: "n/a" if v is None else f"{v:.3g}"  # noqa: E731
    for r in runs:
        j, c = r.get("jacobian") or {}, r["correlation"]
        table.add_row(r["label"], g(j.get("mean_s2")), g(j.get("predicted_mean_s2")), g(j.get("spread")),
                      g(j.get("max")), g(j.get("condition")), g(c["measured"][-1]),
                      g(c["predicted"][-1] if c.get("predicted") else None), g(r["ntk"]["condition"]))
    out_console.print(table)
    parts = [r.get(k) or {} for r in runs for k in ("jacobian", "correlation")]
    for reason in sorted({p.get("reason") for p in parts} - {None}):
        out_console.print(f"No mean-field prediction: {reason}.")
    for note in sorted({p.get("note") for p in parts} - {None}):
        out_console.print(f"Note on the prediction: {note}.")
    for r in runs:
        j = r.get("jacobian") or {}
        if j.get("method", "exact") != "exact":
            out_console.print(f"{r['label']}: the Jacobian by {j['method']}: mean s^2 {j['mean_s2']:.3g} ± "
                              f"{j['mean_s2_error']:.2g}, spread {j['spread']:.3g} ± {j['spread_error']:.2g}.")


def _write_folder(folder: Path, runs: list[dict]) -> None:
    """The signal folder: ``signal.json`` (:func:`initlab.outputs.write_signal`), its figures and page."""
    from .. import plots, report
    from ..experiment import environment
    from ..outputs import write_signal

    folder.mkdir(parents=True, exist_ok=True)
    spectra = {r["label"]: r["jacobian"] for r in runs if r.get("jacobian")}
    if spectra:
        fig, ax = plots.plt.subplots(figsize=(9, 4.6 + 0.25 * len(spectra)))
        plots.jacobian_spectrum(spectra, ax=ax)
        ax.set_title("singular values of the input-output Jacobian")
        plots.save_figure(fig, folder / "spectra", formats=("png",))
    fig, ax = plots.plt.subplots(figsize=(9, 4.6 + 0.25 * len(runs)))
    plots.correlation_map({r["label"]: r["correlation"] for r in runs}, ax=ax)
    ax.set_title("how alike two inputs' representations become, layer by layer")
    plots.save_figure(fig, folder / "correlation", formats=("png",))
    write_signal(folder, runs, command_line(), environment())
    report.render(folder, folder / "index.html")
