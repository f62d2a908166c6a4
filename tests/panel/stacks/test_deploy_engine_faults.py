"""A fault that would repeat at every take-over fails the revision with its reason instead of
leaving it `running` for good (seen: a control worker whose BERTH_SECRETS_KEY could not
decrypt the stack's secrets retried the deploy forever)."""

from __future__ import annotations

import pytest

from panel.stacks import services
from panel.stacks.engine import run_slice
from panel.stacks.models import Revision, Stack

pytestmark = pytest.mark.django_db


def test_an_undecryptable_secret_fails_the_revision_saying_why(actor, broker, make_host):
    make_host("edge-1")
    stack = services.create_stack(actor, "keyed", "services:\n  web:\n    image: busybox\n"
                                  "    environment: {PW: \"${PW}\"}\n", secrets={"PW": "x"})
    revision = services.deploy_stack(actor, stack)
    Stack.objects.filter(pk=stack.pk).update(secrets_encrypted="not-a-fernet-token")
    status, owner = run_slice(revision.pk)
    revision.refresh_from_db()
    assert (status, owner, revision.status) == (Revision.FAILED, "", Revision.FAILED)
    assert "internal error in the deploy engine" in revision.reason
    assert "BERTH_SECRETS_KEY" in revision.reason
    assert revision.lease_owner == ""
