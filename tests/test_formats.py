"""Every output format lives in initlab.outputs: each file carries its kind and schema version, an
older results.json is read in today's names, a newer one is refused in one line, and the CLI writes
no file itself."""

import json
import pathlib

import numpy as np
import pytest

from initlab import outputs
from initlab.errors import InitlabError

ROW = {"scheme": "default", "spec": {"name": "default", "params": {}}, "train_accuracy": 0.9, "test_accuracy": 0.8,
       "final_loss": 0.3, "steps_to_90": None, "diverged": False, "diverged_step": None, "width": [4],
       "effective_width": [4], "output_signal": None}
DOC = {"kind": "train", "config": {"dataset": "moons", "n": 40, "noise": 0.2, "depth": 1, "width": 4,
                                   "activation": "relu", "optimizer": "sgd", "lr": 0.1, "steps": 5, "dtype": "float32"},
       "results": [ROW], "tracked": {"default": {"layers": ["fc1"], "step": [0], "preact_std": [[1.0]],
                                                 "weight_grad_norm": [[0.5]]}}}
ARRAYS = {"X_train": np.zeros((3, 2)), "y_train": np.zeros(3), "X_test": np.zeros((2, 2)), "y_test": np.zeros(2),
          "p_0": np.zeros((2, 2)), "xx_0": np.zeros((2, 2)), "yy_0": np.zeros((2, 2))}


def test_each_writer_stamps_kind_and_version_and_reads_back(tmp_path):
    outputs.write_results(tmp_path, DOC, ARRAYS)
    stored = json.loads((tmp_path / "results.json").read_text())
    assert (stored["kind"], stored["schema_version"]) == ("train", outputs.RESULTS_VERSION)
    back = outputs.read_results(tmp_path)
    assert back["tracked"]["default"]["preact_std"] == [[1.0]] and back["grids"][0]["p"].shape == (2, 2)
    outputs.write_diagnoses(tmp_path, [{"verdict": {"summary": "ok", "message": "m"}, "layers": []}], "cmd")
    d = json.loads((tmp_path / "diagnoses.json").read_text())
    assert (d["kind"], d["schema_version"]) == ("diagnose", outputs.DIAGNOSES_VERSION)
    outputs.check_diagnoses(d)
    outputs.write_trainability(tmp_path / "trainability.json", {"within": {}, "x": float("nan")})
    t = json.loads((tmp_path / "trainability.json").read_text())
    assert (t["kind"], t["schema_version"], t["x"]) == ("trainability", 1, None)


def test_a_schema_1_results_file_is_read_in_todays_names(tmp_path):
    old = {**DOC, "config": {**DOC["config"], "hidden": [4]}, "tracked": {"default": {
        "layers": ["fc1"], "step": [0], "act_std": [[1.0]], "grad_norm": [[0.5]]}}}
    old["config"].pop("depth"), old["config"].pop("width")
    doc = outputs.check_results(json.loads(json.dumps(old)))
    assert doc["schema_version"] == outputs.RESULTS_VERSION
    assert doc["tracked"]["default"]["preact_std"] == [[1.0]] and doc["tracked"]["default"]["weight_grad_norm"] == [[0.5]]


def test_a_newer_schema_is_refused_in_one_line():
    with pytest.raises(InitlabError, match="schema_version 9 was written by a newer initlab"):
        outputs.check_results({**DOC, "schema_version": 9})
    with pytest.raises(InitlabError, match="schema_version 9 is not one this initlab reads"):
        outputs.check_diagnoses({"schema_version": 9, "diagnoses": []})


def test_the_cli_writes_no_file_itself():
    cli = pathlib.Path(outputs.__file__).parent / "cli"
    for path in cli.glob("*.py"):
        text = path.read_text()
        for call in ("write_text(", "json.dump(", "savez", "open(path, \"w"):
            assert call not in text, f"{path.name} writes a file itself ({call}); use initlab.outputs"
