"""``flask`` commands for the people who run the store."""

from __future__ import annotations

import secrets
import sys
from datetime import timedelta

import click
import marshmallow as ma
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from app.cli_support import reports_outages, require_redis
from app.db import db
from app.errors import ValidationFailed
from app.mail import service as mail_service
from app.orders import expiry, idempotency
from app.permissions import Role
from app.products.seed import seed_catalog
from app.products.transfer import cli as transfer_cli
from app.schema import Schema
from app.users import service as users_service
from app.users.schemas import EmailAddress, full_name_field


@click.command("create-admin")
@click.argument("email")
@click.option("--full-name", default="Administrator", show_default=True)
@click.option(
    "--promote",
    is_flag=True,
    help="If EMAIL already has an account: make it an admin, set the given password, end its sessions.",
)
@with_appcontext
@reports_outages
def create_admin(email: str, full_name: str, promote: bool) -> None:
    """Create an admin account (or, with --promote, turn an existing account into one).

    The password is prompted for, or read from standard input when that is not a terminal.
    """
    try:
        # An email and a name the API would take: an account no one can sign in to, or a
        # greeting with a link in every mail, helps no one.
        identity = _AdminIdentitySchema().load({"email": email.strip(), "full_name": full_name})
    except ma.ValidationError as exc:
        problems = [f"{field}: {' '.join(messages)}" for field, messages in sorted(exc.messages_dict.items())]
        raise click.ClickException("; ".join(problems)) from exc
    email, full_name = identity["email"], identity["full_name"]
    user = users_service.find_by_email(email)
    if user is not None and user.deleted_at is not None:
        raise click.ClickException(f"{email} belongs to a deleted account; restore it or use another email.")
    if user is not None and not promote:
        raise click.ClickException(
            f"{email} already has an account, which was left unchanged. Pass --promote to make it an admin: "
            "its password is replaced by the one you give and every session of it ends."
        )
    password = _read_password()
    try:
        if user is None:
            users_service.create(email=email, password=password, full_name=full_name, role=Role.ADMIN, verified=True)
        else:
            users_service.promote_to_admin(user_id=user.id, password=password)
        db.session.commit()
    except ValidationFailed as exc:
        raise click.ClickException("; ".join(d["message"] for d in exc.details) or exc.message) from exc
    except sa.exc.IntegrityError:  # the email was taken meanwhile (another create-admin, a sign-up)
        db.session.rollback()
        raise click.ClickException(
            f"{email} got an account while this ran (another create-admin or a registration); nothing was "
            "changed. Run again with --promote to make that account an admin."
        ) from None  # the statement's parameters hold the new password's hash: not shown
    if user is None:
        click.echo(f"Created admin {email}.")
    else:
        click.echo(f"Promoted {email} to admin: its password was replaced and its sessions ended.")


class _AdminIdentitySchema(Schema):
    email = EmailAddress(required=True)
    full_name = full_name_field(required=True)


def _read_password() -> str:
    """A hidden prompt on a terminal; otherwise one line of standard input (never
    getpass there: it would read the controlling terminal, or warn that it cannot hide)."""
    if sys.stdin.isatty():
        password: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        return password
    line: str = sys.stdin.readline()
    return line.rstrip("\r\n")


DEMO_ACCOUNTS = (
    ("demo-staff@example.com", "Demo Staff", Role.STAFF),
    ("demo-customer@example.com", "Demo Customer", Role.CUSTOMER),
)
# The README's quick start logs in with it. Only outside production: there the demo
# accounts get a random password, printed once.
DEMO_PASSWORD = "Kiwi-Harbor-Lantern-2931"  # noqa: S105 (a documented development-only login)


@click.command("seed")
@click.option("--products", "product_count", default=50, show_default=True, type=click.IntRange(min=0))
@with_appcontext
@reports_outages
def seed(product_count: int) -> None:
    """Demo categories and products, a staff and a customer account, for a first look.

    Safe to run again: only what is missing is created. New demo accounts get the
    README's demo password (in production: a random one, printed once).
    """
    result = seed_catalog(products=product_count)
    click.echo(
        f"Catalog: {result.categories_created} categories and {result.products_created} products created "
        f"({result.products_existing} demo products already there)."
    )
    for email, full_name, role in DEMO_ACCOUNTS:
        if users_service.find_by_email(email) is not None:
            click.echo(f"{role.value:<8} {email} (already exists)")
            continue
        production = current_app.config["ENV_NAME"] == "production"
        password = secrets.token_urlsafe(12) + "-7a" if production else DEMO_PASSWORD
        users_service.create(email=email, password=password, full_name=full_name, role=role, verified=True)
        db.session.commit()
        click.echo(f"{role.value:<8} {email}  password: {password}")


@click.group("mail", cls=AppGroup)
def mail_group() -> None:
    """Transactional mail."""


@mail_group.command("relay")
@reports_outages
def relay() -> None:
    """Enqueue every unsent mail that has no live job (also runs periodically)."""
    require_redis()
    count = mail_service.relay_unsent(older_than=timedelta(0))
    click.echo(f"Enqueued {count} unsent mail(s).")


@mail_group.command("retry-failed")
@reports_outages
def retry_failed() -> None:
    """Send again the mail that failed every attempt (e.g. after fixing MAIL_URL)."""
    require_redis()
    retried, enqueued = mail_service.retry_failed()
    click.echo(f"Retrying {retried} failed mail(s).")
    if enqueued < retried:
        raise click.ClickException(
            f"Only {enqueued} of them could be enqueued (Redis failed meanwhile); the relay sends the others "
            "once Redis is back (or run `flask mail relay`)."
        )


@click.group("orders", cls=AppGroup)
def orders_group() -> None:
    """Orders."""


@orders_group.command("cancel-unpaid")
@reports_outages
def cancel_unpaid() -> None:
    """Cancel orders unpaid past ORDER_PAYMENT_MINUTES and restock them (the clock does it every minute)."""
    click.echo(f"Cancelled {expiry.cancel_unpaid()} unpaid order(s).")


@orders_group.command("purge-idempotency-keys")
@reports_outages
def purge_idempotency_keys() -> None:
    """Delete Idempotency-Key records past their 24 h window (also runs hourly)."""
    click.echo(f"Purged {idempotency.purge_expired()} expired idempotency key(s).")


def register_cli(app: Flask) -> None:
    app.cli.add_command(create_admin)
    app.cli.add_command(seed)
    app.cli.add_command(mail_group)
    app.cli.add_command(orders_group)
    transfer_cli.register(app)
