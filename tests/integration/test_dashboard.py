"""The dashboard in a real headless Chromium, against the running stack."""
import asyncio
import os
import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import TEST_ADMIN_KEY
from tests.integration.test_api_end_to_end import create_db, unique_db

V1 = "/api/v1"
ARTIFACTS = Path("test-artifacts")


@pytest.fixture
def browser():
    if not shutil.which("chromedriver"):
        if os.environ.get("SPICE_REQUIRE_BROWSER"):
            pytest.fail("chromedriver is missing (python -m spice.devstack.browser installs it)")
        pytest.skip("chromium-driver is not installed; `make test` installs it")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--window-size=1400,1600"):
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium")
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    yield driver
    driver.quit()


async def eventually(check, timeout=30.0, every=0.5):
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(every)


def page_number(driver, element_id: str) -> int:
    # Read in one script call: the page re-renders every 2 s, and a WebElement held
    # across a re-render goes stale.
    text = driver.execute_script(
        "const e = document.getElementById(arguments[0]); return e ? e.textContent : '';", element_id)
    return int(text) if text.strip().isdigit() else 0


async def test_dashboard_numbers_move_and_match_the_api(worker, http, browser):
    from selenium.webdriver.common.by import By

    browser.get(f"{worker.url}/dashboard#key={TEST_ADMIN_KEY}")

    async def loaded():
        return browser.execute_script(
            "return document.getElementById('answered-by').textContent").startswith("http")
    assert await eventually(loaded), browser.find_element(By.ID, "error").text
    assert browser.find_element(By.ID, "answered-by").text == worker.url
    before = page_number(browser, "state-COMPLETED")

    db = unique_db()
    await create_db(http, worker, db)
    command_ids = []
    for n in range(30):
        async with http.post(f"{worker.url}{V1}/ontology/{db}/async/create", json={"id": f"C{n}"}) as r:
            command_ids.append((await r.json())["command_id"])
    for command_id in command_ids:
        async with http.get(f"{worker.url}{V1}/commands/{command_id}/wait?timeout=60") as r:
            assert r.status == 200

    async def moved():
        return page_number(browser, "state-COMPLETED") >= before + 31  # 30 classes + the database
    assert await eventually(moved), (before, page_number(browser, "state-COMPLETED"))

    async def matches_api():
        async with http.get(f"{worker.url}{V1}/dashboard/data") as r:
            api = (await r.json())["by_state"]
        await asyncio.sleep(2.5)  # one page refresh after the API answer; nothing is flowing now
        page = {state: page_number(browser, f"state-{state}") for state in api}
        return page == api and api
    assert await eventually(matches_api, timeout=60), "the page's counts never matched the API"
    assert page_number(browser, "total-commands") == sum((await matches_api()).values())

    recent_ids = browser.execute_script(
        "return [...document.querySelectorAll('#recent tbody tr td:first-child')]"
        ".map(td => td.textContent)")
    ours = [c for c in recent_ids if c in command_ids]
    assert ours, recent_ids
    browser.execute_script(  # find and click in one go, between two re-renders
        "[...document.querySelectorAll('#recent tbody tr')]"
        ".find(tr => tr.cells[0].textContent === arguments[0]).click()", ours[0])

    async def detail_shown():
        return "COMPLETED" in browser.execute_script(
            "return document.querySelector('#detail-history tbody').textContent")
    assert await eventually(detail_shown, timeout=10)
    assert browser.find_element(By.ID, "detail-id").text == ours[0]
    assert "rate-chart" in browser.page_source and browser.find_elements(By.CSS_SELECTOR, "#rate-chart rect")
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))

    # Without a key the page shows no data and asks for one.
    browser.execute_script("localStorage.clear()")
    browser.get(f"{worker.url}/dashboard")

    async def asks_for_key():
        return browser.find_element(By.ID, "login").is_displayed()
    assert await eventually(asks_for_key, timeout=10)
    assert "401" in browser.find_element(By.ID, "error").text
