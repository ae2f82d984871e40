"""A typo in a run or model path is one line at once; a hub id goes to the hub only when it
answers, and an unreachable hub is one line at once, never a minute of retries."""
from __future__ import annotations

import socket

import pytest

from adapters_sft import hub
from adapters_sft.cli.main import main


@pytest.fixture
def no_network(monkeypatch):
    """The hub's host does not resolve, as on this project's machines; records each try."""
    import huggingface_hub.constants

    tries = []

    def refuse(address, timeout=None, *args, **kw):
        tries.append(address)
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # restored after the test: offline_reason() sets it
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    hub.offline_reason.cache_clear()
    yield tries
    hub.offline_reason.cache_clear()


@pytest.mark.parametrize("ref, ok", [("HuggingFaceTB/SmolLM2-135M-Instruct", True), ("gpt2", True),
                                     ("org/name.v1_2-x", True), ("some org/x", False),
                                     ("org/a/b", False), ("org--x/y", False), ("a/b..c", False),
                                     ("-a/b", False), ("a" * 97, False)])
def test_which_names_can_be_hub_ids(ref, ok):
    assert hub.can_be_hub_id(ref) is ok


@pytest.mark.parametrize("verb", ["generate", "chat"])
def test_a_typo_below_a_local_folder_is_one_line_and_asks_no_hub(verb, tmp_path, monkeypatch,
                                                               no_network, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "numbers").mkdir(parents=True)
    argv = [verb, "runs/numbrs"] + (["--prompt", "hi"] if verb == "generate" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "'runs/numbrs' does not exist (no such folder in runs/ (did you mean 'numbers'?))" in err
    assert no_network == []  # the hub was not asked


def test_an_unreachable_hub_is_asked_once_and_fails_at_once(no_network, capsys):
    import huggingface_hub.constants

    assert main(["generate", "someorg/somemodel", "--prompt", "hi"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Retrying" not in err, err
    assert ("model: 'someorg/somemodel' is not a folder here, and as a hub id its config cannot be "
            "fetched: the hub (huggingface.co) cannot be reached from here (Name or service not "
            "known), and it is not in the local hub cache") in err
    assert len(no_network) == 1 and huggingface_hub.constants.HF_HUB_OFFLINE is True


def test_offline_mode_is_said_and_the_hub_not_asked(no_network, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["generate", "someorg/somemodel", "--prompt", "hi"]) == 2
    assert "offline mode is on (HF_HUB_OFFLINE), and it is not in the local hub cache" in capsys.readouterr().err
    assert no_network == []


def test_a_name_that_cannot_be_a_hub_id_is_refused_before_any_lookup(no_network, capsys):
    assert main(["generate", "my model/v 2", "--prompt", "hi"]) == 2
    assert "'my model/v 2' is not a folder here nor a hub id" in capsys.readouterr().err
    assert no_network == []


@pytest.mark.parametrize("argv", [["eval"], ["merge", "--out", "m"], ["export", "--format", "peft", "--out", "p"]])
def test_a_run_path_typo_is_one_line_with_a_suggestion(argv, tmp_path, monkeypatch, no_network, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "lora").mkdir(parents=True)
    assert main([argv[0], "runs/lorra", *argv[1:]]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "runs/lorra: no such run directory (did you mean 'lora'?)" in err
    assert no_network == [] and sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
