"""Every gallery script runs top to bottom with --quick and writes its figure."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("plot_*.py"))


def test_the_gallery_has_the_twelve_examples():
    assert [p.stem for p in EXAMPLES] == ["plot_chapter_comparison", "plot_correlation_map", "plot_diagnose_cnn",
                                          "plot_diagnose_lstm", "plot_diagnose_transformer", "plot_fixup_resnet",
                                          "plot_jacobian_spectrum", "plot_lsuv_deep_net", "plot_recipe_training",
                                          "plot_residual_recipes", "plot_sweep_confidence_bands", "plot_width_sweep"]


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_quick(script, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(script), "--quick", "--out", str(tmp_path)], capture_output=True,
                         text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "What to look at" in script.read_text()
    pngs = list(tmp_path.glob("*.png"))
    assert len(pngs) == 1 and pngs[0].stat().st_size > 10_000
