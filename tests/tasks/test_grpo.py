"""task: grpo on a tiny model: TRL's GRPOTrainer samples answers to prompts, the recipe's
rewards score them (built-ins, a user's file, a third party's plugin), every step logs the
reward per function, the answers' length and the KL to the reference; a reward that fails
mid-run stops it after a checkpoint, and the fixed run resumes; the run reads back, is scored
by `eval` and merges. The real model learning from rewards: tests/integration/test_grpo_smollm2.py."""
from __future__ import annotations

import importlib.util
import json
import re
import textwrap
from pathlib import Path

import pytest

from adapters_sft.cli.main import main
from adapters_sft.errors import UserError
from adapters_sft.trainer import build_trainer, train
from tests.conftest import WORDS, install_plugin
from tests.tasks.conftest import write_splits

# a reward of the user's own, TRL-style: the share of the answer's words among the first half of
# the tiny vocabulary's words (about half of a random model's, so each group has a spread)
YES = textwrap.dedent(f'''
    FIRST = set({list(WORDS[:18])!r})

    def yes_share(prompts, completions, **kwargs):
        texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
        return [sum(w in FIRST for w in t.split()) / max(len(t.split()), 1) for t in texts]
''')


def prompt_row(i: int) -> dict:
    q = WORDS[i % 12]
    return {"prompt": [{"role": "user", "content": f"what is {q}"}], "answer": f"{WORDS[(i * 5 + 3) % len(WORDS)]} {q}"}


@pytest.fixture(scope="session")
def prompt_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_splits(tmp_path_factory.mktemp("prompts"), {"train": [prompt_row(i) for i in range(16)],
                                                             "eval": [prompt_row(100 + i) for i in range(4)]})


@pytest.fixture
def grpo_file(tmp_path, tiny_model_dir, prompt_data):
    """grpo_file(strategy, rewards=None, training=None, **top) -> path of a recipe file."""
    (tmp_path / "yes.py").write_text(YES)

    def make(strategy: str = "lora", rewards: list | None = None, training: dict | None = None,
             name: str = "grpo", **top) -> Path:
        opts = {"r": 4, "alpha": 8, "dropout": 0.0} if strategy == "lora" else {}
        body = {"model": str(tiny_model_dir), "task": "grpo", "strategy": {"name": strategy, **opts},
                "data": {"train": str(prompt_data["train"]), "eval": str(prompt_data["eval"])},
                "rewards": rewards if rewards is not None else [
                    {"name": "contains", "column": "answer"}, {"name": f"{tmp_path / 'yes.py'}:yes_share", "weight": 0.5}],
                # 2 prompts x 4 answers a step, 6 tokens each
                "training": {"max_steps": 3, "per_device_train_batch_size": 8, "num_generations": 4,
                             "max_completion_length": 6, "learning_rate": 1e-2, "logging_steps": 1,
                             **(training or {})},
                "eval": {"metric": "reward", "max_new_tokens": 6},
                "output_dir": str(tmp_path / name), **top}
        path = tmp_path / f"{name}.yaml"
        path.write_text(json.dumps(body))
        return path

    return make


def recipe_of(path: Path, *overrides: str):
    from adapters_sft.recipe import load_recipe

    return load_recipe(str(path), list(overrides))


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_grpo_logs_each_reward_the_answer_length_and_the_kl(grpo_file):
    result = train(recipe_of(grpo_file(), "eval.before_training=true"), echo=lambda line: None)
    steps = [r for r in records(result.run_dir) if "loss" in r and not r.get("final")]
    assert [r["step"] for r in steps] == [1, 2, 3]
    for key in ("rewards/contains/mean", "rewards/contains/std", "rewards/yes_share/mean", "reward",
                "completions/mean_length", "kl"):
        assert all(key in r for r in steps), key
    assert steps[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # the policy starts as its reference
    scores = json.loads((result.run_dir / "eval.json").read_text())
    for when in ("before", "after"):
        assert set(scores[when]["rewards"]) == {"contains", "yes_share"} and scores[when]["total"] == 4
        weighted = scores[when]["rewards"]["contains"] + 0.5 * scores[when]["rewards"]["yes_share"]
        assert scores[when]["reward"] == pytest.approx(weighted)
    assert (result.run_dir / "loss.png").is_file()


@pytest.mark.parametrize("strategy", ["full", "head-only", "freeze", "adapter", "ia3", "loha"])
def test_every_kind_of_strategy_trains_with_rewards(strategy, grpo_file):
    result = train(recipe_of(grpo_file(strategy), "training.max_steps=2"), echo=lambda line: None)
    assert "after" in result.scores and [r["step"] for r in records(result.run_dir) if "kl" in r] == [1, 2]


def test_the_reward_rises(grpo_file):
    """Only the user's reward: the tiny model learns to answer in the first half of its words."""
    path = grpo_file("full", rewards=[{"name": f"{Path(grpo_file('full').parent) / 'yes.py'}:yes_share"}],
                     training={"max_steps": 12, "learning_rate": 1e-2, "beta": 0.0})
    result = train(recipe_of(path, "eval.before_training=true"), echo=lambda line: None)
    sampled = [r["reward"] for r in records(result.run_dir) if "reward" in r]
    assert sum(sampled[-3:]) / 3 > sum(sampled[:3]) / 3 + 0.2, sampled
    assert result.scores["after"]["reward"] > result.scores["before"]["reward"]


def test_a_function_without_kwargs_gets_only_the_arguments_it_names(grpo_file, tmp_path):
    """TRL passes every column and its extras (completion_ids, trainer_state, ...)."""
    (tmp_path / "plain.py").write_text(textwrap.dedent('''
        def score(completions, answer):
            return [float(c[0]["content"].strip() == a) for c, a in zip(completions, answer)]
    '''))
    result = train(recipe_of(grpo_file(rewards=[{"name": f"{tmp_path / 'plain.py'}:score"}]), "training.max_steps=1"),
                   echo=lambda line: None)
    assert "rewards/score/mean" in records(result.run_dir)[0]


def test_a_third_party_reward_is_used_by_name(grpo_file, tmp_path, monkeypatch):
    from adapters_sft import registry

    monkeypatch.setattr(registry._rewards, "classes", {})
    monkeypatch.setattr(registry._rewards, "loaded", False)
    (tmp_path / "site").mkdir()
    install_plugin(tmp_path / "site", monkeypatch, "short_answers", textwrap.dedent('''
        from adapters_sft.rewards.base import Reward

        class Short(Reward):
            name = "short"
            summary = "1 for answers of at most two words"

            def score(self, answers, columns, completion_ids, prompts):
                return [float(len(a.split()) <= 2) for a in answers]
    '''), "adapters_sft.rewards", "short = short_answers:Short")
    result = train(recipe_of(grpo_file(rewards=[{"name": "short"}]), "training.max_steps=1"), echo=lambda line: None)
    assert "rewards/short/mean" in records(result.run_dir)[0]
    assert "short" in result.scores["after"]["rewards"]


def test_a_reward_failing_mid_run_stops_after_a_checkpoint_and_the_fixed_run_resumes(grpo_file, tmp_path, capsys):
    from adapters_sft import checkpoints
    from adapters_sft.resume import resume

    flaky = tmp_path / "flaky.py"
    flaky.write_text(textwrap.dedent('''
        def score(prompts, completions, trainer_state=None, **kw):
            if trainer_state is not None and trainer_state.global_step == 2:
                return ["oops"] * len(prompts)
            return [0.0] * len(prompts)
    '''))
    path = grpo_file(rewards=[{"name": f"{flaky}:score"}], training={"max_steps": 4})
    assert main(["train", str(path)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]  # not the progress bar
    assert len(err) == 1 and "reward 'score' returned 'oops' for answer 0, not a number (prompt 'what is" in err[0]
    assert f"stopped at step 2, its checkpoint kept: fix the reward, then 'adapters-sft resume {tmp_path / 'grpo'}'" in err[0]
    found, _ = checkpoints.latest(tmp_path / ".grpo.partial" / "checkpoints")
    assert found is not None and found.name == "checkpoint-2"
    flaky.write_text("def score(prompts, completions, **kw):\n    return [0.0] * len(prompts)\n")
    result = resume(tmp_path / "grpo", echo=lambda line: None)
    assert [r["step"] for r in records(result.run_dir) if "kl" in r] == [1, 2, 3, 4]


def test_a_reward_failing_on_the_trained_model_keeps_the_run_unscored_to_eval_once_fixed(grpo_file, tmp_path,
                                                                                        capsys):
    late = tmp_path / "late.py"
    late.write_text(textwrap.dedent('''
        def score(prompts, completions, trainer_state=None, **kw):
            if trainer_state is not None and trainer_state.global_step == 2:  # only once trained
                raise ValueError("no scale for this")
            return [0.0] * len(prompts)
    '''))
    path = grpo_file(rewards=[{"name": f"{late}:score"}], training={"max_steps": 2})
    assert main(["train", str(path)]) == 2
    run = tmp_path / "grpo"
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(err) == 1 and "reward 'score' raised ValueError: no scale for this" in err[0]
    assert f"the trained run is saved in {run} without its held-out score after training" in err[0]
    assert [r["step"] for r in records(run) if "kl" in r] == [1, 2]
    assert "after" not in json.loads((run / "eval.json").read_text()) and not (tmp_path / ".grpo.partial").exists()
    late.write_text("def score(prompts, completions, **kw):\n    return [1.0] * len(prompts)\n")
    assert main(["eval", str(run)]) == 0
    assert json.loads((run / "evals" / "heldout" / "eval.json").read_text())["rewards"] == {"score": 1.0}


def test_a_reward_failing_before_any_step_leaves_nothing(grpo_file, tmp_path, capsys):
    broken = tmp_path / "broken.py"
    broken.write_text("def score(prompts, completions, **kw):\n    raise KeyError('answer')\n")
    assert main(["train", str(grpo_file(rewards=[{"name": f"{broken}:score"}]))]) == 2
    err = capsys.readouterr().err.strip()
    assert "reward 'score' raised KeyError: 'answer' (prompt 'what is" in err and "nothing had trained" in err
    assert not (tmp_path / "grpo").exists() and not (tmp_path / ".grpo.partial").exists()


def test_grpo_run_reads_back_evaluates_and_merges(grpo_file, tmp_path, capsys):
    result = train(recipe_of(grpo_file()), echo=lambda line: None)
    capsys.readouterr()
    assert main(["eval", str(result.run_dir)]) == 0
    printed = capsys.readouterr().out
    assert "reward " in printed and "(4 prompts, greedy answers)" in printed
    scored = json.loads((result.run_dir / "evals" / "heldout" / "eval.json").read_text())
    assert scored["rewards"] == pytest.approx(result.scores["after"]["rewards"])
    assert main(["merge", str(result.run_dir), "--out", str(tmp_path / "merged")]) == 0


@pytest.mark.parametrize("strategy, opts", [("lora", {"r": 4, "alpha": 8, "dropout": 0.0}), ("full", {})])
def test_init_from_an_sft_run_starts_at_that_run_with_it_as_the_reference(strategy, opts, grpo_file, tiny_recipe,
                                                                         tmp_path):
    """The policy starts as the SFT run, and so does the reference: the first step's KL is 0
    (against the base, which TRL would load for `full`, it would not be)."""
    import torch

    from adapters_sft.run_reader import load_run

    sft = train(tiny_recipe(strategy, "training.max_steps=4", "training.learning_rate=5e-2",
                            f"output_dir={tmp_path / 'sft'}", **opts), echo=lambda line: None).run_dir
    recipe = recipe_of(grpo_file(strategy, init_from=str(sft)))
    trainer, _, _ = build_trainer(recipe, tmp_path / "w")
    ids = torch.tensor([[1, 4, 10, 11, 2, 8, 1, 6, 12, 13]])
    as_trained, _, _ = load_run(sft)
    with torch.no_grad():
        assert torch.allclose(trainer.model.eval()(input_ids=ids).logits, as_trained(input_ids=ids).logits, atol=1e-5)
    result = train(recipe, echo=lambda line: None)
    assert records(result.run_dir)[0]["kl"] == pytest.approx(0.0, abs=1e-6)


def test_check_shows_the_prompt_and_what_each_reward_receives(grpo_file, capsys):
    assert main(["check", str(grpo_file())]) == 0
    out = capsys.readouterr().out
    assert "reward contains (built-in, weight 1) receives: answer" in out
    assert "reward yes_share (" in out and "weight 0.5) receives: answer" in out  # **kwargs: every column
    assert "<|im_start|>user\nwhat is hi<|im_end|>\n<|im_start|>assistant\n" in out
    assert "train: 16 prompts" in out


def bad(tmp_path: Path) -> dict:
    missing = tmp_path / "nope.py"
    empty = tmp_path / "empty.py"
    empty.write_text("def other(prompts, completions, **kw):\n    return [0.0] * len(prompts)\n")
    needs = tmp_path / "needs.py"
    needs.write_text("def score(prompts, completions, solution):\n    return [0.0] * len(prompts)\n")
    return {
        "unknown": ([{"name": "exact_mach"}], r"rewards\[0\].name: unknown reward 'exact_mach' \(did you mean 'exact_match'\?\)"),
        "column": ([{"name": "exact_match", "column": "solution"}],
                   r"rewards\[0\]: reward 'exact_match' reads column 'solution', which .*train.jsonl does not have \(its columns: answer\)"),
        "user column": ([{"name": f"{needs}:score"}], r"rewards\[0\]: reward 'score' reads column 'solution'"),
        "file": ([{"name": f"{missing}:score"}], r"rewards\[0\].name: file '.*nope.py' not found"),
        "function": ([{"name": f"{empty}:score"}], r"rewards\[0\].name: '.*empty.py' defines no function 'score'; its functions: other"),
        "module": ([{"name": "no_such_module_here:score"}], r"rewards\[0\].name: cannot import module 'no_such_module_here'"),
        "weight": ([{"name": "json", "weight": "high"}], r"rewards\[0\].weight: must be a number"),
        "none": ([], r"rewards: task grpo learns from rewards, and the recipe names none"),
    }


@pytest.mark.parametrize("case", ["unknown", "column", "user column", "file", "function", "module", "weight", "none"])
def test_bad_rewards_are_one_line_with_status_2_and_nothing_written(case, grpo_file, tmp_path, capsys):
    rewards, words = bad(tmp_path)[case]
    assert main(["train", str(grpo_file(rewards=rewards))]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(words, err), err
    assert not (tmp_path / "grpo").exists() and not (tmp_path / ".grpo.partial").exists()


def test_rewards_on_another_task_and_reward_weights_are_refused(grpo_file, capsys):
    with pytest.raises(UserError, match=r"rewards: task sft does not learn from rewards; set task=grpo"):
        recipe_of(grpo_file(), "task=sft")
    path = grpo_file(training={"reward_weights": [1.0, 1.0]})
    assert main(["train", str(path)]) == 2
    assert "training.reward_weights: set each reward's weight in rewards: instead" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_use_vllm_without_vllm_is_one_line_before_loading(grpo_file, tmp_path, capsys):
    assert main(["train", str(grpo_file(training={"use_vllm": True}))]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("training.use_vllm: vLLM is not installed; pip install 'adapters-sft[vllm]' (GPU only), "
                        "or leave generation to transformers (training.use_vllm: false)") and "\n" not in err
    assert not (tmp_path / "grpo").exists() and not (tmp_path / ".grpo.partial").exists()


def test_sigkill_then_resume_samples_and_trains_as_the_uninterrupted_run(grpo_file, tmp_path):
    """The checkpoint holds the RNG that draws the answers: the resumed run samples the same
    answers, so it logs the same rewards and ends with the same weights, bit for bit."""
    import signal

    from adapters_sft import checkpoints
    from adapters_sft.resume import resume
    from tests.test_checkpoints import STOP_AT, run_cli, trained_tensors

    def steps(run: Path) -> list[dict]:
        clock = ("runtime", "per_second", "flos", "memory", "step_time")
        return [{k: v for k, v in r.items() if not any(w in k for w in clock)} for r in records(run) if "kl" in r]

    extra = {"training": {"max_steps": 4, "logging_steps": 1}, "checkpoint": {"every_steps": 2}}
    whole = train(recipe_of(grpo_file(name="whole", **{k: v for k, v in extra.items() if k != "training"},
                                      training=extra["training"])), echo=lambda line: None)
    cut = grpo_file(name="cut", checkpoint=extra["checkpoint"], training=extra["training"])
    killed = run_cli(STOP_AT, "4", "KILL", "train", str(cut))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    found, _ = checkpoints.latest(tmp_path / ".cut.partial" / "checkpoints")
    assert found is not None and found.name == "checkpoint-2"
    result = resume(tmp_path / "cut", echo=lambda line: None)
    assert steps(result.run_dir) == steps(whole.run_dir) and len(steps(whole.run_dir)) == 4
    a, b = trained_tensors(whole.run_dir), trained_tensors(result.run_dir)
    assert a.keys() == b.keys() and a and all(bool((a[k] == b[k]).all()) for k in a)


def test_grpo_trains_in_two_processes_and_a_reward_failing_in_one_stops_both_after_a_checkpoint(grpo_file,
                                                                                              tmp_path, capfd):
    """Both train step 1; on step 2 only rank 1's reward fails: rank 0 must not wait for it
    forever in the next collective, and both stop after step 1's checkpoint."""
    from adapters_sft import checkpoints
    from adapters_sft.rundir import FINGERPRINT

    flaky = tmp_path / "flaky.py"
    flaky.write_text(textwrap.dedent('''
        import os

        def score(prompts, completions, trainer_state=None, **kw):
            if os.environ.get("RANK") == "1" and trainer_state is not None and trainer_state.global_step == 1:
                raise RuntimeError("rank one broke")
            return [0.0] * len(prompts)
    '''))
    path = grpo_file(rewards=[{"name": f"{flaky}:score"}], training={"max_steps": 3})
    assert main(["train", str(path), "--nproc", "2"]) != 0  # torch.distributed.run's own status
    err = capfd.readouterr().err
    assert "reward 'score' raised RuntimeError: rank one broke" in err
    assert "reward 'score' failed in another process of the run" in err and "stopped at step 1" in err
    work = tmp_path / ".grpo.partial"
    found, _ = checkpoints.latest(work / "checkpoints")
    assert found is not None and found.name == "checkpoint-1"
    assert json.loads((work / FINGERPRINT).read_text())["world_size"] == 2
    assert [r["step"] for r in records(work) if "kl" in r] == [1]


def test_plan_says_plainly_what_it_cannot_count_for_grpo(capsys):
    assert main(["plan", "smollm2-135m/grpo"]) == 2
    err = capsys.readouterr().err
    assert "task: grpo's memory is not modelled yet" in err and "num_generations" in err and "KV cache" in err
