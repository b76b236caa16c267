"""Pages are shared: no value read from a file may run in the reader's browser.

Crafted results folders (train and demo), a diagnose folder and a sweep store carry script-bearing
strings in every text field; each page is rendered and opened in Chromium with JavaScript enabled,
and no script may have run (``window.__pwned`` undefined, no ``<script>`` element, no ``on...``
attribute), while the strings themselves are shown as text. Files whose fields have the wrong type
(a string where the step number goes) are refused with one line before any page is made.
"""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from initlab import report
from initlab.cli import main
from initlab.errors import InitlabError
from initlab.store import Store
from initlab.train import TrainResult

PAYLOADS = ["<img src=x onerror=window.__pwned=1>", "</script><script>window.__pwned=1</script>",
            '" onmouseover="window.__pwned=1" x="', "' onfocus='window.__pwned=1' autofocus x='"]
#: Fields whose value is one of a fixed table (checked on load, or naming what to compute): kept.
FIXED = {"kind", "role", "signal", "dtype", "device"}


def consistent(doc: dict) -> dict:
    """``doc`` with every string (but those of :data:`FIXED`) prefixed by a payload, one per original
    string, and the run names that key other tables (histories, traces) renamed alike."""
    seen: dict[str, str] = {}
    names = {r["scheme"] for r in doc.get("results", [])} | set((doc.get("symmetry") or {}).get("traces", {}))

    def mark(s: str) -> str:
        return seen.setdefault(s, PAYLOADS[len(seen) % len(PAYLOADS)] + s)

    def walk(value, key=None):
        if isinstance(value, str):
            return value if key in FIXED else mark(value)
        if isinstance(value, dict):
            return {(mark(k) if k in names else k): walk(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, key) for v in value]
        return value
    return walk(doc)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("safety")
    run = CliRunner().invoke
    for args in (["train", "--scheme", "normal", "--param", "std=0.5", "--depth", "2", "--width", "8",
                  "--steps", "30", "--n", "100", "--no-progress", "--out", str(root / "train")],
                 ["demo", "--quick", "--no-progress", "--out", str(root / "demo")],
                 ["diagnose", "--depth", "3", "--width", "16", "--scheme", "xavier_uniform,he_normal",
                  "--input-batch", "64", "--out", str(root / "diag")]):
        result = run(main, args)
        assert result.exit_code == 0, result.output
    return root


def craft_folder(source, target, name: str):
    shutil.copytree(source, target)
    doc = json.loads((target / name).read_text())
    (target / name).write_text(json.dumps(consistent(doc)))
    return target


def _record(seed: int, acc: float) -> dict:
    history = {"step": [0, 10, 20], "train_loss": [0.7, 0.5, 0.3], "train_accuracy": [0.5, 0.8, acc],
               "test_loss": [0.7, 0.5, 0.4], "test_accuracy": [0.5, 0.8, acc]}
    final = {k: v[-1] for k, v in history.items() if k != "step"}
    config = {"scheme": {"name": PAYLOADS[seed % 2], "params": {"note": PAYLOADS[2], "std": 0.1}},
              "dataset": PAYLOADS[3], "depth": 2 + seed % 2, "width": 8, "lr": 0.1, "steps": 20, "seed": seed,
              "activation": PAYLOADS[0], "optimizer": PAYLOADS[1], "dtype": "float32"}
    xx = np.linspace(0, 1, 16)
    p = 0.5 + 0.4 * np.tanh(4 * (xx[None, :] - 0.5)) * np.ones((16, 1))
    return {"config": config, "result": TrainResult(history, final, False, None, {"seed": seed}, 0.1),
            "sweep": PAYLOADS[1], "grid": {"p": p, "extent": [-1, 1, -1, 1]},
            "versions": {"initlab": PAYLOADS[0], "torch": PAYLOADS[2]}}


def assert_no_script_ran(browser, page_path, expect_text: int = 1):
    html = page_path.read_text()
    assert "<script" not in html.lower() and "<img src=x" not in html
    context = browser.new_context(java_script_enabled=True)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(page_path.resolve().as_uri())
    page.mouse.move(10, 10)
    for y in range(0, 4000, 200):  # pass the pointer over the page: an onmouseover would fire
        page.mouse.move(300, y % 880)
        page.mouse.wheel(0, 200)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.evaluate("document.scripts.length") == 0
    handlers = page.evaluate("""Array.from(document.querySelectorAll('*')).flatMap(
        e => Array.from(e.attributes).map(a => a.name).filter(n => n.startsWith('on')))""")
    assert handlers == []
    shown = page.inner_text("body")
    assert sum(p in shown for p in PAYLOADS) >= expect_text, "the crafted strings should be shown as text"
    assert errors == []
    context.close()


def test_a_crafted_train_folder_renders_without_running_a_script(browser, folders, tmp_path):
    folder = craft_folder(folders / "train", tmp_path / "train", "results.json")
    assert_no_script_ran(browser, report.render(folder), expect_text=3)


def test_a_crafted_demo_folder_renders_without_running_a_script(browser, folders, tmp_path):
    folder = craft_folder(folders / "demo", tmp_path / "demo", "results.json")
    assert_no_script_ran(browser, report.render(folder), expect_text=3)
    assert_no_script_ran(browser, report.render(folder, tmp_path / "he.html", lang="he"), expect_text=3)


def test_a_crafted_diagnose_folder_renders_without_running_a_script(browser, folders, tmp_path):
    folder = craft_folder(folders / "diag", tmp_path / "diag", "diagnoses.json")
    assert_no_script_ran(browser, report.render(folder), expect_text=3)


def test_a_crafted_sweep_store_renders_without_running_a_script(browser, tmp_path):
    with Store(tmp_path / "runs.db") as store:
        store.write([_record(seed, 0.6 + 0.1 * seed) for seed in range(4)])
    assert_no_script_ran(browser, report.render(tmp_path / "runs.db"), expect_text=2)


# --------------------------------------------------------------------------------------------------
# wrong types are refused on load, in one line

@pytest.mark.parametrize("field, value, says", [
    ("diverged_step", PAYLOADS[0], "results[0].diverged_step must be a whole number"),
    ("steps_to_90", "12", "results[0].steps_to_90 must be a whole number"),
    ("test_accuracy", 7, "results[0].test_accuracy must be a finite number from 0 to 1"),
    ("diverged", "no", "results[0].diverged must be true or false"),
    ("width", [8, PAYLOADS[1]], "results[0].width[1] must be a whole number"),
    ("output_signal", {"signal": PAYLOADS[0], "p_min": 0, "p_max": 1}, "output_signal.signal must be one of"),
])
def test_a_results_file_with_a_wrong_type_is_refused_in_one_line(folders, tmp_path, field, value, says):
    folder = tmp_path / "train"
    shutil.copytree(folders / "train", folder)
    doc = json.loads((folder / "results.json").read_text())
    doc["results"][0].update({field: value, "diverged": doc["results"][0]["diverged"] if field != "diverged"
                              else value})
    if field == "diverged_step":
        doc["results"][0]["diverged"] = True
    (folder / "results.json").write_text(json.dumps(doc))
    with pytest.raises(InitlabError, match="not a valid initlab file") as e:
        report.render(folder)
    assert says in str(e.value) and "\n" not in str(e.value)
    result = CliRunner().invoke(main, ["report", str(folder)])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and says in result.output, result.output
    assert not (folder / "report.html").exists()


@pytest.mark.parametrize("change, says", [
    (lambda d: d["diagnoses"][0]["verdict"].update(summary=3), "diagnoses[0].verdict.summary must be a string"),
    (lambda d: d["diagnoses"][0]["layers"][0].update(fan_in=[1]), "diagnoses[0].layers[0].fan_in must be a string,"),
    (lambda d: d.update(diagnoses="x"), "diagnoses must be a non-empty list"),
    (lambda d: d.update(command={"a": 1}), "command must be a string"),
])
def test_a_diagnoses_file_with_a_wrong_type_is_refused_in_one_line(folders, tmp_path, change, says):
    folder = tmp_path / "diag"
    shutil.copytree(folders / "diag", folder)
    doc = json.loads((folder / "diagnoses.json").read_text())
    change(doc)
    (folder / "diagnoses.json").write_text(json.dumps(doc))
    result = CliRunner().invoke(main, ["report", str(folder)])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and says in result.output, result.output


def test_a_results_file_that_is_not_json_or_not_an_object_is_one_line(folders, tmp_path):
    folder = tmp_path / "train"
    shutil.copytree(folders / "train", folder)
    for text in ("{not json", "[1, 2]", json.dumps({"kind": "<b>", "results": []})):
        (folder / "results.json").write_text(text)
        result = CliRunner().invoke(main, ["report", str(folder)])
        assert result.exit_code == 2 and result.output.count("\n") == 1, result.output


def test_a_sweep_row_with_a_wrong_type_is_refused_in_one_line(tmp_path):
    record = _record(0, 0.7)
    record["config"]["seed"] = "zero"
    with Store(tmp_path / "runs.db") as store:
        store.write([record])
    result = CliRunner().invoke(main, ["report", str(tmp_path / "runs.db")])
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert "config.seed must be a whole number" in result.output
