"""The run view in a real browser (Debian's Chromium, as tests/integration/test_ui_browser.py):
a scored run shows its general-ability line and the three prompts with their answers before
and after training, as eval.json holds them."""
from __future__ import annotations

import importlib.util
import json

import pytest

from tests.ui.conftest import CHROMIUM, DRIVER, running

pytestmark = [
    pytest.mark.skipif(not (CHROMIUM and DRIVER),
                       reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"),
    pytest.mark.skipif(importlib.util.find_spec("selenium") is None, reason="needs: pip install selenium"),
]


def test_the_run_view_shows_what_training_cost(browser, tiny_recipe, tmp_path):
    from selenium.webdriver.common.by import By

    from adapters_sft.trainer import train
    from tests.integration.test_ui_browser import until

    root = tmp_path / "work"
    prompts = tmp_path / "general.txt"
    prompts.write_text("hi what is the date\nred blue green cat\na b c\nyes or no\n")
    run = root / "runs" / "tiny"
    train(tiny_recipe("lora", "eval.metric=exact_match", f"eval.general={prompts}", f"output_dir={run}"),
          echo=lambda *_: None)
    general = json.loads((run / "eval.json").read_text())["general"]
    with running(root) as ui:
        browser.get(f"{ui.url}?token={ui.token}")
        row = until(lambda: browser.find_elements(By.CSS_SELECTOR, 'tr.run[data-path="runs/tiny"]'), 60)
        row[0].click()
        line = until(lambda: browser.find_element(By.ID, "run-general-line").text, 60)
    assert line.startswith(f"{100 * general['unchanged']:.0f}% of 4 answers unchanged")
    assert f"KL {general['kl']:.3f} nats/token" in line
    cells = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
             for tr in browser.find_elements(By.CSS_SELECTOR, "#run-general-examples tbody tr")]
    assert cells == [[e["prompt"], e["before"].strip(), e["after"].strip()] for e in general["examples"]]
    assert len(cells) == 3
