"""The Prefect UI, in headless Chromium, shows a finished build's report with its preview.

Uses the server + worker of ``tests/fixtures/prefect_service.py`` (shared with
``tests/test_deployments.py``, which runs just before this module, so the server does
not idle through the rest of the suite) and a finished ``build-mosaic/on-demand`` run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.headless import chromium
from tests.fixtures.prefect_service import PrefectService, service_for_module

RENDERED_IMAGE_JS = """
const image = Array.from(document.images).find(
    image => image.src.startsWith('data:image/') && image.complete && image.naturalWidth > 0
);
return image ? {alt: image.getAttribute('alt'), width: image.naturalWidth} : null;
"""
"""The embedded preview, read in one script call: the page re-renders while it loads, so
an element handle found earlier can go stale."""


@pytest.fixture(scope="module")
def prefect_service(request: pytest.FixtureRequest,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectService]:
    yield from service_for_module(request, tmp_path_factory)


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium through Debian's chromedriver (quit, or killed, afterwards)."""
    with chromium("1400,1000", console=False) as driver:
        yield driver


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_run_page_leads_to_the_rendered_report(prefect_service, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    run_id = prefect_service.build_run()
    out = prefect_service.root / "on-demand" / "mosaic.jpg"
    wait = WebDriverWait(browser, 90, poll_frequency=0.25)
    browser.get(f"{prefect_service.ui_url}/v2/runs/flow-run/{run_id}?tab=Artifacts")
    card = wait.until(lambda driver: next(iter(driver.find_elements(
        By.XPATH, "//*[normalize-space(text())='mosaic-report']")), None))
    card.click()
    image = wait.until(lambda driver: driver.execute_script(RENDERED_IMAGE_JS))
    assert "/artifacts/artifact/" in browser.current_url
    assert image["alt"] == "Target and mosaic"
    assert image["width"] > 100
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "Mosaic report" in text and str(out) in text
