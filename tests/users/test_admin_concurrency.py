"""User administration under real concurrency (PostgreSQL, real threads)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from app.db import db
from app.users.models import User
from tests.factories import bearer, create_user
from tests.support.threads import at_once

pytestmark = pytest.mark.services


@pytest.mark.parametrize("action", ["demote", "delete"])
def test_two_admins_removing_each_other_at_once_leave_one_admin(app: Flask, action: str) -> None:
    first, second = create_user(app, role="admin"), create_user(app, role="admin")
    pairs = [(first, second), (second, first)]

    def send(client: Any, i: int) -> Any:
        actor, target = pairs[i]
        path = f"/api/v1/users/{target.id}"
        if action == "demote":
            return client.patch(path, json={"role": "customer"}, headers=bearer(actor.access_token))
        return client.delete(path, headers=bearer(actor.access_token))

    responses = at_once(app, send, 2)
    assert sorted(r.status_code for r in responses) == [200 if action == "demote" else 204, 403], [
        r.get_data(as_text=True) for r in responses
    ]
    with app.app_context():
        admins = db.session.scalar(
            sa.select(sa.func.count()).where(User.role == "admin", User.is_active.is_(True), User.deleted_at.is_(None))
        )
    assert admins == 1
