"""``initlab theory``: mean-field theory's numbers, phase diagram and correlation map for an activation."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import InitlabError
from .base import ACTIVATION_HELP, FORCE, Number, examples, main, out_console, out_file, was_given

#: The c-map is iterated this many layers from each of these starting correlations.
C_MAP_DEPTH, C_MAP_STARTS = 50, (0.1, 0.5, 0.9)


@main.command("theory", epilog=examples(
    "initlab theory --activation tanh",
    "initlab theory --activation tanh --sigma-w2 1.5 --scheme xavier_uniform,he_normal --plot phase.png"))
@click.option("--activation", default="tanh", show_default=True, help=ACTIVATION_HELP)
@click.option("--sigma-w2", type=Number(min=0, min_open=True), default=None,
              help="Weight variance times fan_in (default: the critical one).")
@click.option("--sigma-b2", type=Number(min=0), default=0.05, show_default=True, help="Bias variance.")
@click.option("--scheme", "scheme_list", default=None,
              help="Comma-separated schemes to place on the diagram, e.g. xavier_uniform,he_normal,default.")
@click.option("--width", type=click.IntRange(min=1), default=256, show_default=True,
              help="Layer width for --scheme points.")
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON.")
@click.option("--plot", "plot_path", default=None, type=click.Path(dir_okay=False),
              help="Draw the phase diagram and the c-map to this PNG (and SVG beside it).")
@FORCE
def theory_cmd(activation, sigma_w2, sigma_b2, scheme_list, width, as_json, plot_path, force):
    """Mean-field theory: q*, chi_1, depth scales, the phase (ordered, critical, chaotic), the
    critical sigma_w^2 and the correlation map (how two inputs' correlation moves layer by layer) for
    an activation, with an optional figure of the phase diagram and the c-map."""
    from rich.table import Table

    from .. import theory
    from ..jsonsafe import json_safe

    theory.activation_functions(activation)  # an unknown name fails here
    names = [s.strip() for s in scheme_list.split(",") if s.strip()] if scheme_list is not None else []
    if scheme_list is not None and not names:
        raise InitlabError(f"--scheme names schemes to place, like xavier_uniform,he_normal; got '{scheme_list}'.")
    if was_given("width") and not names:
        raise InitlabError("--width is the layer width of the --scheme points: give --scheme too, "
                           "or leave --width out.")
    stem = None
    if plot_path:
        stem = plot_path[:-4] if plot_path.lower().endswith(".png") else plot_path
        out_file(stem + ".png", "--plot", force, beside=(Path(stem + ".svg"),))
    critical = theory.critical_sigma_w2(activation, sigma_b2)
    point = sigma_w2 if sigma_w2 is not None else critical
    if point is None:
        raise InitlabError(f"{activation} has no critical sigma_w^2 at sigma_b^2={sigma_b2:g}; give --sigma-w2.")
    mf = theory.mean_field(activation, point, sigma_b2).to_dict()
    curves = {"c0": list(C_MAP_STARTS), "c_star": mf["c_star"],
              "c": [theory.c_map(activation, point, sigma_b2, c0, C_MAP_DEPTH) for c0 in C_MAP_STARTS],
              "label": f"the c-map at sigma_w^2 = {point:.3g}, sigma_b^2 = {sigma_b2:g} ({mf['phase']})"}
    points = []
    for name in names:
        sw, sb = theory.scheme_sigmas(name, width)
        points.append({"label": name, "sigma_w2": sw, "sigma_b2": sb,
                       **{k: v for k, v in theory.mean_field(activation, sw, sb).to_dict().items()
                          if k in ("chi_1", "xi_c", "phase")}})
    if plot_path:
        import numpy as np

        from .. import plots

        top = max(4.0, 1.3 * max([point] + [p["sigma_w2"] for p in points]))
        grid = theory.phase_grid(activation, np.linspace(0.05, top, 36), np.linspace(0, max(0.3, 1.3 * sigma_b2), 22))
        fig, (ax, right) = plots.plt.subplots(1, 2, figsize=(15, 5.6), gridspec_kw={"width_ratios": [1.3, 1]})
        plots.phase_diagram(grid, [{"label": f"sigma_w^2={point:.3g}", "sigma_w2": point, "sigma_b2": sigma_b2}]
                            + points, ax=ax)
        plots.c_map_curves(curves, ax=right)
        Path(stem).parent.mkdir(parents=True, exist_ok=True)
        plots.save_figure(fig, stem)
    if as_json:
        click.echo(json.dumps(json_safe({**mf, "points": points, "c_map": {k: curves[k] for k in ("c0", "c")}}),
                              indent=2))
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
    shown = [1, 5, 20, C_MAP_DEPTH]
    star = (f"c* = {mf['c_star']:.4g}" if mf["c_star"] is not None else
            f"c* not defined: q* = {mf['q_star']:.3g} is about 0")
    cmap = Table(title=f"the c-map at sigma_w^2 = {point:.4g}: two inputs' correlation after l layers ({star})")
    for col in ["c0"] + [f"l = {l}" for l in shown]:
        cmap.add_column(col, justify="right")
    for c0, c in zip(curves["c0"], curves["c"]):
        cmap.add_row(f"{c0:g}", *(f"{c[l]:.4f}" for l in shown))
    out_console.print(cmap)
    if plot_path:
        out_console.print(f"Phase diagram: [bold]{plot_path}[/bold]")
