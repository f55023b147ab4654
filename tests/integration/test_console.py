"""The API console at /docs in headless Chromium: it loads from the service's own assets,
lists the operations of /openapi.json, and a "try it out" create sent with an API key
answers 202. A screenshot is left in test-artifacts/console.png."""
import asyncio
import json
import uuid
from pathlib import Path

from tests.integration.conftest import TEST_ADMIN_KEY
from tests.integration.test_dashboard import browser, eventually  # noqa: F401 - a fixture

FIND = "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.textContent)"


def texts(driver, selector):
    return driver.execute_script(FIND, selector)


async def test_the_console_lists_the_operations_and_sends_a_create_with_a_key(worker, browser, http):  # noqa: F811
    from selenium.webdriver.common.by import By

    async with http.get(f"{worker.url}/docs") as r:
        assert r.status == 200 and "script-src 'self'" in r.headers["Content-Security-Policy"]
    async with http.get(f"{worker.url}/docs/assets/swagger-ui-bundle.js") as r:
        assert r.status == 200 and len(await r.read()) > 100_000
    async with http.get(f"{worker.url}/docs/assets/..%2Fsecrets") as r:
        assert r.status == 404
    browser.get(f"{worker.url}/docs")

    async def listed():
        return len(texts(browser, ".opblock")) >= 50
    assert await eventually(listed), browser.page_source[:2000]
    assert any("createDatabase" in t for t in texts(browser, ".opblock-summary-operation-id"))

    browser.find_element(By.CSS_SELECTOR, ".btn.authorize").click()
    await asyncio.sleep(0.5)
    field = browser.find_elements(By.CSS_SELECTOR, ".auth-container input")[0]
    field.send_keys(TEST_ADMIN_KEY)
    browser.find_elements(By.CSS_SELECTOR, ".auth-btn-wrapper .authorize")[0].click()
    browser.find_element(By.CSS_SELECTOR, ".btn-done").click()

    block = browser.find_element(By.ID, "operations-databases-createDatabase")
    block.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    await asyncio.sleep(0.5)
    block.find_element(By.CSS_SELECTOR, ".try-out__btn").click()
    body = block.find_element(By.CSS_SELECTOR, "textarea.body-param__text")
    body.clear()
    db = f"console{uuid.uuid4().hex[:8]}"
    body.send_keys(json.dumps({"name": db}))
    block.find_element(By.CSS_SELECTOR, ".execute").click()

    async def answered():
        return [t.strip() for t in texts(browser, "#operations-databases-createDatabase "
                                                  ".live-responses-table .response-col_status")]
    statuses = await eventually(answered)
    Path("test-artifacts").mkdir(exist_ok=True)
    browser.save_screenshot("test-artifacts/console.png")
    assert "202" in statuses, statuses  # the header cell reads "Code"
