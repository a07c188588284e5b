"""/users: one's own profile, and administration of accounts."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from flask_jwt_extended import get_jwt

from app.api import Blueprint
from app.pagination import Page
from app.permissions import current_principal
from app.users import service
from app.users.models import User
from app.users.permissions import authenticated, can_manage_users
from app.users.schemas import UserAdminUpdateSchema, UserMeUpdateSchema, UserQueryArgsSchema, UserSchema

blp = Blueprint("users", __name__, url_prefix="/api/v1/users", description="Profiles and account administration")


@blp.route("/me")
class Me(MethodView):
    @authenticated
    @blp.response(200, UserSchema)
    @blp.doc(operationId="get_me")
    def get(self) -> User:
        """Your own profile."""
        return service.get(user_id=current_principal().id)

    @authenticated
    @blp.arguments(UserMeUpdateSchema, required=False)
    @blp.response(200, UserSchema)
    @blp.alt_response(423, response="LOCKED", description="ACCOUNT_LOCKED: too many wrong passwords")
    @blp.doc(operationId="update_me")
    def patch(self, data: dict[str, Any]) -> User:
        """Change your name or password (a new password needs current_password)."""
        session_id = uuid.UUID(get_jwt()["sid"])
        return service.update_me(user_id=current_principal().id, data=data, current_session_id=session_id)


@blp.route("")
class Users(MethodView):
    @can_manage_users
    @blp.arguments(UserQueryArgsSchema, location="query")
    @blp.response(200, UserSchema(many=True))
    @blp.doc(operationId="list_users")
    def get(self, args: dict[str, Any]) -> Page[User]:
        """List accounts (admin)."""
        return service.list_(args=args)


@blp.route("/<uuid:user_id>")
class UserItem(MethodView):
    @can_manage_users
    @blp.response(200, UserSchema)
    @blp.doc(operationId="get_user")
    def get(self, user_id: uuid.UUID) -> User:
        """One account (admin)."""
        return service.get(user_id=user_id)

    @can_manage_users
    @blp.arguments(UserAdminUpdateSchema, required=False)
    @blp.response(200, UserSchema)
    @blp.alt_response(409, response="CONFLICT")
    @blp.doc(operationId="update_user")
    def patch(self, data: dict[str, Any], user_id: uuid.UUID) -> User:
        """Change an account's role, activation or name (admin)."""
        return service.update(actor_id=current_principal().id, user_id=user_id, data=data)

    @can_manage_users
    @blp.response(204)
    @blp.alt_response(409, response="CONFLICT")
    @blp.doc(operationId="delete_user")
    def delete(self, user_id: uuid.UUID) -> None:
        """Soft-delete an account and end its sessions (admin)."""
        service.delete(actor_id=current_principal().id, user_id=user_id)
