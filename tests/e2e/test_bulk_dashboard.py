"""The dashboard's "Cancel all matching" in a real browser: offered only with a label filter,
asked twice, and the counts shown; exactly the filtered group is cancelled."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from selenium.webdriver.common.by import By

from testbed import ControlPlane
from tests.e2e.browser import chromium, one, until
from tests.e2e.test_bulk import cancel_requested, submit, team
from tests.e2e.test_dashboard import open_with_token

if TYPE_CHECKING:
    from selenium import webdriver

    from tests.e2e.gateway_client import Gateway

pytestmark = pytest.mark.e2e
pytest_plugins = ["tests.e2e.gateway_fixtures"]  # gateway


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


def test_cancel_all_matching_cancels_the_filtered_group_and_shows_the_counts(
    control_plane: ControlPlane, gateway: Gateway, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    ns, label, other = gateway.namespace, team(), team()
    group, bystanders = submit(gateway, label, 2), submit(gateway, other, 1)
    open_with_token(browser, gateway, ns, gateway.tokens["writer"])
    assert not one(browser, "#cancel-matching").is_displayed()  # no label filter: not offered
    selector = urllib.parse.quote(f"team={label}")
    browser.get(f"{gateway.url}/ui/#/ns/{ns}?labelSelector={selector}")
    until(
        browser,
        "the filtered rows",
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "tbody tr[data-name]")) == 2,
    )
    one(browser, "#cancel-matching").click()
    confirm = one(browser, "#cancel-matching-yes")
    assert confirm.is_displayed() and f"team={label}" in confirm.text
    assert not any(cancel_requested(control_plane, ns, name) for name in group)  # asked first
    confirm.click()
    notice = until(
        browser,
        "the counts",
        lambda d: (d.find_elements(By.CSS_SELECTOR, "#notice.info") or [None])[0],
    ).text
    assert notice.startswith("2 matched: 2 cancelled, 0 skipped"), notice
    assert all(cancel_requested(control_plane, ns, name) for name in group)
    assert not any(cancel_requested(control_plane, ns, name) for name in bystanders)
