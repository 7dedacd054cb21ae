"""The web dashboard in a real browser (headless chromium) on the real stack: control plane,
RabbitMQ, operator, workers and the gateway as a process with the chart's RBAC.

A person's path through it: paste a token (with the keyboard), submit a task from the form,
watch its bar advance and its phase turn Succeeded without a reload (and without polling:
the gateway's own request counters show no list or get while it runs), open its page,
cancel a running task with the button, and read a 403 as a sentence. Screenshots of the
list and of a task page, wide and narrow, are kept in .artifacts/dashboard/.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from testbed import ControlPlane, RabbitMQ
from tests.e2e.browser import chromium, one, resource_origins, severe_logs, shot, until
from tests.e2e.gateway_client import StreamRefused, gateway_app_worker
from tests.e2e.system import Process

if TYPE_CHECKING:
    from selenium import webdriver

    from tests.e2e.gateway_client import Gateway

pytestmark = pytest.mark.e2e
pytest_plugins = ["tests.e2e.gateway_fixtures"]  # gateway, gateway_worker


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


@pytest.fixture(scope="module")
def steps_worker(
    control_plane: ControlPlane,
    rabbitmq: RabbitMQ,
    operator: Process,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Process]:
    with gateway_app_worker(
        control_plane, rabbitmq, "gw-steps", tmp_path_factory.mktemp("dashboard-worker")
    ) as proc:
        yield proc


def reads(gw: Gateway) -> int:
    """How many list and get calls the gateway has answered (its own metrics)."""
    with urllib.request.urlopen(f"{gw.url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    pattern = r'^asynctask_gateway_requests_total\{[^}]*route="(listTasks|getTask)"[^}]*\} (\S+)'
    return int(sum(float(m.group(2)) for m in re.finditer(pattern, text, re.MULTILINE)))


def open_with_token(driver: webdriver.Chrome, gw: Gateway, namespace: str, token: str) -> None:
    """Load the dashboard and paste the token as a keyboard user would: Tab to the token
    field (its focus visibly outlined), type, Enter."""
    driver.get(f"{gw.url}/ui/#/ns/{namespace}")
    driver.execute_script("sessionStorage.clear()")
    driver.refresh()  # a fresh page without a token, focus at its start
    until(
        driver, "the prompt for a token", lambda d: "Paste a bearer token" in one(d, "#main").text
    )
    order = []
    for _ in range(6):
        ActionChains(driver).send_keys(Keys.TAB).perform()
        order.append(
            driver.switch_to.active_element.get_attribute("id")
            or driver.switch_to.active_element.text
        )
        if order[-1] == "token":
            break
    assert order == ["Skip to content", "AsyncTask", "namespace", "Open", "token"], order
    focused = driver.switch_to.active_element
    assert focused.value_of_css_property("outline-style") != "none", "no visible focus"
    focused.send_keys(token, Keys.ENTER)
    until(
        driver,
        "the token kept for the tab",
        lambda d: d.execute_script("return sessionStorage.getItem('asynctask.token') !== null"),
    )
    assert token not in driver.current_url


def live_list(driver: webdriver.Chrome) -> None:
    until(
        driver,
        "the list to be live",
        lambda d: one(d, "#main").get_attribute("data-live") == "true",
    )


def submit_from_form(
    driver: webdriver.Chrome, queue: str, request: dict[str, object], labels: str = ""
) -> str:
    one(driver, "#submit-toggle").click()  # a <details>: the form opens
    one(driver, "#submit-queue").send_keys(queue)
    area = one(driver, "#submit-request")
    area.clear()
    area.send_keys(json.dumps(request))
    if labels:
        one(driver, "#submit-labels").send_keys(labels)
    one(driver, "form.submit button[type=submit]").click()
    link = until(
        driver, "the submitted task's link", lambda d: d.find_elements(By.CSS_SELECTOR, "#notice a")
    )[0]
    name: str = link.text
    assert name.startswith("task-"), link.text
    return name


def row_states_until_succeeded(browser: webdriver.Chrome, row: str) -> list[tuple[str, int]]:
    """Watch the list's ``row`` until it turns Succeeded; the (phase, progress) states it
    showed, in order, each once."""
    seen: list[tuple[str, int]] = []

    def succeeded(d: webdriver.Chrome) -> bool:
        rows = d.find_elements(By.CSS_SELECTOR, row)
        if not rows:
            return False
        state = (
            rows[0].get_attribute("data-phase") or "",
            int(rows[0].find_element(By.TAG_NAME, "progress").get_attribute("value") or 0),
        )
        if not seen or seen[-1] != state:
            seen.append(state)
        return state[0] == "Succeeded"

    until(browser, "the row to turn Succeeded", succeeded, timeout=60)
    print("row states seen:", seen)
    return seen


def check_succeeded_task_page(browser: webdriver.Chrome, row: str) -> None:
    """Open the task of the list's ``row``: Succeeded, with its result, request and
    conditions, no cancel button; screenshots wide and narrow."""
    one(browser, f"{row} a").click()
    until(
        browser,
        "the task page",
        lambda d: (
            one(d, "#main").get_attribute("data-phase") == "Succeeded"
            and d.find_elements(By.ID, "section-result")
        ),
    )
    assert json.loads(one(browser, "#section-result-body pre").text) == {"steps": 4}
    assert '"pause": 1.5' in one(browser, "#section-request-body pre").text
    conditions = one(browser, "#section-conditions-body").text
    assert "Ready" in conditions and "Completed" in conditions
    assert not one(browser, "#cancel").is_displayed()
    shot(browser, "task")
    browser.set_window_size(390, 844)
    try:
        shot(browser, "task-narrow")
        browser.back()
        live_list(browser)
        shot(browser, "list-narrow")
    finally:
        browser.set_window_size(1280, 800)


def test_a_task_submitted_from_the_page_advances_live_to_succeeded(
    control_plane: ControlPlane,
    operator: Process,
    gateway: Gateway,
    steps_worker: Process,
    browser: webdriver.Chrome,
) -> None:
    open_with_token(browser, gateway, gateway.namespace, gateway.tokens["writer"])
    live_list(browser)
    browser.execute_script("window.notReloaded = true")
    before = reads(gateway)
    name = submit_from_form(
        browser, "gw-steps", {"steps": 4, "pause": 1.5}, labels="suite=dashboard"
    )
    row = f'tr[data-name="{name}"]'
    seen = row_states_until_succeeded(browser, row)
    assert browser.execute_script("return window.notReloaded === true"), "the page reloaded"
    assert [s for s in seen if s[0] == "Processing" and 0 < s[1] < 100], (
        f"the bar never showed partial progress: {seen}"
    )
    progress = [s[1] for s in seen]
    assert progress == sorted(progress) and seen[-1] == ("Succeeded", 100)
    assert reads(gateway) == before, "the page polled (list or get calls while it ran)"
    assert one(browser, f"{row} .queue").text == "gw-steps"
    chip = one(browser, '.chips button[data-phase="Succeeded"] b')
    assert int(chip.text) >= 1
    shot(browser, "list")
    check_succeeded_task_page(browser, row)
    assert resource_origins(browser) == {gateway.url}, "a request left the origin"
    assert severe_logs(browser) == []


def test_a_running_task_is_cancelled_from_its_button(
    operator: Process, gateway: Gateway, gateway_worker: Process, browser: webdriver.Chrome
) -> None:
    answer = gateway.call(
        "POST", gateway.tasks(), {"queue": "gw-sleepy", "request": {"seconds": 60}}
    )
    assert answer.status == 202, answer.body
    name = answer.json()["name"]
    page = f"{gateway.url}/ui/#/ns/{gateway.namespace}/tasks/{name}"
    # A reader may watch it but not cancel it: the refusal is a sentence, the task runs on.
    open_with_token(browser, gateway, gateway.namespace, gateway.tokens["reader"])
    browser.get(page)
    until(
        browser,
        "the task to run",
        lambda d: one(d, "#main").get_attribute("data-phase") == "Processing",
        timeout=60,
    )
    one(browser, "#cancel").click()
    refusal = until(
        browser,
        "the refusal",
        lambda d: (d.find_elements(By.CSS_SELECTOR, "#notice.error") or [None])[0],
    ).text
    assert refusal.startswith("Forbidden (403):") and "cannot patch" in refusal, refusal
    assert one(browser, "#main").get_attribute("data-phase") == "Processing"

    open_with_token(browser, gateway, gateway.namespace, gateway.tokens["writer"])
    browser.get(page)
    until(
        browser,
        "the task to run",
        lambda d: one(d, "#main").get_attribute("data-phase") == "Processing",
        timeout=60,
    )
    browser.execute_script("window.notReloaded = true")
    button = one(browser, "#cancel")
    assert button.is_displayed() and button.text == "Cancel task"
    button.click()
    until(
        browser,
        "the phase to turn Cancelled",
        lambda d: one(d, "#main").get_attribute("data-phase") == "Cancelled",
        timeout=60,
    )
    assert browser.execute_script("return window.notReloaded === true")
    assert not one(browser, "#cancel").is_displayed()
    until(browser, "the record's error", lambda d: d.find_elements(By.ID, "section-error"))
    assert gateway.call("GET", f"{gateway.tasks()}/{name}").json()["phase"] == "Cancelled"


def test_an_error_shows_its_traceback_excerpt_on_the_task_page(
    operator: Process, gateway: Gateway, steps_worker: Process, browser: webdriver.Chrome
) -> None:
    answer = gateway.call(
        "POST", gateway.tasks(), {"queue": "gw-steps", "request": {"steps": "many"}}
    )
    assert answer.status == 202, answer.body
    name = answer.json()["name"]
    open_with_token(browser, gateway, gateway.namespace, gateway.tokens["reader"])
    browser.get(f"{gateway.url}/ui/#/ns/{gateway.namespace}/tasks/{name}")
    until(
        browser,
        "the Error phase and its record",
        lambda d: (
            one(d, "#main").get_attribute("data-phase") == "Error"
            and d.find_elements(By.ID, "section-error")
        ),
        timeout=60,
    )
    error = one(browser, "#section-error-body").text
    assert "ValueError" in error and "Traceback" in error, error
    shot(browser, "task-error")


def test_a_token_without_access_reads_a_403_as_a_sentence(
    gateway: Gateway, browser: webdriver.Chrome
) -> None:
    open_with_token(browser, gateway, gateway.other, gateway.tokens["writer"])
    notice = until(
        browser,
        "the refusal",
        lambda d: (d.find_elements(By.CSS_SELECTOR, "#notice.error") or [None])[0],
    )
    until(browser, "its text", lambda d: notice.text.strip())
    text = notice.text
    print("403 as shown:", text)
    assert text.startswith("Forbidden (403):"), text
    assert f'cannot list asynctasks.asynctask.dev in the namespace "{gateway.other}"' in text
    assert "ask for a Role" in text
    assert notice.get_attribute("role") == "alert"
    assert not browser.find_elements(By.CSS_SELECTOR, "table.tasks tbody tr[data-name]")
    shot(browser, "forbidden")
    assert severe_logs(browser, allowed=r"status of 403") == []


def test_the_page_refuses_framing_and_inline_script(gateway: Gateway, tmp_path: Path) -> None:
    with urllib.request.urlopen(f"{gateway.url}/ui/", timeout=10) as resp:
        headers = resp.headers
        html = resp.read().decode()
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert headers["X-Frame-Options"] == "DENY" and headers["Referrer-Policy"] == "no-referrer"
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "an inline script"


def test_the_namespace_stream_sends_counts_then_each_change_and_the_deletion(
    operator: Process, gateway: Gateway, gateway_worker: Process
) -> None:
    """What the list is built on, read without a browser: GET …/tasks:watch."""
    stream = gateway.events(f"{gateway.tasks()}:watch?queue=gw-sleepy")
    first = next(stream)
    assert first.event == "counts" and first.id is None
    before = first.view["queues"].get("gw-sleepy", {}).get("Succeeded", 0)
    answer = gateway.call(
        "POST", gateway.tasks(), {"queue": "gw-sleepy", "request": {"seconds": 1}}
    )
    assert answer.status == 202, answer.body
    name = answer.json()["name"]
    phases: list[str] = []
    counts = first.view
    for event in stream:
        if event.event == "counts":
            counts = event.view
            continue
        assert event.event == "task", event
        assert event.view["queue"] == "gw-sleepy" and event.id == event.view["resourceVersion"]
        if event.view["name"] == name and (not phases or phases[-1] != event.view["phase"]):
            phases.append(event.view["phase"])
        if phases[-1:] == ["Succeeded"]:
            break
    assert phases[0] in ("Pending", "Processing") and phases[-1] == "Succeeded", phases
    while counts["queues"]["gw-sleepy"].get("Succeeded", 0) != before + 1:
        event = next(stream)  # the counts follow the terminal write
        if event.event == "counts":
            counts = event.view
    assert gateway.call("DELETE", f"{gateway.tasks()}/{name}").status == 204
    for event in stream:
        if event.event == "deleted":
            assert event.view == {"namespace": gateway.namespace, "name": name}
            break
    stream.close()
    with pytest.raises(StreamRefused) as refused:
        next(gateway.events(f"{gateway.tasks(gateway.other)}:watch"))
    assert refused.value.status == 403
    with pytest.raises(StreamRefused) as bad:
        next(gateway.events(f"{gateway.tasks()}:watch?phase=Pending"))
    assert bad.value.status == 400


def test_a_task_delayed_from_the_form_shows_scheduled_until_it_runs(
    control_plane: ControlPlane,
    operator: Process,
    gateway: Gateway,
    steps_worker: Process,
    browser: webdriver.Chrome,
) -> None:
    open_with_token(browser, gateway, gateway.namespace, gateway.tokens["writer"])
    live_list(browser)
    # The browser's local time, 6 s ahead, as a datetime-local input holds it (set before
    # submit_from_form opens the form).
    browser.execute_script(
        "const d = new Date(Date.now() + 6000); const p = (n) => String(n).padStart(2, '0');"
        "document.getElementById('submit-not-before').value = `${d.getFullYear()}-"
        "${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:"
        "${p(d.getSeconds())}`;"
    )
    name = submit_from_form(browser, "gw-steps", {"steps": 1, "pause": 0})
    row = f'tr[data-name="{name}"]'
    until(
        browser,
        "the row to show the Scheduled reason",
        lambda d: d.find_elements(By.CSS_SELECTOR, f'{row} .reason[data-reason="Scheduled"]'),
    )
    spec = json.loads(
        control_plane.kubectl(
            "get", "asynctask", name, "-n", gateway.namespace, "-o", "jsonpath={.spec}"
        ).stdout
    )
    assert spec["notBefore"].endswith("Z")
    row_states_until_succeeded(browser, row)
    assert not browser.find_elements(By.CSS_SELECTOR, f"{row} .reason")
