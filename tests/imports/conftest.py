"""Who imports: staff (``products:import``); customers may not."""

from __future__ import annotations

import pytest
from flask import Flask

from tests.factories import AuthedUser, create_user


@pytest.fixture
def staff(app: Flask) -> AuthedUser:
    return create_user(app, role="staff")


@pytest.fixture
def customer(app: Flask) -> AuthedUser:
    return create_user(app, role="customer")
