"""Each persona's journey through the pages only, in headless Chromium against the whole of
Berth (panel, control worker, a real agent deploying real containers):

- a team admin adds a person, makes them a viewer and requires two-factor sign-in;
- that person is sent to enrol an authenticator, enrols it, and signs in with a code;
- the viewer (a manager) reads the deployment timeline of a stack that was rolled back
  automatically, and exports it;
- the viewer's forged stop request is refused; the auditor finds it by search and exports it;
- an outsider sees none of it (404), a platform admin verifies the audit chain.

Setup (users, the team, a deployed and rolled-back stack) goes through the REST API as the
platform admin: it is not what these journeys are about."""

from __future__ import annotations

import base64
import csv
import io
import re
import time
from typing import Any

import pytest

from tests.e2e.stack import ADMIN, PASSWORD, Stack, api, sign_in

pytestmark = pytest.mark.root
PASSWORDS = {name: f"{name}-passphrase-e2e" for name in ("ana", "bob", "carol", "dave")}



def _compose(version: str, healthy: bool) -> str:
    check = "true" if healthy else "false"
    return f"""services:
  web:
    image: busybox
    command: [sleep, "3600"]
    init: true
    environment: {{VERSION: "{version}"}}
    healthcheck: {{test: ["CMD", "{check}"], interval: 1s, retries: 2}}
    deploy:
      update_config: {{order: start-first, failure_action: rollback, monitor: 1s}}
"""


def _revision(stack: Stack, token: str, stack_id: int, number: int) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for revision in api(stack, token, "GET", f"stacks/{stack_id}/revisions/"):
            if revision["number"] == number and revision["status"] not in ("pending",
                                                                           "running"):
                return revision
        time.sleep(0.5)
    raise AssertionError(f"revision {number} did not finish within 120 s")


@pytest.fixture(scope="module")
def world(stack: Stack) -> dict[str, Any]:
    token = stack.manage("berth_token", ADMIN).strip()
    for name, password in PASSWORDS.items():
        api(stack, token, "POST", "users/", {"username": name, "password": password})
    team = api(stack, token, "POST", "teams/", {"name": "shop-team"})
    api(stack, token, "POST", f"teams/{team['id']}/members/", {"username": "ana",
                                                                "role": "admin"})
    api(stack, token, "POST", f"teams/{team['id']}/members/", {"username": "carol",
                                                                "role": "auditor"})
    api(stack, token, "POST", "projects/", {"team": "shop-team", "name": "shop"})
    created = api(stack, token, "POST", "stacks/", {
        "name": "storefront", "project": "shop", "compose": _compose("1.4", True)})
    assert _revision(stack, token, created["id"], 1)["status"] == "succeeded"
    api(stack, token, "PATCH", f"stacks/{created['id']}/",
         {"compose": _compose("1.5", False), "deploy": True})
    assert _revision(stack, token, created["id"], 2)["status"] == "rolled_back"
    assert _revision(stack, token, created["id"], 3)["status"] == "succeeded"
    containers = api(stack, token, "GET", "containers/?project=shop")
    container = next(c for c in containers["results"] if c["name"].startswith("storefront-"))
    return {"token": token, "team": team["id"], "stack": created["id"],
            "container": container["id"]}


def _sign_in_as(browser: Any, stack: Stack, name: str, code: str = "") -> Any:
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    page.goto(f"{stack.url}/accounts/login/")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(PASSWORDS.get(name, PASSWORD))
    if code:
        page.get_by_label(re.compile("Authenticator or recovery code")).fill(code)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    return page


def _code(secret: str, drift: int = 0) -> str:
    from django_otp.oath import totp

    key = base64.b32decode(secret.replace(" ", "") + "=" * (-len(secret.replace(" ", "")) % 8))
    return f"{totp(key, drift=drift):06d}"


def _download_text(page: Any, link: Any) -> str:
    with page.expect_download(timeout=30_000) as info:
        link.click()
    return open(info.value.path(), encoding="utf-8").read()


def test_team_admin_adds_a_viewer_who_enrols_totp_then_reads_and_exports_deployments(
        stack: Stack, browser: Any, world: dict[str, Any]):
    # The team admin, through the pages: add bob, make him a viewer, require two-factor.
    ana = _sign_in_as(browser, stack, "ana")
    ana.get_by_role("link", name="Teams").click()
    ana.get_by_role("link", name="shop-team").click()
    add = ana.get_by_role("form", name="Add a member by username")
    add.get_by_label("Username").fill("bob")
    add.get_by_label("Role").select_option("operator")
    add.get_by_role("button", name="Add member").click()
    ana.get_by_label("Role of bob").select_option("viewer")
    ana.get_by_role("button", name="Change role of bob").click()
    ana.get_by_label("Require two-factor sign-in").check()
    ana.get_by_role("button", name="Save settings").click()
    # ana has no authenticator either: the requirement sends her to enrol one first
    ana.wait_for_url(re.compile(r"/account/\?enrol=1"))
    ana.get_by_role("button", name="Set up an authenticator").click()
    ana.get_by_label("Code from the app").fill(_code(ana.get_by_label(
        re.compile("Key, to type in")).input_value()))
    ana.get_by_role("button", name="Confirm").click()
    ana.goto(f"{stack.url}/teams/{world['team']}/")
    assert "bob" in ana.locator("#not-enrolled").inner_text()
    history = ana.locator(".team-history").inner_text()
    assert "bob" in history and "viewer" in history

    # bob: password only → the enrolment page, a QR code, confirm with a code.
    bob = _sign_in_as(browser, stack, "bob")
    bob.wait_for_url(re.compile(r"/account/\?enrol=1"))
    assert bob.locator("#enrolment-required").is_visible()
    bob.goto(f"{stack.url}/deployments/")  # nothing else opens before the enrolment
    bob.wait_for_url(re.compile(r"/account/\?enrol=1"))
    bob.get_by_role("button", name="Set up an authenticator").click()
    assert bob.locator(".account-qr svg").count() == 1
    secret = bob.get_by_label(re.compile("Key, to type in")).input_value()
    bob.get_by_label("Code from the app").fill(_code(secret))
    bob.get_by_role("button", name="Confirm").click()
    bob.get_by_role("button", name=re.compile("Sign out")).click()
    bob = _sign_in_as(browser, stack, "bob", _code(secret, drift=1))  # codes are single-use
    bob.wait_for_url(f"{stack.url}/")

    # The viewer reads the timeline of the rolled-back deploy and exports it.
    bob.get_by_role("link", name="Deployments").click()
    timeline = bob.locator("#timeline").inner_text()
    assert re.search(r"Admin deployed storefront revision 2 \(web environment: VERSION "
                     r"changed[^)]*\) at .*; it was rolled back automatically at .* because "
                     r".*health", timeline), timeline
    assert "Berth rolled storefront back automatically to revision 1" in timeline
    assert "storefront" in bob.locator("#apps-table").inner_text()
    exported = _download_text(bob, bob.get_by_role("link", name="Export as CSV"))
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [r["outcome"] for r in rows] == ["succeeded", "rolled_back", "succeeded"]
    bob.get_by_role("link", name="Printable report").click()
    assert "1 rolled back" in bob.locator("#report-counts").inner_text()
    assert bob.get_by_role("link", name="Teams").is_visible()
    assert bob.get_by_role("link", name="Audit log").count() == 0


def test_the_auditor_finds_the_viewers_refused_stop_by_search_and_exports_it(
        stack: Stack, browser: Any, world: dict[str, Any]):
    carol = _sign_in_as(browser, stack, "carol")
    if "/account/" in carol.url:  # the team requires two-factor: carol enrols first
        carol.get_by_role("button", name="Set up an authenticator").click()
        carol.get_by_label("Code from the app").fill(_code(carol.get_by_label(
            re.compile("Key, to type in")).input_value()))
        carol.get_by_role("button", name="Confirm").click()
    # The viewer has no stop button; a hand-made request is refused and audited.
    viewer = _sign_in_as(browser, stack, "dave")  # not yet a member: 404
    page_url = f"{stack.url}/containers/{world['container']}/"
    assert viewer.goto(page_url).status == 404
    token = world["token"]
    team = world["team"]
    api(stack, token, "POST", f"teams/{team}/members/", {"username": "dave", "role": "viewer"})
    api(stack, token, "PATCH", f"teams/{team}/", {"require_2fa": False})  # dave has no app
    viewer = _sign_in_as(browser, stack, "dave")
    viewer.goto(page_url)
    assert viewer.get_by_role("button", name=re.compile("^Stop")).count() == 0
    csrf = viewer.locator("input[name=csrfmiddlewaretoken]").first.input_value()
    refused = viewer.request.post(f"{page_url}stop/", form={"csrfmiddlewaretoken": csrf},
                                  headers={"Referer": page_url})
    assert refused.status == 403

    carol.goto(f"{stack.url}/")
    carol.get_by_role("link", name="Audit log").click()
    carol.get_by_label("Search").fill("container.stop")
    carol.get_by_label("Outcome").select_option("denied")
    carol.get_by_role("button", name="Apply").click()
    rows = carol.locator("#audit-table tbody").inner_text()
    assert "dave" in rows and "container.stop" in rows and "denied" in rows
    exported = _download_text(carol, carol.get_by_role("link", name="CSV"))
    records = list(csv.DictReader(io.StringIO(exported)))
    assert [(r["actor"], r["action"], r["outcome"]) for r in records] == [
        ("dave", "container.stop", "denied")]
    carol.get_by_role("link", name=re.compile(r"^\d+$")).first.click()
    assert "Dave was refused: container.stop" in carol.locator("#event-sentence").inner_text()


def test_an_operator_deploys_but_administers_nothing_and_keeps_a_personal_token(
        stack: Stack, browser: Any, world: dict[str, Any]):
    token = world["token"]
    api(stack, token, "POST", "users/", {"username": "olga", "password": "olga-passphrase-e2e"})
    api(stack, token, "POST", f"teams/{world['team']}/members/", {"username": "olga",
                                                                  "role": "operator"})
    PASSWORDS["olga"] = "olga-passphrase-e2e"
    olga = _sign_in_as(browser, stack, "olga")
    olga.wait_for_url(f"{stack.url}/")
    nav = olga.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link", name="Audit log").count() == 0
    nav.get_by_role("link", name="Stacks").click()
    olga.get_by_role("link", name="storefront").click()
    olga.get_by_role("button", name="Deploy", exact=True).click()  # operators deploy
    olga.wait_for_load_state()
    revisions = api(stack, token, "GET", f"stacks/{world['stack']}/revisions/")
    assert any(r["actor"] == "olga" for r in revisions)
    olga.goto(f"{stack.url}/teams/{world['team']}/")
    main = olga.locator("#main")
    assert main.get_by_role("button").count() == 0  # sees the team, changes nothing
    assert "history" not in main.inner_text().lower()
    # My account: a personal token's secret is shown once
    olga.get_by_role("link", name="My account").click()
    olga.get_by_role("link", name="API tokens").click()
    olga.get_by_label("Token name").fill("laptop")
    olga.get_by_role("button", name="Create token").click()
    secret = olga.get_by_label("Secret of laptop").input_value()
    assert secret.startswith("brt_")
    assert api(stack, secret, "GET", "me/")["username"] == "olga"
    olga.goto(f"{stack.url}/account/tokens/")
    assert secret not in olga.content() and "laptop" in olga.locator("#main").inner_text()


def test_an_outsider_sees_none_of_it_and_a_platform_admin_verifies_the_chain(
        stack: Stack, browser: Any, world: dict[str, Any]):
    token = world["token"]
    api(stack, token, "POST", "users/", {"username": "eve", "password": "eve-passphrase-e2e"})
    PASSWORDS["eve"] = "eve-passphrase-e2e"
    eve = _sign_in_as(browser, stack, "eve")
    eve.wait_for_url(f"{stack.url}/")
    for path in (f"/teams/{world['team']}/", f"/stacks/{world['stack']}/",
                 f"/containers/{world['container']}/"):
        assert eve.goto(f"{stack.url}{path}").status == 404, path
    eve.goto(f"{stack.url}/")
    nav = eve.get_by_role("navigation", name="Main")
    for hidden in ("Deployments", "Stacks", "Teams", "Audit log"):
        assert nav.get_by_role("link", name=hidden).count() == 0, hidden
    assert "storefront" not in eve.locator("#main").inner_text()
    # no role in any team: the lists are refused too
    assert eve.goto(f"{stack.url}/deployments/").status == 403
    assert eve.goto(f"{stack.url}/audit/").status == 403

    admin = browser.new_page()
    sign_in(admin, stack.url)
    admin.get_by_role("link", name="Audit log").click()
    admin.get_by_role("button", name="Verify now").click()
    admin.wait_for_url(re.compile(r"/operations/"))
    admin.locator('[data-field="status"]').filter(has_text="succeeded").wait_for(
        timeout=60_000)  # pushed live by the control worker running the check
    assert "chain intact" in admin.locator('[data-field="message"]').inner_text()
    admin.get_by_role("link", name="Audit log").click()
    assert "intact" in admin.locator("#chain-status").inner_text()
