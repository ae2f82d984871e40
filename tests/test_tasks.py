"""Tasks as plugins: the task registry follows the strategy registry's rules (entry points,
built-ins declared like third parties', one-line lookup errors), a third party's task trains
through the shared trainer without touching core, nothing outside tasks/ branches on a task's
name, and the read-side verbs do not import the training module."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from adapters_sft import registry
from adapters_sft.errors import UserError
from adapters_sft.recipe import load_recipe
from tests.conftest import install_plugin

PACKAGE = Path(__file__).resolve().parent.parent / "adapters_sft"

# A third party's task: SFT with its own summary line and run file, from its own package.
PLUGIN = '''
from adapters_sft.tasks.sft import SftTask


class EchoSft(SftTask):
    name = "echo-sft"
    summary = "sft that also writes echo.txt"

    def after_training(self, work, scores, prepared):
        (work / "echo.txt").write_text("trained by a plugin task")
'''


@pytest.fixture
def fresh_tasks(monkeypatch):
    monkeypatch.setattr(registry._tasks, "classes", {})
    monkeypatch.setattr(registry._tasks, "loaded", False)


@pytest.fixture
def task_plugin(tmp_path, monkeypatch, fresh_tasks):
    install_plugin(tmp_path, monkeypatch, "echo_task_plugin", PLUGIN, "adapters_sft.tasks",
                   "echo-sft = echo_task_plugin:EchoSft")


def test_builtin_tasks_come_from_entry_points(fresh_tasks):
    assert registry.task_names() == ["classification", "dpo", "grpo", "kto", "orpo", "reward", "sft", "simpo"]
    assert registry.get_task("classification").generative is False


def test_unknown_task_names_the_recipe_line_and_suggests(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("model: some/model\ntask: clasification\nstrategy: lora\ndata: {train: t.jsonl}\n")
    with pytest.raises(UserError, match=r"r.yaml:2: task: unknown task 'clasification' \(did you mean "
                                        r"'classification'\?\); known tasks: classification, dpo, grpo, kto, orpo, reward, sft, simpo"):
        load_recipe(str(path))


def test_a_third_party_task_trains_through_the_shared_trainer(task_plugin, tiny_recipe, tmp_path):
    from adapters_sft.trainer import train

    assert "echo-sft" in registry.task_names()
    recipe = tiny_recipe("lora", "task=echo-sft")
    result = train(recipe, echo=lambda line: None)
    assert (result.run_dir / "echo.txt").read_text() == "trained by a plugin task"
    assert (result.run_dir / "adapter").is_dir()


def test_no_module_outside_tasks_branches_on_the_task_name():
    branch = re.compile(r"task\s*(==|!=|in\s*\()|\btask\s*==")
    found = [f"{p.relative_to(PACKAGE)}:{i}" for p in PACKAGE.rglob("*.py") if "tasks" not in p.parts
             for i, line in enumerate(p.read_text().splitlines(), 1) if branch.search(line)]
    assert found == []


def test_read_side_verbs_do_not_import_the_training_module():
    code = ("import sys\n"
            "import adapters_sft.run_reader, adapters_sft.evaluation, adapters_sft.export.merge, "
            "adapters_sft.export.formats\n"
            "from adapters_sft.cli import generate, chat, merge, export, eval\n"
            "from adapters_sft.registry import get_task\n"
            "get_task('sft'), get_task('classification')\n"
            "print('adapters_sft.trainer' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False", done.stderr
