"""PEFT's other methods (strategies/peft_methods.py): options are PEFT's own config fields,
refusals are one line before anything loads, `ls` imports no PEFT, and each method trains,
merges and exports (the contract test, tests/strategies/test_contract.py, trains and reloads
every one; tests/export/ merges and exports them)."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from adapters_sft.cli.main import main
from adapters_sft.registry import get_strategy, strategy_names
from adapters_sft.strategies.peft_methods import METHODS, OURS


def test_every_method_is_a_strategy_name():
    assert set(METHODS) <= set(strategy_names())


@pytest.mark.parametrize("name", METHODS)
def test_options_are_pefts_own_fields_with_their_help(name):
    import enum
    import typing

    import peft

    from adapters_sft.strategies.peft_methods import DEFAULTS, SET_BY_US, _plain, _values_of_enums

    config = getattr(peft, METHODS[name][0])
    hints = typing.get_type_hints(config)
    ours = {f.name: f for f in dataclasses.fields(get_strategy(name).Options)}
    pefts = {f.name: f for f in dataclasses.fields(config) if f.init and f.name not in OURS}
    # all of PEFT's fields but the nested configs and what we set ourselves
    left_out = {n for n in pefts if not _plain(_values_of_enums(hints[n]))} | SET_BY_US.get(name, set())
    assert set(ours) - {"name"} == set(pefts) - left_out
    assert "modules_to_save" in ours
    for key in set(ours) - {"name"}:
        f, p = ours[key], pefts[key]
        default = p.default if p.default is not dataclasses.MISSING else p.default_factory()
        default = DEFAULTS.get(name, {}).get(key, default)  # ours where PEFT has none usable
        default = default.value if isinstance(default, enum.Enum) else default
        got = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        assert got == default, key
        assert f.metadata["help"] == " ".join(str(p.metadata.get("help", "")).split()) or \
            f.metadata["help"].startswith("PEFT's"), key


def test_show_lists_pefts_options_with_help(capsys):
    assert main(["show", "loha"]) == 0
    out = capsys.readouterr().out
    assert "rank_dropout" in out and "module_dropout" in out and "target_modules" in out


def test_unknown_or_out_of_range_option_is_one_line(tmp_path, capsys):
    assert main(["validate", "smollm2-135m/lora", "strategy.name=loha", "strategy.rank=4",
                 "--no-data"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown key 'strategy.rank'" in err and "valid keys under 'strategy'" in err
    assert len(err.splitlines()) == 1
    assert main(["validate", "smollm2-135m/lora", "strategy.name=vera", "strategy.vera_dropout=1.5",
                 "--no-data"]) == 2
    assert "strategy.vera_dropout: must be in [0, 1)" in capsys.readouterr().err


def test_a_combination_peft_refuses_is_refused_before_anything_loads(tmp_path, capsys):
    """BOFT takes a block size or a block count, not both: PEFT's own check, in pre-flight."""
    out = tmp_path / "run"
    assert main(["validate", "smollm2-135m/lora", "strategy.name=boft", "strategy.boft_block_size=4",
                 "strategy.boft_block_num=2", f"output_dir={out}"]) == 2
    err = capsys.readouterr().err
    assert "strategy: PEFT's BOFTConfig refused the options" in err and "adapters-sft show boft" in err
    assert not out.exists()


def test_ls_lists_them_without_importing_peft():
    code = ("import sys; from adapters_sft.cli.main import main; main(['ls']); "
            "sys.exit('peft imported' if 'peft' in sys.modules else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr + done.stdout
    for name, (_, summary) in METHODS.items():
        assert name in done.stdout and summary[:20] in done.stdout


@pytest.mark.parametrize("name", METHODS)
def test_every_default_is_in_its_range(name):
    """A saved run's recipe.yaml holds every default; reading it back range-checks each one."""
    from adapters_sft.fields import check_range

    for f in dataclasses.fields(get_strategy(name).Options):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        check_range(default, f.metadata.get("range"), f"strategy.{f.name}")
