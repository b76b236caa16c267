"""What every figure keeps, checked on the drawn artists (no training: hand-made histories and rows).

Layer axes show whole layers; step axes show round steps; legends sit off the data (not on the
plotting area, nor on the ticks and x label) and inside the figure once it is laid out; a log-scale
chart with nothing to draw says why, and a chart with something to draw says nothing of the kind.
"""

import math

import numpy as np
import pandas as pd
import pytest

from initlab import plots, theory
from initlab.report.text import TEXT

EN = TEXT["en"]["figures"]


# ---------------------------------------------------------------------------------------------------
# helpers


def visible_ticks(axis) -> np.ndarray:
    low, high = sorted(axis.get_view_interval())
    ticks = np.asarray(axis.get_majorticklocs(), dtype=float)
    return ticks[(ticks >= low - 1e-9) & (ticks <= high + 1e-9)]


def assert_round(values) -> None:
    """Equally spaced whole numbers, the spacing 1, 2 or 5 times a power of ten, each a multiple of it."""
    v = np.asarray(values, dtype=float)
    assert len(v) >= 2, v
    gaps = np.diff(v)
    assert np.allclose(gaps, gaps[0]), v
    power = 10 ** math.floor(math.log10(gaps[0]))
    assert round(gaps[0] / power, 6) in (1, 2, 5), v
    assert all(float(x).is_integer() and x % gaps[0] == 0 for x in v), v


def assert_off_the_data(ax, legend=None) -> None:
    fig = ax.figure
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    box = (legend or ax.get_legend()).get_window_extent(r)
    assert not box.overlaps(ax.get_window_extent(r)), "the legend covers the plotting area"
    assert not box.overlaps(ax.xaxis.get_tightbbox(r)), "the legend covers the ticks or the x label"
    assert box.y0 >= fig.bbox.y0 - 1 and box.x0 >= fig.bbox.x0 - 1 and box.x1 <= fig.bbox.x1 + 1, \
        "the legend is cut off by the figure's edge"


def texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def history(steps, loss=lambda s: 0.7 / (1 + s / 100), acc=lambda s: min(0.5 + s / 1000, 0.95)):
    return {"step": list(steps), "train_loss": [loss(s) for s in steps], "test_loss": [loss(s) for s in steps],
            "train_accuracy": [acc(s) for s in steps], "test_accuracy": [acc(s) for s in steps]}


def diagnosis(n_layers: int, value=lambda i: 0.5 ** i) -> dict:
    rows = [{"name": f"fc{i}", "preact_std": value(i), "grad_std": value(n_layers - i),
             "predicted_preact_std": None, "predicted_grad_std": None} for i in range(1, n_layers + 1)]
    return {"scheme": "xavier_uniform", "layers": rows, "verdict": {"summary": "ok"}}


def tracked(steps, n_layers=4, value=1.0) -> dict:
    return {"step": list(steps), "layers": [f"fc{i}" for i in range(1, n_layers + 1)],
            "preact_std": [[value] * n_layers for _ in steps], "weight_grad_norm": [[value * 0.1] * n_layers for _ in steps]}


# the steps a demo records: dense at the start, then every 40 (the old ticks read 0, 4, 240, 680)
ODD_STEPS = [0, 1, 2, 3, 4, *range(40, 681, 40)]


# ---------------------------------------------------------------------------------------------------
# layer ticks


@pytest.mark.parametrize("n_layers", [2, 3, 5, 12, 40])
def test_a_layer_axis_shows_whole_layers(n_layers):
    ax = plots.diagnosis_plot(diagnosis(n_layers))
    ax.figure.canvas.draw()
    ticks = visible_ticks(ax.xaxis)
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks
    assert not any(".5" in t.get_text() for t in ax.get_xticklabels())
    if n_layers <= 12:
        assert list(ticks) == list(range(1, n_layers + 1))


def test_the_layer_rows_of_a_heatmap_are_the_layers():
    axes = plots.tracking_heatmaps(tracked(ODD_STEPS, n_layers=5))
    for ax in axes:
        assert [t.get_text() for t in ax.get_yticklabels()] == ["fc1", "fc2", "fc3", "fc4", "fc5"]
        assert list(ax.get_yticks()) == [1, 2, 3, 4, 5]


# ---------------------------------------------------------------------------------------------------
# step ticks


@pytest.mark.parametrize("last", [37, 200, 680, 2000, 12345])
def test_training_curves_tick_round_steps(last):
    steps = sorted({0, 1, 2, 3, 4, *np.linspace(0, last, 9).astype(int).tolist()})
    loss_ax, acc_ax = plots.training_curves({"a": history(steps), "b": history(steps, acc=lambda s: 0.5)})
    for ax in (loss_ax, acc_ax):
        ax.figure.canvas.draw()
        assert_round(visible_ticks(ax.xaxis))
    assert loss_ax.get_xlim() == acc_ax.get_xlim()


def test_a_heatmap_of_uneven_steps_is_labelled_at_round_steps():
    axes = plots.tracking_heatmaps(tracked(ODD_STEPS))
    for ax in axes:
        labels = [int(t.get_text()) for t in ax.get_xticklabels()]
        assert_round(labels)
        assert labels[0] == 0 and labels[-1] <= 680 and 240 not in labels
        # each label sits where that step is: between the columns of the steps around it
        for pos, step in zip(ax.get_xticks(), labels):
            assert pos == pytest.approx(np.interp(step, ODD_STEPS, np.arange(len(ODD_STEPS))))


def test_a_heatmap_of_few_steps_labels_each():
    ax = plots.tracking_heatmaps(tracked([0, 1, 2, 3]))[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2", "3"]


def test_the_symmetry_trace_ticks_round_steps():
    steps = list(range(0, 1001, 7))
    ax = plots.symmetry_trace({"sgd float32": {"step": steps, "spread": [1e-8] * len(steps)}})
    ax.figure.canvas.draw()
    assert_round(visible_ticks(ax.xaxis))


def test_confidence_curves_tick_round_steps():
    steps = [0, 3, 17, 240, 680, 997]
    df = pd.DataFrame({"scheme": ["a"] * 3 + ["b"] * 3,
                       "history": [history(steps, acc=lambda s, k=k: 0.5 + k * s / 5000) for k in range(6)]})
    ax = plots.confidence_curves(df)
    ax.figure.canvas.draw()
    assert_round(visible_ticks(ax.xaxis))


def test_round_ticks_stay_inside_the_range():
    assert list(plots.round_ticks(0, 680)) == [0, 200, 400, 600]
    assert list(plots.round_ticks(0, 190)) == [0, 50, 100, 150]
    assert list(plots.round_ticks(0, 4)) == [0, 1, 2, 3, 4]
    assert list(plots.round_ticks(10, 2000)) == [500, 1000, 1500, 2000]


# ---------------------------------------------------------------------------------------------------
# legends off the data


def test_training_curves_legend_is_under_the_accuracy_panel():
    steps = list(range(0, 201, 10))
    hs = {name: history(steps) for name in ["constant(value=0.05)", "default", "xavier_uniform", "he_normal",
                                            "normal(std=0.01)", "normal(std=3)"]}
    fig = plots.plt.figure(figsize=(12, 4.6))
    axes = fig.subplots(1, 2)
    plots.training_curves(hs, axes, diverged={"normal(std=3)": 40})
    fig.tight_layout()
    assert_off_the_data(axes[1])
    assert_off_the_data(axes[0], axes[1].get_legend())  # nor on the loss panel beside it


def test_symmetry_legend_is_off_the_data():
    steps = list(range(0, 101))
    traces = {f"{opt} {dt}": {"step": steps, "spread": [s * 1e-10 for s in steps], "effective_width": [1, 1]}
              for opt in ("sgd", "adam") for dt in ("float32", "float64")}
    fig = plots.plt.figure(figsize=(7.5, 4.8))
    ax = plots.symmetry_trace(traces, fig.gca())
    fig.tight_layout()
    assert_off_the_data(ax)


def test_diagnosis_legends_are_off_the_data_side_by_side():
    fig = plots.diagnosis_panels([diagnosis(6), diagnosis(6)])
    for ax in fig.axes:
        assert_off_the_data(ax)


def test_sweep_and_theory_legends_are_off_the_data():
    df = pd.DataFrame({"scheme": ["a", "a", "b", "b"],
                       "history": [history([0, 50, 100]) for _ in range(4)]})
    fig = plots.plt.figure()
    ax = plots.confidence_curves(df, ax=fig.gca())
    fig.tight_layout()
    assert_off_the_data(ax)

    grid = theory.phase_grid("tanh", np.linspace(0.5, 3, 12), np.linspace(0, 0.3, 6))
    fig = plots.plt.figure(figsize=(8, 5.2))
    ax = plots.phase_diagram(grid, [{"label": "xavier", "sigma_w2": 1.0, "sigma_b2": 0.05},
                                    {"label": "he", "sigma_w2": 2.0, "sigma_b2": 0.05}], ax=fig.gca())
    fig.tight_layout()
    assert_off_the_data(ax)

    result = {"sigma_w2": [0.5, 1.0, 2.0], "depth": [2, 8, 32], "trained": np.full((3, 3), 0.5),
              "threshold": 0.9, "sigma_b2": 0.05, "curve": {"sigma_w2": [0.5, 1.0, 2.0], "depth": [4, 50, 6]}}
    fig = plots.plt.figure(figsize=(8, 5))
    ax = plots.trainability_heatmap(result, ax=fig.gca())
    fig.tight_layout()
    assert_off_the_data(ax)


def test_the_points_legend_is_under_the_contour_panels():
    xx, yy = np.meshgrid(np.linspace(-2, 2, 30), np.linspace(-2, 2, 30))
    p = 1 / (1 + np.exp(-3 * xx))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    y = (X[:, 0] > 0).astype(float)
    doc = {"results": [{"scheme": s, "diverged": False, "test_accuracy": 0.9, "output_signal": None}
                       for s in ("default", "xavier_uniform", "he_normal", "normal(std=0.01)")],
           "grids": [{"xx": xx, "yy": yy, "p": p}] * 4, "config": {"dtype": "float32"},
           "points": {"X_train": X[:30], "X_test": X[30:], "y_train": y[:30], "y_test": y[30:]}}
    fig = plots.contour_panels(doc)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    (legend,) = fig.legends
    box = legend.get_window_extent(r)
    assert box.y0 >= 0
    for ax in fig.axes:
        assert ax.get_legend() is None and not box.overlaps(ax.get_tightbbox(r))


# ---------------------------------------------------------------------------------------------------
# an empty log-scale chart says why


def test_a_symmetry_trace_of_exact_zeros_says_why_it_is_empty():
    steps = list(range(0, 50))
    ax = plots.symmetry_trace({"sgd float64": {"step": steps, "spread": [0.0] * len(steps)}})
    assert EN["sym_empty"] in texts(ax)
    assert ax.get_legend().get_texts()[0].get_text() == EN["sym_zero"].format(name="sgd float64")


def test_a_symmetry_trace_with_one_zero_line_names_it_and_is_not_empty():
    steps = list(range(0, 50))
    ax = plots.symmetry_trace({"sgd float64": {"step": steps, "spread": [0.0] * 50},
                               "adam float32": {"step": steps, "spread": [1e-7] * 50}})
    assert EN["sym_empty"] not in texts(ax)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == [EN["sym_zero"].format(name="sgd float64"), "adam float32"]
    assert EN["sym_floor"] in texts(ax)  # the floor line is named, under it, off the lines


def test_a_zero_network_s_diagnosis_says_why_it_is_empty():
    ax = plots.diagnosis_plot(diagnosis(4, value=lambda i: 0.0))
    assert EN["empty_log"] in texts(ax)
    ax = plots.diagnosis_plot(diagnosis(4), ax=plots.plt.figure().gca())
    assert EN["empty_log"] not in texts(ax)


def test_a_heatmap_of_zeros_says_why_it_is_empty():
    axes = plots.tracking_heatmaps(tracked([0, 10, 20], value=0.0))
    assert all(EN["empty_log"] in texts(ax) for ax in axes)
    axes = plots.tracking_heatmaps(tracked([0, 10, 20], value=1.0), axes=plots.plt.figure().subplots(1, 2))
    assert not any(EN["empty_log"] in texts(ax) for ax in axes)


def test_a_loss_panel_without_a_finite_loss_says_why_it_is_empty():
    h = history([0, 10], loss=lambda s: None)
    loss_ax, _ = plots.training_curves({"nan at once": h}, diverged={"nan at once": 1})
    assert EN["empty_loss"] in texts(loss_ax)
    loss_ax, _ = plots.training_curves({"fine": history([0, 10])}, axes=plots.plt.figure().subplots(1, 2))
    assert EN["empty_loss"] not in texts(loss_ax)


def test_a_loss_of_a_sweep_without_values_says_why_it_is_empty():
    h = history([0, 10], loss=lambda s: 0.0)
    df = pd.DataFrame({"scheme": ["a"], "history": [h]})
    ax = plots.confidence_curves(df, metric="train_loss")
    assert EN["empty_log"] in texts(ax)


def test_a_single_point_is_drawn():
    """A history of one finite value (a run that diverged at its first evaluation) still shows it."""
    h = {"step": [0, 4], "train_loss": [16729.4, None], "test_loss": [1.0, None],
         "train_accuracy": [0.57, None], "test_accuracy": [0.43, None]}
    loss_ax, acc_ax = plots.training_curves({"big": h}, diverged={"big": 4})
    assert loss_ax.lines[0].get_marker() == "o" and acc_ax.lines[0].get_marker() == "o"
    assert_round(visible_ticks(acc_ax.xaxis))
    loss_ax.figure.canvas.draw()
    note = next(t for t in loss_ax.texts if "diverged at step 4" in t.get_text())
    r = loss_ax.figure.canvas.get_renderer()
    assert note.get_window_extent(r).x1 <= loss_ax.get_window_extent(r).x1 + 1  # inside its panel
