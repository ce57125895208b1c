"""The page at ``/`` in a real browser: Debian's chromium, headless, driven by Selenium through
Debian's chromedriver, against a live uvicorn server on a tiny run of every kind but qa. Outside CI
the test is skipped when chromium is not installed; in CI (``$CI`` set, as ``.ci/run`` does) it
fails instead, and ``.ci/run`` installs ``chromium chromium-driver`` when they are missing."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import live_server
from polytask.runner import load_run, predict
from polytask.serving import ServeLimits, create_app

pytestmark = pytest.mark.browser

PAIR = ["the film", "same same same indeed"]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


@pytest.fixture
def browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        reason = f"needs {CHROMIUM} and {CHROMEDRIVER}: apt-get install chromium chromium-driver"
        if os.environ.get("CI"):
            pytest.fail(reason + " (.ci/run installs them)")
        pytest.skip(reason)
    from selenium import webdriver
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1000,800"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def test_the_page_predicts_tags_and_compares_every_task(browser, served_run, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
    wait = WebDriverWait(browser, 30)
    run = load_run(served_run)
    with live_server(create_app(run, ServeLimits())) as url:
        browser.get(url + "/")
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "yes")
        assert browser.find_element(By.ID, "summary").text == \
            "4 tasks: classification, pair_classification, regression, tagging"

        # one task: a label with its probability bars
        Select(browser.find_element(By.ID, "task")).select_by_value("a")
        browser.find_element(By.ID, "field-text").send_keys("the movie was good")
        browser.find_element(By.ID, "predict").click()
        label = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#result .label-name"))[0]
        assert label.text == "1"
        widths = [b.get_attribute("style") for b in browser.find_elements(By.CSS_SELECTOR, "#result .bar > div")]
        assert len(widths) == 2 and all("width" in w for w in widths)

        # tags coloured over the words
        Select(browser.find_element(By.ID, "task")).select_by_value("chunk")
        browser.find_element(By.ID, "field-tokens").send_keys("the dog runs")
        browser.find_element(By.ID, "predict").click()
        wait.until(lambda d: d.find_element(By.ID, "result").get_attribute("data-done") == "chunk")
        tokens = browser.find_elements(By.CSS_SELECTOR, "#result .token")
        assert [t.find_element(By.TAG_NAME, "small").text for t in tokens] == ["B-NP", "I-NP", "B-VP"]
        colours = [t.value_of_css_property("background-color") for t in tokens]
        assert colours[0] == colours[1] != colours[2]

        # every task on the same text
        browser.find_element(By.ID, "tab-all").click()
        browser.find_element(By.ID, "all-text").send_keys(PAIR[0])
        browser.find_element(By.ID, "all-text-b").send_keys(PAIR[1])
        browser.find_element(By.ID, "compare").click()
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#compare-table tbody").get_attribute("data-done") == "yes")
        rows = {r.get_attribute("data-task"): r.find_element(By.CLASS_NAME, "output").text
                for r in browser.find_elements(By.CSS_SELECTOR, "#compare-table tbody tr")}
        assert set(rows) == {"a", "p", "sim", "chunk"}
        pair, sim = predict(run, "p", [PAIR])[0], predict(run, "sim", [PAIR])[0]
        assert rows["p"] == f"{pair['label']}\n{100 * pair['probability']:.1f}%"
        assert rows["sim"] == f"score {sim['score']:.3f}"
        assert rows["chunk"].split("\n")[::2] == ["the", "film"]
        assert "error" not in " ".join(rows.values()).lower()
        shot = tmp_path / "page.png"
        assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
