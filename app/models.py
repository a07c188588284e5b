"""Every model, imported once so that ``db.metadata`` (and Alembic) sees the whole schema."""

from app.auth.models import AccountToken, AuthSession
from app.mail.models import OutboxMail
from app.users.models import User

__all__ = ["AccountToken", "AuthSession", "OutboxMail", "User"]
