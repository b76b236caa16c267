"""Sizes (issue 15): a sweep's size is estimated from its axes' lengths, without expanding the grid, and
checked before anything is allocated; a default limit refuses a grid that is too large with one line
that names the flag that raises it; a dry run of 10,000,000 runs prints its estimate at once."""

import json
import resource
import time

import pytest
from click.testing import CliRunner

from initlab import InitlabError
from initlab import sweep as sw
from initlab.cli import main
from initlab.models import mlp

GRIDS = [
    {},
    {"seeds": 7, "depth": [1, 2, 3], "lr": [0.1, 0.01]},
    {"scheme": [{"name": "default"}, {"name": "normal", "std": [0.1, 1.0]}], "noise": [0.1, 0.2],
     "data_seed": [0, 1, 2], "width": [4, 8], "seeds": 5, "batch_size": [8, "full"]},
    {"seeds": 600, "lr": [0.1, 0.2], "optimizer": ["sgd", "adam"]},
]


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("settings", GRIDS)
@pytest.mark.parametrize("group_size", [1, 5, 256])
def test_the_estimate_counts_what_the_expanded_grid_holds(settings, group_size):
    sweep = sw.from_flags(settings)
    runs = sweep.runs()  # the oracle: the grid expanded
    size = sw.estimate(sweep, group_size)
    assert size["runs"] == sweep.count() == len(runs) == sum(1 for _ in sweep.iter_runs())
    assert size["cells"] == len(sweep.cells())
    groups = sw.groups(runs, group_size)
    assert size["groups"] == len(groups) and size["models_per_group"] == max(len(g) for g in groups)
    width, depth = max(sweep.axes["width"]), max(sweep.axes["depth"])
    assert size["parameters"] == sum(p.numel() for p in mlp(2, [width] * depth, 1).parameters())
    parts = ("model_bytes", "data_bytes", "activation_bytes", "list_bytes")
    assert size["memory_bytes"] == sum(size[p] for p in parts) and all(size[p] > 0 for p in parts)


def test_memory_grows_with_what_a_group_holds():
    base = sw.estimate(sw.from_flags({"seeds": 8}))
    assert sw.estimate(sw.from_flags({"seeds": 8, "width": 32}))["model_bytes"] > base["model_bytes"]
    assert sw.estimate(sw.from_flags({"seeds": 8, "n": 10_000}))["activation_bytes"] == 10 * base["activation_bytes"]
    assert sw.estimate(sw.from_flags({"seeds": 8, "dtype": "float64"}))["memory_bytes"] > base["memory_bytes"]
    assert sw.estimate(sw.from_flags({"seeds": 8}), group_size=4)["model_bytes"] == base["model_bytes"] // 2


def test_ten_million_seeds_are_counted_not_allocated():
    before, start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
    sweep = sw.from_flags({"seeds": 10_000_000})
    assert sw.estimate(sweep)["runs"] == 10_000_000
    assert next(sweep.iter_runs())["seed"] == 0
    dry = cli("sweep", "--seeds", 10_000_000, "--dry-run", "--json")
    assert time.perf_counter() - start < 1.0
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 50  # MB (a list: ~5 GB)
    shown = json.loads(dry.stdout)
    assert dry.exit_code == 0 and shown["runs"] == 10_000_000 and shown["cells"] == [{"scheme": "default"}]
    assert "--max-runs 10000000" in shown["refused"]
    text = cli("sweep", "--seeds", 10_000_000, "--dry-run")
    assert text.stdout.startswith("Estimate: 10,000,000 runs in 39,063 groups")  # the estimate comes first
    assert "10000000 runs" in text.stdout and "Without --dry-run it would be refused" in text.stderr


def test_a_sweep_over_the_default_limit_is_refused_at_once_with_the_flag_that_raises_it(tmp_path):
    start = time.perf_counter()
    bad = cli("sweep", "--seeds", 1_000_000, "--out", tmp_path / "out")
    assert time.perf_counter() - start < 1.0
    assert bad.exit_code == 2 and bad.output.strip().count("\n") == 0
    assert "1,000,000 runs, over the limit of 100,000: add --max-runs 1000000" in bad.output
    assert not (tmp_path / "out").exists()  # nothing written
    big = cli("sweep", "--width", 100_000, "--out", tmp_path / "out")
    assert big.exit_code == 2 and big.output.strip().count("\n") == 0
    assert "over the limit of 4 GB: add --max-memory" in big.output and "the models of its largest group" in big.output
    assert not (tmp_path / "out").exists()


def test_the_flags_raise_and_lower_the_limits(tmp_path):
    flags = ["sweep", "--depth", 1, "--width", 4, "--steps", 2, "--n", 50, "--out", tmp_path, "--no-progress", "--json"]
    low = cli(*flags, "--seeds", 3, "--max-runs", 2)
    assert low.exit_code == 2 and "add --max-runs 3" in low.output and not (tmp_path / "runs.db").exists()
    assert json.loads(cli(*flags, "--seeds", 3, "--max-runs", 3).stdout)["trained"] == 3
    assert cli(*flags, "--seeds", 3, "--max-memory", 0.000001).exit_code == 2
    size = sw.estimate(sw.from_flags({"width": 100_000}))
    with pytest.raises(InitlabError, match="--max-memory 243"):
        sw.check_size(size)
    sw.check_size(size, max_memory_gb=243)  # raised: passes
    with pytest.raises(InitlabError, match="--max-runs"):
        sw.run(sw.from_flags({"seeds": 3}), tmp_path / "lib.db", max_runs=2)  # the library takes them too
    assert not (tmp_path / "lib.db").exists()


def test_a_dry_run_lists_a_bounded_number_of_cells_and_what_is_stored(tmp_path):
    many = cli("sweep", "--lr", "log:0.001:1:200", "--seeds", 2, "--dry-run", "--json")
    shown = json.loads(many.stdout)
    assert shown["cells_total"] == 200 and len(shown["cells"]) == 50 and shown["refused"] is None
    flags = ["sweep", "--depth", "1,2", "--width", 4, "--steps", 2, "--n", 50, "--seeds", 2, "--out", tmp_path]
    assert cli("sweep", "--depth", 1, "--width", 4, "--steps", 2, "--n", 50, "--seeds", 2, "--out", tmp_path,
               "--no-progress").exit_code == 0
    table = cli(*flags, "--dry-run").stdout
    rows = [line for line in table.splitlines() if line.startswith("│")]
    assert [r.split("│")[1:4] for r in rows] == [[" 1     ", " 2    ", " 2      "], [" 2     ", " 2    ", " 0      "]]


def test_a_grid_axis_is_bounded_before_it_is_made():
    with pytest.raises(InitlabError, match="--lr: a grid of at most 1,000,000 values"):
        sw.from_flags({"lr": {"log": [0.001, 1.0, 50_000_000]}})


@pytest.mark.parametrize("command", [["init", "--width", "100000"], ["train", "--width", "100000"],
                                     ["diagnose", "--width", "100000"]])
def test_one_network_too_large_is_refused_before_anything_is_allocated(command):
    """The sweep's size estimate, for one MLP: refused in one line naming --max-memory."""
    from click.testing import CliRunner

    from initlab.cli import main

    result = CliRunner().invoke(main, command)
    assert result.exit_code == 2 and "--max-memory" in result.output and "Traceback" not in result.output
    assert result.output.strip().count("\n") == 0
