"""What every ``flask`` command of the app shares: outages told in one line, not a traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click
import sqlalchemy as sa
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.extensions import redis_queues

F = TypeVar("F", bound=Callable[..., Any])


def reports_outages(command: F) -> F:
    """A command that finds the database or Redis unreachable says so in one line and exits
    with 1 (click's error), instead of a page of traceback."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            reason = next(iter(str(exc.orig).strip().splitlines()), "") or type(exc.orig or exc).__name__
            raise click.ClickException(f"The database is unreachable or refused the work: {reason}") from exc
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise click.ClickException(f"Redis is unreachable: {exc}") from exc

    return run  # type: ignore[return-value]  # same signature as ``command``


def require_redis() -> None:
    """Refuse to start work that must enqueue jobs while Redis cannot take them."""
    if redis_queues.in_process:
        return
    try:
        redis_queues.connection.ping()
    except RedisError as exc:
        message = f"Redis is unreachable ({exc}): nothing was changed; run this again once it is back."
        raise click.ClickException(message) from exc
