"""The dashboard in headless Chromium against the real stack: sign in, create and start a
container from the form, see its state change without a reload, watch its logs arrive, pause and
search them, reconnect without a gap, see the stats chart move, stop it and see why it was killed
(with the fix), upload an image archive and watch the progress bar; an anonymous socket is
refused."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.e2e.stack import Stack, sign_in

pytestmark = pytest.mark.root

LOGGER = ('i=0; while true; do i=$((i+1)); echo "line $i"; '
          'printf "\\033[31mred %s\\033[0m\\n" $i >&2; sleep 0.1; done')


def test_anonymous_socket_is_refused_with_4401(stack: Stack, browser: Any):
    page = browser.new_page()
    page.goto(f"{stack.url}/healthz")
    code = page.evaluate("""url => new Promise(resolve => {
        const socket = new WebSocket(url);
        socket.onclose = event => resolve(event.code);
    })""", stack.url.replace("http", "ws") + "/ws/events/")
    assert code == 4401
    page.close()


def test_container_journey_from_form_to_logs_stats_and_stop(stack: Stack, browser: Any,
                                                             tmp_path: Any):
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    sign_in(page, stack.url)
    assert page.locator("#live-status").inner_text(timeout=10_000) in ("live", "offline")

    # create and start from the form
    page.goto(f"{stack.url}/containers/new/")
    page.get_by_label("Image", exact=True).fill("busybox:latest")
    page.get_by_label("Name", exact=True).fill("e2e-logger")
    page.get_by_label("Command", exact=True).fill(f"sh -c '{LOGGER}'")
    page.get_by_label("Memory", exact=True).fill("64m")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url(re.compile(r"/containers/\d+/$"))
    status = page.locator("h1 [data-field=status]")
    # the state changes without a reload (events socket)
    page.wait_for_function("() => document.querySelector('h1 [data-field=status]').textContent "
                           "=== 'running'", timeout=60_000)
    assert status.inner_text() == "running"

    # log lines arrive, stdout and stderr told apart, ANSI colour rendered
    page.wait_for_function("() => window.berthLogs && window.berthLogs.count() >= 20",
                           timeout=30_000)
    assert page.locator(".logline.stderr .ansi-red-fg").first.inner_text().startswith("red ")
    # pause: the view stops following while lines keep arriving
    page.get_by_role("button", name="Following").click()
    assert page.evaluate("window.berthLogs.following()") is False
    first = page.evaluate("window.berthLogs.count()")
    page.wait_for_function(f"() => window.berthLogs.count() > {first + 5}")
    # search highlights and filters
    page.get_by_label("Search").fill("line 1")
    page.wait_for_function("() => window.berthLogs.shown() < window.berthLogs.count()")
    assert page.locator(".logline mark").first.inner_text() == "line 1"
    page.get_by_label("Search").fill("")
    # reconnect without a gap: drop the socket while lines are written, then check seq
    page.evaluate("window.berthLogs.dropConnection()")
    before = page.evaluate("window.berthLogs.lastSeq()")
    page.wait_for_function(f"() => window.berthLogs.connected() && "
                           f"window.berthLogs.lastSeq() > {before + 10}", timeout=30_000)
    assert page.evaluate("window.berthLogs.continuous()"), \
        page.evaluate("window.berthLogs.problems()")

    # the stats chart moves (samples keep arriving)
    page.wait_for_function("() => window.berthStats && window.berthStats.points() >= 3",
                           timeout=30_000)
    points = page.evaluate("window.berthStats.points()")
    page.wait_for_function(f"() => window.berthStats.points() > {points}", timeout=15_000)
    assert page.locator("#chart-cpu canvas").count() == 1

    # stop it and see the state change live
    page.locator("#act-stop").click()
    page.wait_for_function("() => document.querySelector('h1 [data-field=status]').textContent "
                           "=== 'exited'", timeout=60_000)
    # its shell is PID 1 with no SIGTERM handler: killed after the timeout, and the page says
    # why with the fix, without a reload
    page.wait_for_function("() => !document.querySelector('[data-row=stop_note]').hidden",
                           timeout=30_000)
    note = page.locator("#stop-note").inner_text()
    assert "SIGKILL" in note and "set init: true or handle SIGTERM" in note, note

    # upload an image archive and watch both progress bars fill
    archive = tmp_path / "busybox.oci.tar"
    stack.runtime("image", "export", "busybox:latest", str(archive))
    page.goto(f"{stack.url}/images/")
    page.get_by_label("Archive (OCI or docker save; .tar or .tar.gz)").set_input_files(
        str(archive))
    page.get_by_label("Tag (optional, one-image archives)").fill("e2e/uploaded:1")
    page.get_by_role("button", name="Upload and import").click()
    page.wait_for_function("() => document.getElementById('upload-progress').value === 1",
                           timeout=30_000)
    page.wait_for_function("() => document.getElementById('import-progress').dataset.status "
                           "=== 'succeeded'", timeout=60_000)
    assert page.locator("#import-progress").evaluate("e => e.value") == 1
    assert "e2e/uploaded:1" in page.locator("#import-text").inner_text()
    assert not [e for e in errors if "Content Security Policy" in e], errors
    page.close()


def test_operation_pushes_arriving_out_of_order_never_move_it_backwards(stack: Stack,
                                                                          browser: Any):
    """Two commits' pushes can reach the browser in either order (a control worker sends its
    "running: importing layers" after another sent "succeeded"): the page keeps the newest, and
    a finished operation stays finished."""
    page = browser.new_page()
    sign_in(page, stack.url)
    page.goto(f"{stack.url}/operations/")
    page.wait_for_function("() => document.getElementById('live-status').textContent === 'live'",
                           timeout=15_000)
    push = ("from panel.live.emit import send_now, PLATFORM_GROUP\n"
            "base = {'type': 'operation', 'id': 'e2e-order', 'kind': 'image.import',"
            " 'target_type': 'image', 'target_id': '', 'target_name': 'x', 'host': ''}\n"
            "for status, progress, message, version in (EVENTS):\n"
            "    send_now([PLATFORM_GROUP], {**base, 'status': status, 'progress': progress,"
            " 'message': message, 'version': version})\n")
    stack.manage("shell", "-c", push.replace("EVENTS", (
        "('running', 0.2, 'unpacking', 1), ('succeeded', 1.0, 'imported x', 3),"
        " ('running', 0.45, 'importing layers', 2)")))
    row = page.locator('tr[data-operation-id="e2e-order"]')
    row.locator('[data-field="status"]').filter(has_text="succeeded").wait_for(timeout=15_000)
    # then a push of another operation on the same socket: once the page shows it, the late
    # push (sent before it, delivered in order) has been handled
    stack.manage("shell", "-c", push.replace("EVENTS", "('running', 0.5, 'late', 4),") + (
        "send_now([PLATFORM_GROUP], {**base, 'id': 'e2e-marker', 'status': 'succeeded',"
        " 'progress': 1.0, 'message': 'marker', 'version': 1})\n"))
    page.locator('tr[data-operation-id="e2e-marker"] [data-field="message"]').filter(
        has_text="marker").wait_for(timeout=15_000)
    assert row.locator('[data-field="status"]').inner_text() == "succeeded"
    assert row.locator('[data-field="message"]').inner_text() == "imported x"
    page.close()


def test_an_operation_finished_before_the_page_subscribed_is_shown_finished(stack: Stack,
                                                                             browser: Any):
    """The operation finishes after its page was rendered but before the page's socket
    subscribed, so no push reaches it (the socket here is a silent stand-in): the page reads the
    operation's state once the socket is open and shows it finished (CI saw a restore and a
    chain verification stay "running" for minutes)."""
    made = stack.manage("shell", "-c", (
        "from panel.workloads.models import Operation\n"
        "print(Operation.objects.create(kind='e2e.race', target_type='volume',"
        " target_name='late', actor_name='e2e', status='running').pk)\n"))
    operation_id = made.strip().splitlines()[-1]
    finish = ("from panel.audit.services import Actor\n"
              "from panel.workloads.reports import record_operation_progress\n"
              f"record_operation_progress(Actor.system('e2e'), {operation_id!r}, 'succeeded',"
              " 100, 'finished unseen')\n")
    page = browser.new_page()
    sign_in(page, stack.url)

    def subscribe_too_late(socket: Any) -> None:  # called once the page has been rendered
        stack.manage("shell", "-c", finish)  # and never connected to the server: no push

    page.route_web_socket(re.compile(r"/ws/events/$"), subscribe_too_late)
    page.goto(f"{stack.url}/operations/{operation_id}/")
    status = page.locator('#operation [data-field="status"]')
    status.filter(has_text="succeeded").wait_for(timeout=30_000)
    assert page.locator('#operation [data-field="message"]').inner_text() == "finished unseen"
    page.close()
