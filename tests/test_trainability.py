import json
import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from initlab import InitlabError, trainability
from initlab.cli import main


def test_preset_is_a_tanh_grid_of_sigma_w2_and_depth_with_sigma_b():
    settings = trainability.preset("default")
    (scheme,) = settings["scheme"]
    assert scheme["name"] == "variance_scaling" and scheme["bias_std"] == pytest.approx(math.sqrt(0.05))
    assert scheme["scale"] == trainability.SIZES["default"]["sigma_w2"]
    assert settings["activation"] == "tanh" and settings["dataset"] == "circles"
    with pytest.raises(InitlabError, match="unknown trainability size"):
        trainability.preset("huge")


def test_analyze_sorts_cells_against_the_depth_limit():
    limit = dict(zip([0.5, 1.5], trainability.depth_limit([0.5, 1.5])))  # about 7 and 95 layers
    assert limit[0.5] < 10 < 60 < limit[1.5]
    rows = []
    for sw in (0.5, 1.5):
        for depth in (2, 40):
            for seed in (0, 1):
                acc = 0.95 if depth < limit[sw] else 0.5
                rows.append({"param_scale": sw, "depth": depth, "seed": seed, "test_accuracy": acc})
    result = trainability.analyze(pd.DataFrame(rows))
    assert result["trained"] == [[1.0, 1.0], [0.0, 1.0]]  # rows: depth 2, 40; columns: sigma_w^2
    # depth 40 at sigma_w^2 = 0.5; 2 runs: no interval
    assert result["beyond"] == {"runs": 2, "trained": 0.0, "ci_low": None, "ci_high": None}
    within = result["within"]  # 6 runs, all trained: Wilson's upper end is 1, its lower inside (0, 1)
    assert within["runs"] == 6 and within["trained"] == 1.0 and within["ci_high"] == 1.0 and 0 < within["ci_low"] < 1
    json.dumps(result)  # JSON-ready


def test_analyze_counts_a_float32_0_8_as_trained_and_a_diverged_run_as_not():
    acc = float(np.float32(0.8))  # 0.80000001 here; 0.79999995 would not reach
    rows = [{"param_scale": 1.0, "depth": 4, "seed": 0, "test_accuracy": acc},
            {"param_scale": 1.0, "depth": 4, "seed": 1, "test_accuracy": float(np.nextafter(np.float32(0.8), 0))},
            {"param_scale": 1.0, "depth": 4, "seed": 2, "test_accuracy": float("nan")}]  # diverged: no accuracy
    assert trainability.analyze(pd.DataFrame(rows), threshold=0.8)["trained"] == [[pytest.approx(1 / 3)]]


def test_preset_dry_run_from_the_cli(tmp_path):
    res = CliRunner().invoke(main, ["sweep", "--preset", "trainability", "--size", "small", "--dry-run", "--json",
                                    "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["runs"] == 4 * 3
    bad = CliRunner().invoke(main, ["sweep", "--preset", "trainability", "--depth", "3"])
    assert bad.exit_code == 2 and "--preset is a whole sweep" in bad.output
