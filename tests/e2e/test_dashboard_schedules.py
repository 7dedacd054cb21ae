"""The dashboard's Schedules and Queues views in a real browser (headless chromium) on the real
control plane, through a gateway with the chart's RBAC: a schedule's next and last run and
state in the list, its page with Suspend, Resume and Run now (the new task in its tasks),
a queue's counts with Pause and Resume, and a priority set in the submit form shown on the
task's page. Text from the cluster is shown as text: a condition message made of markup
stays a string, and no element or script comes of it.

The gateway is ``own_gateway`` (namespaces outside the shared operator's ``t-*``): no
operator acts on this schedule, so its status is written here on the status subresource,
as the operator would (the gateway only reads it). The queue's status likewise.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from selenium.webdriver.common.by import By

from testbed import ControlPlane
from tests.e2e.browser import chromium, one, severe_logs, shot, until
from tests.e2e.test_dashboard import open_with_token

if TYPE_CHECKING:
    from selenium import webdriver

    from tests.e2e.gateway_client import Gateway

pytestmark = pytest.mark.e2e
pytest_plugins = ["tests.e2e.openapi_fixtures"]  # own_gateway
MARKUP = '<img src=x onerror="window.pwned=1"><b>bold</b>'


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


def status_patch(cp: ControlPlane, *target: str, status: dict[str, Any]) -> None:
    cp.kubectl(
        "patch", *target, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip


@pytest.fixture
def schedule(control_plane: ControlPlane, own_gateway: Gateway) -> str:
    gw, name = own_gateway, f"dash-{uuid.uuid4().hex[:6]}"
    body = {
        "name": name,
        "schedule": "0 0 1 1 *",
        "template": {"spec": {"queue": "dash-none", "request": {}}},
    }
    assert gw.call("POST", f"/v1/namespaces/{gw.namespace}/schedules", body).status == 201
    ready = {"type": "Ready", "status": "True", "reason": "Scheduled", "message": MARKUP}
    status_patch(
        control_plane, "asynctaskschedule", name, "-n", gw.namespace,
        status={
            "lastScheduleTime": "2026-01-01T00:00:00Z",
            "nextScheduleTime": "2027-01-01T00:00:00Z",
            "conditions": [{**ready, "lastTransitionTime": "2026-01-01T00:00:00Z"}],
        },
    )  # fmt: skip
    return name


@pytest.fixture
def queue(control_plane: ControlPlane) -> Iterator[str]:
    name = f"dashq-{uuid.uuid4().hex[:6]}"
    manifest = {"apiVersion": "asynctask.dev/v1alpha1", "kind": "AsyncQueue"}
    control_plane.kubectl(
        "create", "-f", "-", input=json.dumps({**manifest, "metadata": {"name": name}})
    )
    status_patch(control_plane, "asyncqueue", name, status={"held": 7, "inFlight": 2})
    yield name  # own_gateway's writer may read, pause and resume queues
    control_plane.kubectl("delete", "asyncqueue", name, "--wait=false", check=False)


def row(driver: webdriver.Chrome, table: str, name: str) -> Any:
    found = driver.find_elements(By.CSS_SELECTOR, f'#{table} tr[data-name="{name}"]')
    return found[0] if found else None


def queue_cell(driver: webdriver.Chrome, name: str, css: str) -> str | None:
    text: str | None = driver.execute_script(
        "const r = document.querySelector(`#queues tr[data-name='${arguments[0]}']`);"
        "return r && r.querySelector(arguments[1]) ? r.querySelector(arguments[1]).textContent"
        " : null;",
        name,
        css,
    )
    return text


def click_in_row(driver: webdriver.Chrome, name: str, css: str) -> None:
    driver.execute_script(
        "document.querySelector(`#queues tr[data-name='${arguments[0]}'] ${arguments[1]}`)"
        ".click();",
        name,
        css,
    )


def status_of(cp: ControlPlane, queue: str) -> dict[str, Any]:
    obj = json.loads(cp.kubectl("get", "asyncqueue", queue, "-o", "json").stdout)
    status: dict[str, Any] = obj["status"]
    return status


def spec_of(cp: ControlPlane, *target: str) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(cp.kubectl("get", *target, "-o", "json").stdout)["spec"]
    return spec


def test_a_schedule_is_seen_suspended_resumed_and_run_from_the_dashboard(
    control_plane: ControlPlane, own_gateway: Gateway, browser: webdriver.Chrome, schedule: str
) -> None:
    gw, ns = own_gateway, own_gateway.namespace
    open_with_token(browser, gw, ns, gw.tokens["writer"])
    one(browser, "#nav-schedules").click()
    listed = until(browser, "the schedule's row", lambda d: row(d, "schedules", schedule))
    assert "0 0 1 1 *" in listed.text and "active" in listed.text
    next_run = browser.execute_script("return new Date('2027-01-01T00:00:00Z').toLocaleString()")
    assert listed.find_element(By.CSS_SELECTOR, "td.next").text == next_run
    shot(browser, "schedules")

    listed.find_element(By.TAG_NAME, "a").click()
    until(browser, "the schedule page", lambda d: one(d, "#main").get_attribute("data-suspend"))
    fields = one(browser, "#schedule-fields").text
    assert MARKUP in fields  # the condition's message, as text
    assert not browser.find_elements(By.CSS_SELECTOR, "#main img, #main b")
    one(browser, "#suspend").click()
    until(browser, "suspended", lambda d: one(d, "#main").get_attribute("data-suspend") == "true")
    assert spec_of(control_plane, "asynctaskschedule", schedule, "-n", ns)["suspend"] is True
    one(browser, "#resume").click()
    until(browser, "resumed", lambda d: one(d, "#main").get_attribute("data-suspend") == "false")
    assert spec_of(control_plane, "asynctaskschedule", schedule, "-n", ns)["suspend"] is False

    one(browser, "#trigger").click()
    link = until(
        browser, "the new task's link", lambda d: d.find_elements(By.CSS_SELECTOR, "#notice a")
    )
    assert link[0].text.startswith(f"{schedule}-manual-")
    until(
        browser, "the task among the schedule's", lambda d: row(d, "schedule-tasks", link[0].text)
    )
    shot(browser, "schedule")
    assert browser.execute_script("return window.pwned") is None
    assert severe_logs(browser) == []


def test_a_queue_is_paused_and_resumed_and_a_priority_is_submitted_from_the_dashboard(
    control_plane: ControlPlane, own_gateway: Gateway, browser: webdriver.Chrome, queue: str
) -> None:
    gw, ns = own_gateway, own_gateway.namespace
    open_with_token(browser, gw, ns, gw.tokens["writer"])
    one(browser, "#nav-queues").click()
    # The queues' rows are rebuilt on every read (every 5 s, and after an action): they are
    # read and clicked in one script each, never held across a rebuild. The held count shown
    # is the one stored: the test's 7, or what the session's operator, which serves every
    # AsyncQueue, wrote over it since.
    until(
        browser,
        "the queue's row with its stored held count",
        lambda d: queue_cell(d, queue, "td.held") == str(status_of(control_plane, queue)["held"]),
    )
    click_in_row(browser, queue, "button[data-action=pause]")
    until(browser, "paused", lambda d: queue_cell(d, queue, "td .flag") == "paused")
    assert spec_of(control_plane, "asyncqueue", queue)["paused"] is True
    shot(browser, "queues")
    click_in_row(browser, queue, "button[data-action=resume]")
    until(browser, "resumed", lambda d: queue_cell(d, queue, "td .flag") == "running")
    assert spec_of(control_plane, "asyncqueue", queue)["paused"] is False

    one(browser, "#nav-tasks").click()
    until(
        browser,
        "the list to be live",
        lambda d: one(d, "#main").get_attribute("data-live") == "true",
    )
    one(browser, "#submit-toggle").click()
    one(browser, "#submit-queue").send_keys("dash-none")
    one(browser, "#submit-priority").send_keys("9")
    one(browser, "form.submit button[type=submit]").click()
    link = until(
        browser,
        "the submitted task's link",
        lambda d: d.find_elements(By.CSS_SELECTOR, "#notice a"),
    )
    name = link[0].text
    link[0].click()
    run = until(browser, "the task page", lambda d: d.find_elements(By.ID, "section-run-body"))[0]
    assert "Priority\n9" in run.text
    task = json.loads(
        control_plane.kubectl(
            "get", "asynctasks.asynctask.dev", name, "-n", ns, "-o", "json"
        ).stdout
    )
    assert task["spec"]["priority"] == 9
    assert severe_logs(browser) == []
