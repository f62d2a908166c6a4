"""Stack pages: the editor shows compose errors at their lines and creates nothing, the stack
page lists services and revisions, the catalogue deploys a template from its form, and pages
follow the access policy."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from panel.stacks.models import Revision, Stack

pytestmark = pytest.mark.django_db

GOOD = "services:\n  web:\n    image: busybox\n    command: [httpd, -f]\n"
BAD = "services:\n  web:\n    image: busybox\n    volumes_from: [db]\n"


@pytest.fixture
def browser(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_editor_marks_the_bad_line_answers_400_and_creates_nothing(browser):
    page = browser.post("/stacks/new/", {"name": "web", "compose": BAD, "project": ""})
    assert page.status_code == 400
    text = page.content.decode()
    assert 'id="line-4"' in text and "services.web.volumes_from" in text
    assert "nothing was changed" in text and not Stack.objects.exists()
    assert 'name="compose"' in text and "volumes_from: [db]" in text  # the text is kept to fix


def test_editor_refuses_a_bad_environment_line_with_400_naming_it(browser):
    page = browser.post("/stacks/new/", {"name": "web", "compose": GOOD, "project": "",
                                         "environment": "MODE=prod\njust words"})
    assert page.status_code == 400
    assert "environment: line 2: write KEY=VALUE" in page.content.decode()
    assert not Stack.objects.exists()


def test_editor_page_itself_answers_200(browser):
    assert browser.get("/stacks/new/").status_code == 200


def test_stack_page_edit_refused_answers_400_with_the_bad_line_marked(browser):
    browser.post("/stacks/new/", {"name": "web", "compose": GOOD, "project": ""})
    stack = Stack.objects.get()
    page = browser.post(f"/stacks/{stack.pk}/", {"compose": BAD})
    assert page.status_code == 400
    text = page.content.decode()
    assert 'id="line-4"' in text and "services.web.volumes_from" in text
    stack.refresh_from_db()
    assert stack.compose == GOOD and stack.revisions.count() == 1
    assert browser.get(f"/stacks/{stack.pk}/").status_code == 200


def test_stack_page_edit_during_a_deploy_answers_409_saying_to_wait(browser):
    browser.post("/stacks/new/", {"name": "web", "compose": GOOD, "project": ""})
    stack = Stack.objects.get()  # revision 1 is still pending: no control worker runs here
    page = browser.post(f"/stacks/{stack.pk}/", {"compose": GOOD + "    init: true\n"})
    assert page.status_code == 409
    assert "revision 1 of stack web is still being deployed" in page.content.decode()
    assert stack.revisions.count() == 1
    stack.refresh_from_db()
    assert stack.compose == GOOD  # the refused edit was not kept either


def test_editor_creates_and_deploys_then_the_stack_page_shows_it(browser):
    made = browser.post("/stacks/new/", {"name": "web", "compose": GOOD, "project": ""})
    assert made.status_code == 302
    stack = Stack.objects.get()
    assert Revision.objects.get(stack=stack).number == 1
    page = browser.get(made["Location"]).content.decode()
    assert "Revisions" in page and "Services" in page and 'id="stack-log"' in page
    assert "web" in browser.get("/stacks/").content.decode()


def test_catalogue_form_deploys_a_template(browser):
    assert "Static web site" in browser.get("/stacks/templates/").content.decode()
    assert browser.get("/stacks/templates/static-site/").status_code == 200
    refused = browser.post("/stacks/templates/static-site/", {"name": "site", "PORT": "0"})
    assert refused.status_code == 400 and "must be from 1 to 65535" in refused.content.decode()
    assert not Stack.objects.exists()
    made = browser.post("/stacks/templates/static-site/", {"name": "site", "PORT": "8099",
                                                            "REPLICAS": "2"})
    assert made.status_code == 302
    assert Revision.objects.get(stack__name="site").spec["services"]["web"]["replicas"] == 2


def test_outsiders_get_404_for_a_stack_page(browser, db):
    from django.contrib.auth import get_user_model

    browser.post("/stacks/new/", {"name": "web", "compose": GOOD, "project": ""})
    stranger = Client()
    stranger.force_login(get_user_model().objects.create_user("zed", password="x" * 12))
    assert stranger.get(f"/stacks/{Stack.objects.get().pk}/").status_code == 404
    assert "web" not in stranger.get("/stacks/").content.decode().split("<main")[1]
