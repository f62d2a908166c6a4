"""A stack's page in headless Chromium against the real stack (panel, control worker, agent with
its log shipper): the merged log of every replica is live — a line a replica writes after the
page loaded shows up without a reload, a replica added by scaling joins the log by itself, and a
dropped socket reconnects without losing or repeating lines, and removing the stack closes it
with its reason shown."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.e2e.stack import ADMIN, Stack, api, sign_in

pytestmark = pytest.mark.root

# Prints "started", then whatever the test drops into /tmp/say (through `exec`), once.
SPEAKER = ("echo started; while true; do if [ -f /tmp/say ]; then cat /tmp/say; rm -f /tmp/say; "
           "fi; sleep 0.2; done")
COMPOSE = f"services:\n  app:\n    image: busybox\n    command: [sh, -c, {json.dumps(SPEAKER)}]\n"



def _deployed(stack: Stack, token: str, stack_id: int, revision: int) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        data = api(stack, token, "GET", f"stacks/{stack_id}/")
        latest = data["latest_revision"] or {}
        if latest.get("number") == revision and latest.get("status") == "succeeded":
            return data
        assert latest.get("status") not in ("failed", "rolled_back", "paused"), latest
        time.sleep(0.5)
    raise AssertionError(f"revision {revision} was not deployed within 120s: {data}")


def _rows(page: Any) -> list[str]:
    return page.evaluate("window.berthStackLog.rows()")


def test_stack_log_is_live_follows_new_replicas_and_resumes(stack: Stack, browser: Any):
    token = stack.manage("berth_token", ADMIN).strip()
    created = api(stack, token, "POST", "stacks/", {"name": "talk", "compose": COMPOSE})
    stack_id = created["id"]
    first = _deployed(stack, token, stack_id, 1)
    replica = first["services"][0]["containers"][0]["container"]

    page = browser.new_page(viewport={"width": 1280, "height": 720})
    sign_in(page, stack.url)
    page.goto(f"{stack.url}/stacks/{stack_id}/")
    page.wait_for_function("() => window.berthStackLog && "
                           "window.berthStackLog.rows().some(r => r.endsWith('| started'))",
                           timeout=30_000)
    assert f"{replica} | started" in _rows(page)
    assert page.locator("#stack-log-info").inner_text().startswith("live · 1 replica")

    # a line the replica writes after the page loaded arrives without a reload
    stack.runtime("exec", replica, "sh", "-c", "echo written after load > /tmp/say")
    page.wait_for_function("() => window.berthStackLog.rows().includes("
                           f"{json.dumps(replica + ' | written after load')})", timeout=15_000)

    # scaling up: the new replica joins the same socket, from its first line
    api(stack, token, "POST", f"stacks/{stack_id}/services/app/scale", {"replicas": 2})
    scaled = _deployed(stack, token, stack_id, 2)
    names = sorted(c["container"] for c in scaled["services"][0]["containers"])
    added = next(name for name in names if name != replica)
    page.wait_for_function("() => window.berthStackLog.rows().includes("
                           f"{json.dumps(added + ' | started')})", timeout=30_000)
    assert sorted(page.evaluate("window.berthStackLog.replicas()")) == names
    colours = page.locator("#stack-log-lines .logline span:first-child").evaluate_all(
        "spans => [...new Set(spans.map(s => s.textContent + s.className))]")
    assert len(colours) == 2  # one colour per replica, different from each other
    assert len({c.split("|")[1] for c in colours}) == 2

    # a dropped socket reconnects and shows what was written meanwhile, once
    page.evaluate("window.berthStackLog.dropConnection()")
    stack.runtime("exec", added, "sh", "-c", "echo while away > /tmp/say")
    page.wait_for_function("() => window.berthStackLog.connected() && window.berthStackLog"
                           f".rows().includes({json.dumps(added + ' | while away')})",
                           timeout=30_000)
    rows = _rows(page)
    assert len(rows) == len(set(rows)), rows  # every line once

    # the REST endpoint API users poll still answers the same merged log
    merged = api(stack, token, "GET", f"stacks/{stack_id}/logs/?tail=5")
    assert merged["errors"] == []
    assert {(line["replica"], line["text"]) for line in merged["lines"]} >= {
        (replica, "started"), (replica, "written after load"), (added, "started"),
        (added, "while away")}

    # removing the stack ends the socket for good, saying why
    api(stack, token, "DELETE", f"stacks/{stack_id}/")
    page.wait_for_function("() => document.getElementById('stack-log-info').textContent === "
                           "'log closed: the stack was removed'", timeout=60_000)
    assert page.locator("#stack-log [style]").count() == 0  # the CSP blocks inline styles
    page.close()


FOLDER_COMPOSE = """services:
  web:
    image: busybox
    env_file: app.env
    command: ["sh", "-c", "[ \\"$$GREETING\\" = hello ] && exec httpd -f -p 8080 -h /www"]
    volumes: ["./site:/www:ro"]
    secrets: [token]
secrets:
  token: {file: ./token.txt}
"""


def test_a_project_folder_picked_in_the_editor_becomes_the_stacks_files(stack: Stack,
                                                                         browser: Any,
                                                                         tmp_path: Any):
    """A person picks the folder their compose file lives in: the editor takes the compose file
    from it, the env file, the secret and the site's pages travel with it, the stack deploys,
    and its page lists the files (the secret by name only)."""
    folder = tmp_path / "myapp"
    (folder / "site").mkdir(parents=True)
    (folder / "compose.yml").write_text(FOLDER_COMPOSE)
    (folder / "app.env").write_text("GREETING=hello\n")
    (folder / "token.txt").write_text("folder-secret-value")
    (folder / "site" / "index.html").write_text("from the folder")
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    token = stack.manage("berth_token", ADMIN).strip()

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, stack.url)
    page.goto(f"{stack.url}/stacks/new/")
    page.fill("#name", "fromfolder")
    page.set_input_files("#stack-files", folder)
    page.wait_for_function("() => document.getElementById('stack-files-chosen')"
                           ".dataset.count === '3'", timeout=15_000)
    assert "env_file: app.env" in page.input_value("#compose")  # taken from the folder
    page.get_by_role("button", name="Create and deploy").click()
    page.wait_for_url(f"{stack.url}/stacks/*/", timeout=30_000)
    stack_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    data = _deployed(stack, token, stack_id, 1)
    assert sorted(data["files"]) == ["app.env", "site/index.html"]
    assert data["secret_files"] == ["token.txt"]
    page.reload()
    listed = page.locator("#stack-files-list").inner_text()
    assert "site/index.html" in listed and "token.txt" in listed
    assert "secret: its content is never shown" in listed
    assert "folder-secret-value" not in page.content()
    api(stack, token, "DELETE", f"stacks/{stack_id}/")
