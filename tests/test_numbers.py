"""Numbers that mean what they say: a diverged run shows no accuracy, a flat output is "no signal"
and an accuracy it reaches is marked, and intervals stay inside [0, 1] (or say why there is none).
Each judgement is checked where it must fire and where it must not."""

import json
import math
import re

import numpy as np
import pytest

from initlab import experiment, plots, report
from initlab.config import RunConfig
from initlab.experiment import accuracy_text, output_signal, run_scheme, signal_text
from initlab.store import Store
from initlab.report.sweep import sweep_page
from initlab.train import TrainResult


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """normal(std=3) (diverges), normal(std=0.01) (flat) and he_normal (trains) on a small moons set,
    saved and read back as a train folder would be."""
    cfg = RunConfig(n=200, steps=20, eval_every=5, hidden=[32, 32, 32, 32])
    data = cfg.data()
    specs = [{"name": "normal", "params": {"std": 3.0}}, {"name": "normal", "params": {"std": 0.01}},
             {"name": "he_normal", "params": {}}]
    records = [run_scheme(cfg, spec, data) for spec in specs]
    out = tmp_path_factory.mktemp("numbers")
    experiment.save(out, cfg, records, data, extra={"kind": "train"})
    return {"records": records, "out": out, "doc": experiment.load(out)}


def test_a_diverged_run_has_no_accuracy_in_its_row_and_json(runs):
    big = runs["records"][0]
    assert big["result"].diverged and big["result"].final["test_accuracy"] is None  # none from the start: train
    row = big["row"]
    assert row["test_accuracy"] is None and row["train_accuracy"] is None and row["output_signal"] is None
    step = row["diverged_step"]
    assert isinstance(step, int) and step >= 1
    stored = json.loads((runs["out"] / "results.json").read_text())
    saved = stored["results"][0]
    assert saved["test_accuracy"] is None and saved["train_accuracy"] is None and saved["diverged_step"] == step
    history = stored["histories"][row["scheme"]]
    assert all(a is None for s, a in zip(history["step"], history["test_accuracy"]) if s >= step)
    assert accuracy_text(row) == f"n/a (diverged at step {step})"


def test_a_diverged_run_shows_no_accuracy_on_the_page_and_in_the_figures(runs):
    doc, step = runs["doc"], runs["records"][0]["row"]["diverged_step"]
    html = report.results_table(doc["results"])
    cells = re.findall(r"<tr><td>(.*?)</tr>", html)
    big = next(c for c in cells if c.startswith("normal(std=3)"))
    text = re.sub(r"<[^>]+>", "", big)
    assert text.count(f"n/a (diverged at step {step})") == 2 and not re.search(r"0\.\d{3}", text)
    fig = plots.contour_panels(doc)
    title = fig.axes[0].get_title()
    assert f"test accuracy n/a (diverged at step {step})" in title
    assert not any(t.get_text().startswith("test accuracy 0") for t in fig.axes[0].texts)
    _, acc_ax = plots.training_curves({"big": doc["histories"]["normal(std=3)"]}, diverged={"big": step})
    x, y = acc_ax.lines[0].get_data()
    assert not np.isfinite(np.asarray(y, float)[np.asarray(x) >= step]).any()
    assert "diverged at step" in acc_ax.get_legend().get_texts()[0].get_text()


def test_curves_drop_a_diverged_runs_accuracy_even_from_a_raw_history():
    history = {"step": [0, 10, 12], "train_loss": [0.7, 0.6, None], "test_loss": [0.7, 0.6, None],
               "train_accuracy": [0.5, 0.6, 0.26], "test_accuracy": [0.5, 0.6, 0.26]}
    _, acc_ax = plots.training_curves({"big": history}, diverged={"big": 12})
    assert list(np.asarray(acc_ax.lines[0].get_ydata(), float)[:2]) == [0.5, 0.6]
    assert math.isnan(acc_ax.lines[0].get_ydata()[2])
    _, acc_ax = plots.training_curves({"fine": history})  # not diverged: every point stays
    assert acc_ax.lines[0].get_ydata()[2] == 0.26


def test_an_old_results_row_that_diverged_with_a_number_still_shows_none():
    row = {"diverged": True, "diverged_step": 7, "test_accuracy": 0.26, "train_accuracy": 0.3}
    assert accuracy_text(row) == "n/a (diverged at step 7)"
    assert "0.26" not in report.results_table([{**row, "scheme": "s", "final_loss": None, "steps_to_90": None,
                                                "effective_width": None, "width": [4]}])


@pytest.mark.parametrize("p, dtype, expected", [
    (0.5 + np.array([-9e-8, 0, 9e-8]), "float32", "none"),  # the vanishing demo: 0.500 +- 9e-08
    (np.full(10, 0.3), "float32", "none"),                  # constant
    (0.5 + np.array([-9e-8, 9e-8]), "float64", "weak"),     # in float64 that spread is resolved: must not fire
    (0.5 + np.array([-1e-3, 1e-3]), "float32", "weak"),     # tiny but far above rounding
    (np.array([0.45, 0.55 - 1e-9]), "float32", "weak"),
    (np.array([0.02, 0.97]), "float32", "clear"),
])
def test_output_signal_on_constructed_outputs(p, dtype, expected):
    assert output_signal(p, dtype)["signal"] == expected


def test_output_signal_of_a_diverged_output_is_none_and_float16_steps_are_tolerated():
    assert output_signal(np.array([0.5, np.nan])) is None and output_signal(np.array([np.inf])) is None
    stored = np.float16([0.9, 0.9 + 4.9e-4]).astype(float)  # one float16 step apart: a flat float32 output
    assert output_signal(stored, "float32")["signal"] == "weak"
    assert output_signal(stored, "float32", stored_as="float16")["signal"] == "none"


def test_an_accuracy_reached_by_a_flat_output_is_marked_and_a_clear_one_is_not():
    flat = output_signal(0.5 + np.array([-9e-8, 9e-8]))
    weak = output_signal(np.array([0.47, 0.53]))
    clear = output_signal(np.array([0.1, 0.9]))
    assert accuracy_text({"test_accuracy": 0.78, "output_signal": flat}) == "0.780 (flat output: no signal)"
    assert accuracy_text({"test_accuracy": 0.78, "output_signal": weak}) == "0.780"
    assert accuracy_text({"test_accuracy": 0.78, "output_signal": clear}) == "0.780"
    assert accuracy_text({"test_accuracy": 0.78}) == "0.780"  # a row from before the judgement
    assert signal_text(flat) == "p = 0.500 \u00b1 9e-08 over the data: no signal"
    assert signal_text(weak, "grid").endswith("everywhere: a weak signal")
    he = accuracy_text({"test_accuracy": 0.78, "output_signal": flat}, words=report.TEXT["he"])
    assert "0.780" in he and "אין אות" in he


def test_the_vanishing_run_is_flat_and_the_trained_one_is_not(runs):
    small, he = runs["records"][1]["row"], runs["records"][2]["row"]
    assert small["output_signal"]["signal"] == "none"
    assert he["output_signal"]["signal"] == "clear"
    html = report.results_table(runs["doc"]["results"])
    small_cells = re.sub(r"<[^>]+>", "", next(c for c in html.split("<tr>") if c.startswith("<td>normal(std=0.01)")))
    assert small_cells.count("(flat output: no signal)") == 2
    assert "flat output" not in next(c for c in html.split("<tr>") if c.startswith("<td>he_normal"))
    fig = plots.contour_panels(runs["doc"])
    small_texts = [t.get_text() for t in fig.axes[1].texts]
    assert any(t.endswith("over the data: no signal") for t in small_texts)
    assert any(t.startswith("test accuracy ") and t.endswith("(flat output: no signal)") for t in small_texts)
    assert not any("signal" in t.get_text() for t in fig.axes[2].texts)


def test_the_flat_note_on_a_grid_is_judged_by_the_same_function(tmp_path):
    xx, yy = np.meshgrid(np.linspace(-1, 1, 20), np.linspace(-1, 1, 20))
    flat = {"xx": xx, "yy": yy, "p": 0.5 + 1e-8 * xx}
    ax = plots.probability_contours(flat, accuracy=0.78)
    texts = [t.get_text() for t in ax.texts]
    assert "p = 0.500 \u00b1 1e-08 everywhere: no signal" in texts
    assert "test accuracy 0.78 (flat output: no signal)" in texts
    assert not ax.collections[1:]  # the fill only: no contour lines tracing rounding
    ax = plots.probability_contours({**flat, "p": 0.5 + 0.03 * xx}, accuracy=0.78, ax=plots.plt.figure().gca())
    texts = [t.get_text() for t in ax.texts]
    assert "p = 0.500 \u00b1 0.03 everywhere: a weak signal" in texts and "test accuracy 0.78" in texts
    assert len(ax.collections) == 2  # a weak signal keeps its 0.5 line


def test_a_shown_accuracy_of_0_900_counts_as_reaching_90_percent(runs):
    for r in runs["records"][1:]:  # the diverged one aside
        shown = [f"{a:.3f}" for a in r["result"].history["test_accuracy"]]
        assert (r["row"]["steps_to_90"] is not None) == any(a >= "0.900" for a in shown), r["row"]["scheme"]


# --------------------------------------------------------------------------------------------------
# the sweep page: a constructed store, no training

def _record(scheme: str, seed: int, acc: float, diverged: bool = False) -> dict:
    history = {"step": [0, 10, 20], "train_loss": [0.7, 0.5, math.nan if diverged else 0.3],
               "train_accuracy": [0.5, 0.8, acc], "test_loss": [0.7, 0.5, 0.4], "test_accuracy": [0.5, 0.8, acc]}
    final = {k: v[-1] for k, v in history.items() if k != "step"}
    config = {"scheme": {"name": scheme, "params": {}}, "dataset": "moons", "depth": 2, "width": 8, "lr": 0.1,
              "steps": 20, "seed": seed, "dtype": "float32"}
    xx = np.linspace(0, 1, 16)
    p = np.full((16, 16), np.nan) if diverged else 0.5 + 0.4 * np.tanh(4 * (xx[None, :] - 0.5)) * np.ones((16, 1))
    return {"config": config, "result": TrainResult(history, final, diverged, 20 if diverged else None,
                                                    {"seed": seed}, 0.1),
            "sweep": "numbers", "grid": {"p": p, "extent": [-1, 1, -1, 1]}, "versions": {"initlab": "test"}}


def _ci_numbers(html: str) -> list[float]:
    return [float(v) for pair in re.findall(r"(-?\d+\.\d+) to (-?\d+\.\d+)", html) for v in pair]


def test_a_sweep_page_with_two_seeds_says_the_interval_is_not_meaningful(tmp_path):
    # seeds 0.2 and 1.0: a t-interval would be 0.6 +- 5.1
    with Store(tmp_path / "runs.db") as store:
        store.write([_record("wild", 0, 0.2), _record("wild", 1, 1.0), _record("steady", 0, 0.95),
                     _record("steady", 1, 0.97)])
    html = sweep_page(tmp_path / "runs.db", tmp_path)
    assert "not meaningful with 2 runs (needs 3)" in html
    text = re.sub(r"<[^>]+>", " ", re.sub(r'data:image/png;base64,[^"]+', "", html))
    assert _ci_numbers(text) == [] and not re.search(r"\b(nan|NaN|None)\b", text), text


def test_a_sweep_page_with_three_seeds_gives_intervals_inside_0_1(tmp_path):
    with Store(tmp_path / "runs.db") as store:
        store.write([_record("near_one", s, a) for s, a in enumerate([0.92, 1.0, 0.99])]
                    + [_record("mixed", s, a, diverged=(s == 0)) for s, a in enumerate([0.3, 0.1, 0.95, 0.2])])
    html = sweep_page(tmp_path / "runs.db", tmp_path)
    numbers = _ci_numbers(html)
    assert numbers and all(0 <= v <= 1 for v in numbers)
    near_one = next(r for r in html.split("<tr>") if r.startswith("<td>near_one"))
    assert len(_ci_numbers(near_one)) == 4 and "not meaningful" not in near_one
    assert _ci_numbers(near_one)[3] == 1.0  # 3 of 3 reached 0.9: Wilson's upper end is 1
    mixed = next(r for r in html.split("<tr>") if r.startswith("<td>mixed"))
    assert "not meaningful with 3 runs" not in mixed and len(_ci_numbers(mixed)) == 4  # 3 measured, 4 runs


def test_sweep_thumbnails_show_no_accuracy_for_a_diverged_run_and_mark_a_flat_one(tmp_path):
    flat = _record("flat", 0, 0.78)
    flat["grid"]["p"] = np.full((16, 16), 0.5) + 1e-8 * np.arange(16)[None, :]
    with Store(tmp_path / "runs.db") as store:
        store.write([_record("big", 0, 0.26, diverged=True), flat, _record("fine", 0, 0.9)])
    from initlab.results import load

    fig = plots.contour_thumbnails(load(tmp_path / "runs.db"), rows="scheme", cols="scheme")
    titles = {ax.get_ylabel(): ax.get_title() for ax in fig.axes if ax.get_title()}
    assert titles == {"big": "acc n/a (diverged at step 20)", "flat": "acc 0.78 (flat output: no signal)",
                      "fine": "acc 0.90"}
