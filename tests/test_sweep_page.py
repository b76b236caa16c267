"""The sweep and trainability pages, on stores whose answers are known: written here with chosen
accuracies (no training), then read back as the page reads them."""

import html
import math
import re
import shlex

import numpy as np
import pytest
from click.testing import CliRunner

from initlab import plots, report, trainability
from initlab.cli import main
from initlab.results import load
from initlab.store import Store
from initlab.sweep import build
from initlab.report.sweep import rerun_command, scheme_axis, trainability_result
from initlab.train import TrainResult


def _result(acc):
    """A finished run whose test accuracy is ``acc`` (None: it diverged at step 20)."""
    diverged = acc is None
    final_acc = 0.5 if diverged else acc
    history = {"step": [0, 10, 20], "train_loss": [0.7, 0.5, math.nan if diverged else 0.3],
               "train_accuracy": [0.5, 0.6, final_acc], "test_loss": [0.7, 0.5, 0.4],
               "test_accuracy": [0.5, min(final_acc, 0.6), final_acc]}
    final = {k: v[-1] for k, v in history.items() if k != "step"}
    return TrainResult(history, final, diverged, 20 if diverged else None, {}, 0.1)


def fake_sweep(folder, settings: dict, accuracy):
    """Store every run of ``settings`` with test accuracy ``accuracy(config)``; return the db path."""
    def fail(key, message, _index):
        raise AssertionError(f"{key}: {message}")
    runs = build(settings, fail).runs()
    xx = np.linspace(-1, 1, 8)
    grid = {"p": 1 / (1 + np.exp(-4 * (xx[None, :] + xx[:, None]))), "extent": [-1, 1, -1, 1]}
    db = folder / "runs.db"
    with Store(db) as store:
        store.write([{"config": c, "result": _result(accuracy(c)), "sweep": settings["name"], "grid": grid}
                     for c in runs])
    return db


def page_text(path) -> str:
    """The page's visible text (tags and embedded images left out)."""
    source = re.sub(r"<style>.*?</style>", "", path.read_text(), flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", source))


def verdict_of(path) -> str:
    match = re.search(r'<div class="verdict">(.*?)</div>', path.read_text(), flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", match.group(1)))


def assert_no_missing_values(text: str):
    """No Python or pandas placeholder reaches a reader: nan, None, NaT, <NA>."""
    found = re.findall(r".{0,40}(?:\bnan\b|\bNone\b|\bNaT\b|<NA>|\binf\b).{0,20}", text)
    assert not found, found


def trainability_small(folder, accuracy):
    return fake_sweep(folder, trainability.preset("small"), accuracy)


def deep_fails(config):
    """Trains (0.95) where mean-field theory says it should: depth below 6 xi_c."""
    sw = config["scheme"]["params"]["scale"]
    return 0.95 if config["depth"] < trainability.depth_limit([sw])[0] else 0.5


# --------------------------------------------------------------------------------------------------
# the trainability page

def test_trainability_page_shows_its_heatmap_with_the_depth_limit_and_names_rows_by_sigma_w2(tmp_path):
    db = trainability_small(tmp_path, deep_fails)
    page = report.render(db)
    source, text = page.read_text(), page_text(page)
    assert (tmp_path / "report-trainability.png").is_file()  # named after the page, report.html
    assert 'alt="share of seeds that trained per sigma_w^2 and depth, with the depth limit 6 xi_c' in source
    assert "Which networks train: mean-field theory's depth limit" in text
    assert "sigma_w^2 = 0.5, depth = 16" in verdict_of(page)  # a cell by what varies
    # the 80-character spec is stated once (the constant part), never as a row's name
    assert text.count("variance_scaling(") == 1
    assert "variance_scaling(bias_std=0.223607, distribution=normal, mode=fan_in), sigma_w^2 varied" in text
    assert re.search(r"<th>sigma_w\^2</th><th>depth</th><th>runs</th>", source)
    # 6 xi_c per sigma_w^2, from theory
    for sw, limit in zip([0.5, 1.0, 2.0, 8.0], trainability.depth_limit([0.5, 1.0, 2.0, 8.0])):
        assert f"<td>{sw:g}</td><td>{limit:.3g}</td>" in source
    assert_no_missing_values(text)


def test_trainability_verdict_counts_runs_within_and_beyond_the_limit(tmp_path):
    db = trainability_small(tmp_path, deep_fails)
    result = trainability_result(load(db))
    assert result["within"]["trained"] == 1.0 and result["beyond"]["trained"] == 0.0
    verdict = verdict_of(report.render(db))
    assert verdict.startswith("Depth limit 6 xi_c: well within it, 100% of")
    assert "well beyond it, 0% of 2 runs trained, too few for an interval" in verdict


@pytest.mark.parametrize("change", [
    {"activation": "relu"},                                     # mean-field limit computed for tanh only
    {"scheme": [{"name": "variance_scaling", "scale": [0.5, 2.0], "mode": "fan_avg"}]},
    {"scheme": [{"name": "normal", "std": [0.1, 0.3]}]},
    {"depth": 4},                                               # one depth: nothing to compare
    {"lr": [0.01, 0.1]},                                        # something else varied
])
def test_the_trainability_section_does_not_fire_on_other_sweeps(tmp_path, change):
    settings = {**trainability.preset("small"), **change, "steps": 20, "name": "other"}
    db = fake_sweep(tmp_path, settings, lambda c: 0.95)
    assert trainability_result(load(db)) is None
    assert "depth limit" not in page_text(report.render(db))


# --------------------------------------------------------------------------------------------------
# names, verdicts and values on any sweep

def test_schemes_are_named_by_what_varies(tmp_path):
    settings = {"name": "mixed", "depth": [2], "seeds": 1, "steps": 20,
                "scheme": [{"name": "default"}, {"name": "normal", "std": [0.1, 1.0], "bias_std": 0.2},
                           {"name": "constant", "value": 0.05}]}
    df, axis, shared = scheme_axis(load(fake_sweep(tmp_path, settings, lambda c: 0.95)))
    assert axis == "scheme" and shared is None
    assert sorted(df["scheme"].unique()) == ["constant(value=0.05)", "default", "normal(bias_std=0.2, std=0.1)",
                                             "normal(bias_std=0.2, std=1)"]


def test_one_numeric_parameter_becomes_a_numeric_axis(tmp_path):
    settings = {"name": "stds", "seeds": 1, "steps": 20, "scheme": [{"name": "normal", "std": [0.01, 0.1, 10.0]}]}
    df, axis, shared = scheme_axis(load(fake_sweep(tmp_path, settings, lambda c: 0.95)))
    assert axis == "std" and shared == "normal, std varied"
    assert sorted(df["std"].unique()) == [0.01, 0.1, 10.0]  # sorted as numbers: 10 after 0.1


def _cells_sweep(tmp_path, accuracy):
    settings = {"name": "cells", "seeds": 3, "steps": 20, "scheme": ["default", "xavier_uniform", "constant"]}
    return fake_sweep(tmp_path, settings, accuracy)


def test_best_cell_is_never_also_listed_as_not_trained(tmp_path):
    # xavier_uniform has the higher mean (0.88) but no seed reaches 0.9; default has one seed at 0.95
    acc = {"default": [0.95, 0.8, 0.8], "xavier_uniform": [0.88, 0.88, 0.88], "constant": [0.5, 0.5, None]}
    db = _cells_sweep(tmp_path, lambda c: acc[c["scheme"]["name"]][c["seed"]])
    verdict = verdict_of(report.render(db))
    best, rest = verdict.split("Did not train")
    assert "Best cell: scheme = default, mean test accuracy 0.850" in best and "xavier" not in best
    assert "scheme = xavier_uniform" in rest and "scheme = constant" in rest and "scheme = default" not in rest
    assert "Diverged: scheme = constant (33% of runs)" in verdict


def test_no_cell_trained_says_so_once(tmp_path):
    db = _cells_sweep(tmp_path, lambda c: 0.6)
    verdict = verdict_of(report.render(db))
    assert verdict.startswith("No cell trained: no run reached test accuracy 0.9")
    assert "Best cell" not in verdict and "Did not train" not in verdict


def test_every_cell_diverged_leaves_no_nan_on_the_page(tmp_path):
    db = _cells_sweep(tmp_path, lambda c: None)
    page = report.render(db)
    assert "No cell has an accuracy: every run diverged" in verdict_of(page)
    assert_no_missing_values(page_text(page))


def test_no_nan_or_none_with_a_full_batch_and_one_seed(tmp_path):
    settings = {"name": "one", "seeds": 1, "steps": 20, "batch_size": ["full", 16], "scheme": ["default"]}
    page = report.render(fake_sweep(tmp_path, settings, lambda c: 0.95))
    text = page_text(page)
    assert_no_missing_values(text)
    assert "batch_size" in text and "full, 16" in text


# --------------------------------------------------------------------------------------------------
# the command that reruns the sweep: run it, and it finds every run stored

def _rerun(command: str, cwd):
    """Run the page's rerun command (its first line, or its here-document) through the CLI."""
    lines = command.splitlines()
    if lines[0].startswith("cat > "):
        end = lines.index("EOF")
        file = shlex.split(lines[0])[2]
        (cwd / file).write_text("\n".join(lines[1:end]) + "\n")
        words = shlex.split(lines[end + 1])
        words[2] = str(cwd / file)
    else:
        words = shlex.split(lines[0])
    assert words[:2] == ["initlab", "sweep"]
    return CliRunner().invoke(main, [*words[1:], "--no-progress"])


def test_a_preset_reruns_as_the_preset(tmp_path):
    db = trainability_small(tmp_path, deep_fails)
    command = rerun_command(load(db), tmp_path)
    assert command == f"initlab sweep --preset trainability --size small --out {tmp_path}"
    res = _rerun(command, tmp_path)
    assert res.exit_code == 0, res.output
    assert "12 runs: 0 trained, 12 already stored" in res.output
    assert command in report.render(db).read_text()


def test_a_flag_sweep_reruns_with_its_flags(tmp_path):
    settings = {"name": "flags", "seeds": [0, 3], "steps": 20, "depth": [2, 4], "lr": [0.01, 0.1],
                "batch_size": ["full", 16], "activation": "tanh",
                "scheme": [{"name": "normal", "std": [0.1, 1.0]}, {"name": "default"}]}
    db = fake_sweep(tmp_path, settings, lambda c: 0.95)
    command = rerun_command(load(db), tmp_path)
    assert command.startswith("initlab sweep --name flags --scheme normal,default --param std=0.1,1.0")
    assert "--seeds 0,3" in command and "--batch-size 16,full" in command
    res = _rerun(command, tmp_path)
    assert res.exit_code == 0, res.output
    assert "48 runs: 0 trained, 48 already stored" in res.output


def test_a_sweep_no_flags_can_say_reruns_from_a_sweep_file(tmp_path):
    # two tables of one scheme with different parameters: flags would make their product (4 schemes)
    settings = {"name": "tables", "seeds": 1, "steps": 20,
                "scheme": [{"name": "normal", "std": 0.1, "mean": 0.0}, {"name": "normal", "std": 1.0, "mean": 0.5}]}
    db = fake_sweep(tmp_path, settings, lambda c: 0.95)
    command = rerun_command(load(db), tmp_path)
    assert command.startswith("cat > tables.toml <<'EOF'\n") and "[[scheme]]" in command
    res = _rerun(command, tmp_path)
    assert res.exit_code == 0, res.output
    assert "2 runs: 0 trained, 2 already stored" in res.output


def test_a_store_of_two_sweeps_says_no_one_command_reruns_it(tmp_path):
    fake_sweep(tmp_path, {"name": "a", "seeds": 1, "steps": 20, "depth": 2}, lambda c: 0.95)
    db = fake_sweep(tmp_path, {"name": "a", "seeds": 1, "steps": 20, "depth": 3, "width": 4}, lambda c: 0.95)
    assert rerun_command(load(db), tmp_path) is None
    assert "no single sweep command reruns every run in this store" in page_text(report.render(db))


# --------------------------------------------------------------------------------------------------
# thumbnails: row labels short enough not to run into each other

def _overlaps(fig) -> list[tuple[str, str]]:
    """Pairs of visible texts of ``fig`` whose drawn boxes intersect."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for t in fig.findobj(plots.plt.Text) if t.get_visible() and t.get_text().strip()]
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
    return [(a, b) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1:] if ba.overlaps(bb)]


def test_thumbnail_labels_do_not_overprint(tmp_path):
    df = load(trainability_small(tmp_path, deep_fails))
    long = plots.contour_thumbnails(df, rows="scheme", cols="depth")
    assert _overlaps(long)  # the check sees the 80-character row labels running into each other
    plots.plt.close(long)
    short, axis, _ = scheme_axis(df)
    fig = plots.contour_thumbnails(short, rows=axis, cols="depth")
    assert _overlaps(fig) == []
    plots.plt.close(fig)
