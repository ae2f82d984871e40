"""The UI server without a browser (adapters_sft/ui/): the page and its API on loopback, the
CLI's own validation lines with the key they name, training started as the command shown, a
stop that leaves a resumable run, and what it refuses (other hosts, paths outside its folder,
non-JSON posts, a public address without a token)."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from adapters_sft.errors import UserError
from tests.ui.conftest import running


def wait_job(ui, number: int, timeout: float = 300) -> dict:
    end = time.time() + timeout
    while time.time() < end:
        job = next(j for j in ui.get("/api/jobs") if j["id"] == number)
        if job["state"] != "running":
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {number} still running")


def local_recipe(ui, tiny_recipe) -> str:
    """A copy of the tiny recipe in the served folder, writing its run below it."""
    recipe = tiny_recipe("lora")
    body = json.loads(Path(recipe.source).read_text())
    body["output_dir"] = "runs/tiny"
    (ui.root / "tiny.yaml").write_text(json.dumps(body))
    return "tiny.yaml"


def test_the_page_lists_shipped_and_local_recipes(ui, tiny_recipe):
    page = ui.get("/")
    assert "<title>adapters-sft</title>" in page and "/static/app.js" in page
    assert "drawCurves" in ui.get("/static/app.js")
    name = local_recipe(ui, tiny_recipe)
    names = {r["name"]: r["shipped"] for r in ui.get("/api/recipes")}
    assert names["smollm2-135m/lora"] is True and names[name] is False
    shipped = ui.get("/api/recipe?name=smollm2-135m/lora")
    assert any(line.startswith("Run: adapters-sft train smollm2-135m/lora") for line in shipped["about"])
    assert {"strategy.r", "strategy.alpha"} <= {o["key"] for o in shipped["options"]}
    assert all(o["help"] for o in shipped["options"])


def test_validation_is_the_clis_own_line_with_the_key(ui):
    bad = ui.post("/api/validate", {"recipe": "smollm2-135m/lora", "overrides": ["training.max_steps=-5"]})
    assert bad == {"ok": False, "key": "training.max_steps",
                   "error": "command line: training.max_steps: must be at least 1, or -1 to train "
                            "num_train_epochs epochs; got -5"}
    bad = ui.post("/api/validate", {"recipe": "smollm2-135m/lora", "overrides": ["strategy.rr=8"]})
    assert bad["key"] == "strategy.rr" and "did you mean 'r'" in bad["error"]
    good = ui.post("/api/validate", {"recipe": "smollm2-135m/lora", "overrides": ["training.max_steps=2"]})
    assert good["ok"] and good["command"] == "adapters-sft train smollm2-135m/lora training.max_steps=2"
    status, refused = ui.request("/api/do/train", {"recipe": "smollm2-135m/lora", "overrides": ["strategy.r=0"]})
    assert status == 400 and refused["key"] == "strategy.r" and not ui.get("/api/jobs")  # nothing started


def test_training_runs_as_the_command_shown_and_a_stop_leaves_a_resumable_run(ui, tiny_recipe):
    name = local_recipe(ui, tiny_recipe)
    job = ui.post("/api/do/train", {"recipe": name, "overrides": ["training.max_steps=2", "eval.metric=none"]})
    assert job["command"] == f"adapters-sft train {name} training.max_steps=2 eval.metric=none"
    assert wait_job(ui, job["id"])["state"] == "done"
    runs = {r["path"]: r for r in ui.get("/api/runs")}
    assert runs["runs/tiny"]["state"] == "finished" and runs["runs/tiny"]["steps"] == 2
    detail = ui.get("/api/run?path=runs/tiny")
    assert [m["step"] for m in detail["metrics"] if "loss" in m and not m.get("final")] == [1, 2]
    assert detail["files"]["loss.png"] and ui.get("/api/run-file?path=runs/tiny&name=loss.png")

    # a long run, stopped as Ctrl-C would: a checkpoint, then resume finishes it
    shutil.rmtree(ui.root / "runs")
    long = ui.post("/api/do/train", {"recipe": name, "overrides": [
        "training.max_steps=200", "eval.metric=none", "checkpoint.every_steps=50"]})
    partial = ui.root / "runs" / ".tiny.partial" / "checkpoints"
    end = time.time() + 300
    while not list(partial.glob("checkpoint-*/checkpoint.json")) and time.time() < end:
        time.sleep(0.2)
    ui.post("/api/stop", {"id": long["id"]})
    stopped = wait_job(ui, long["id"])
    assert stopped["state"].startswith("stopped") and "adapters-sft resume" in stopped["output"]
    runs = {r["path"]: r for r in ui.get("/api/runs")}
    assert runs["runs/tiny"]["state"] == "unfinished, resumable"
    resumed = ui.post("/api/do/resume", {"run": "runs/tiny"})
    assert resumed["command"] == "adapters-sft resume runs/tiny"
    assert wait_job(ui, resumed["id"])["state"] == "done"
    assert {r["path"]: r for r in ui.get("/api/runs")}["runs/tiny"]["steps"] == 200


def test_what_it_refuses(ui, tmp_path):
    status, data = ui.request("/api/runs", headers={"Host": "attacker.example:80"})
    assert status == 403  # DNS rebinding: a page elsewhere naming this port
    status, data = ui.request("/api/run?path=../..")
    assert status == 400 and "outside the folder the UI serves" in data["error"]
    status, data = ui.request("/api/run-file?path=.&name=recipe.yaml")
    assert status == 400
    status, data = ui.request("/api/validate", {"recipe": "x"}, headers={"Content-Type": "text/plain"})
    assert status == 400 and "must be JSON" in data["error"]
    status, data = ui.request("/api/do/merge", {"run": "../../elsewhere"})
    assert status == 400 and not ui.get("/api/jobs")
    from adapters_sft.ui.server import build

    with pytest.raises(UserError, match="--host 0.0.0.0: other machines could reach the UI"):
        build(ui.root, "0.0.0.0", 0)
    with running(ui.root, token="s3cret") as guarded:
        status, _ = guarded.request("/api/runs", headers={"X-Token": "wrong"})
        assert status == 401
        assert guarded.get("/api/runs") == []


def test_the_cli_verb_refuses_a_public_address_without_a_token(capsys):
    from adapters_sft.cli.main import main

    assert main(["ui", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "add --token" in err
