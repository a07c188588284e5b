"""Login, refresh rotation with reuse detection, logout, and every way a token is refused."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import jwt as pyjwt
import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from flask_jwt_extended import create_access_token
from limits import parse_many

from app.auth.models import AuthSession
from app.auth.tokens import BLOCKLIST_PREFIX, claims_of
from app.db import db, utcnow
from app.extensions import limiter, redis_queues
from app.security import email_digest
from app.users import lockout
from app.users.models import User
from tests.conftest import json_of
from tests.factories import DEFAULT_PASSWORD, AuthedUser, bearer, create_user
from tests.support.mailbox import Mailbox

LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/users/me"


def login(client: FlaskClient, user: AuthedUser, password: str | None = None, ua: str = "pytest-agent"):
    return client.post(
        LOGIN, json={"email": user.email, "password": password or user.password}, headers={"User-Agent": ua}
    )


def assert_401(response, code: str = "UNAUTHORIZED") -> None:
    assert response.status_code == 401, response.get_data(as_text=True)
    assert json_of(response)["error"]["code"] == code


def test_login_returns_a_pair_with_the_documented_claims(app: Flask, client: FlaskClient) -> None:
    user = create_user(app, role="staff")
    body = json_of(login(client, user))["data"]
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    with app.app_context():
        access = claims_of(body["access_token"])
        refresh = claims_of(body["refresh_token"])
    for claims in (access, refresh):
        assert {"sub", "role", "jti", "type", "iat", "exp", "iss", "aud", "sid"} <= set(claims)
        assert claims["sub"] == user.id
        assert claims["role"] == "staff"
        assert claims["iss"] == "storefront-api"
    assert access["type"] == "access" and refresh["type"] == "refresh"
    assert access["exp"] - access["iat"] == 900
    # The refresh token expires with its session (the whole second at or before it), and the
    # session was opened a moment before the token was signed.
    assert 7 * 24 * 3600 - 1 <= refresh["exp"] - refresh["iat"] <= 7 * 24 * 3600
    assert client.get(ME, headers=bearer(body["access_token"])).status_code == 200


def test_unknown_email_and_wrong_password_answer_identically(app: Flask, client: FlaskClient) -> None:
    user = create_user(app)
    wrong = client.post(LOGIN, json={"email": user.email, "password": "Not-The-Password-1"})
    unknown = client.post(LOGIN, json={"email": "nobody@example.com", "password": "Not-The-Password-1"})
    assert wrong.status_code == unknown.status_code == 401
    strip = lambda r: {k: v for k, v in json_of(r)["error"].items() if k != "request_id"}  # noqa: E731
    assert strip(wrong) == strip(unknown)


def test_refresh_rotates_and_reuse_revokes_the_family(app: Flask, client: FlaskClient) -> None:
    user = create_user(app)
    first = json_of(login(client, user))["data"]
    second = json_of(client.post(REFRESH, headers=bearer(first["refresh_token"])))["data"]
    assert second["refresh_token"] != first["refresh_token"]
    assert client.get(ME, headers=bearer(second["access_token"])).status_code == 200

    # The spent refresh token comes back (stolen), past the reuse grace: the whole family dies.
    with app.app_context():
        db.session.execute(
            sa.update(AuthSession)
            .where(AuthSession.id == uuid.UUID(str(claims_of(first["refresh_token"])["sid"])))
            .values(rotated_at=utcnow() - timedelta(seconds=app.config["REFRESH_REUSE_GRACE_SECONDS"] + 1))
        )
        db.session.commit()
    assert_401(client.post(REFRESH, headers=bearer(first["refresh_token"])), "TOKEN_REVOKED")
    assert_401(client.post(REFRESH, headers=bearer(second["refresh_token"])), "TOKEN_REVOKED")
    assert_401(client.get(ME, headers=bearer(second["access_token"])), "TOKEN_REVOKED")
    # Other sessions of the same user are untouched.
    assert client.get(ME, headers=user.headers).status_code == 200


def test_a_rotated_refresh_token_expires_with_its_session(app: Flask, client: FlaskClient) -> None:
    user = create_user(app)
    with app.app_context():
        session = db.session.get(AuthSession, uuid.UUID(user.session_id))
        assert session is not None
        # A minute before its absolute end: a rotation cannot move the end past it.
        session.created_at = utcnow() - timedelta(seconds=app.config["SESSION_MAX_SECONDS"] - 60)
        db.session.commit()
    response = client.post("/api/v1/auth/refresh", headers=bearer(user.refresh_token))
    with app.app_context():
        refresh = claims_of(json_of(response)["data"]["refresh_token"])
    assert 59 <= refresh["exp"] - refresh["iat"] <= 61


def test_refresh_token_is_not_an_access_token_and_vice_versa(app: Flask, client: FlaskClient) -> None:
    user = create_user(app)
    assert_401(client.get(ME, headers=bearer(user.refresh_token)))
    assert_401(client.post(REFRESH, headers=bearer(user.access_token)))


def test_logout_kills_the_access_token_and_its_session(app: Flask, client: FlaskClient) -> None:
    user = create_user(app)
    pair = json_of(login(client, user))["data"]
    assert client.post("/api/v1/auth/logout", headers=bearer(pair["access_token"])).status_code == 204
    assert_401(client.get(ME, headers=bearer(pair["access_token"])), "TOKEN_REVOKED")
    assert_401(client.post(REFRESH, headers=bearer(pair["refresh_token"])), "TOKEN_REVOKED")
    assert client.get(ME, headers=user.headers).status_code == 200


def test_logout_all_ends_every_session(app: Flask, client: FlaskClient) -> None:
    user = create_user(app)
    other = json_of(login(client, user, ua="phone"))["data"]
    assert client.post("/api/v1/auth/logout-all", headers=user.headers).status_code == 204
    for token in (user.access_token, other["access_token"]):
        assert_401(client.get(ME, headers=bearer(token)), "TOKEN_REVOKED")
    assert_401(client.post(REFRESH, headers=bearer(other["refresh_token"])), "TOKEN_REVOKED")
    # Logging in again works.
    assert login(client, user).status_code == 200


def test_sessions_list_and_revoke_one(app: Flask, client: FlaskClient) -> None:
    user = create_user(app)
    phone = json_of(login(client, user, ua="phone"))["data"]
    listed = json_of(client.get("/api/v1/auth/sessions", headers=user.headers))
    assert listed["meta"]["total"] == 2
    by_agent = {s["user_agent"]: s for s in listed["data"]}
    assert by_agent["pytest"]["current"] is True and by_agent["phone"]["current"] is False
    assert set(by_agent["phone"]) == {"id", "created_at", "last_used_at", "user_agent", "ip", "current"}

    phone_id = by_agent["phone"]["id"]
    assert client.delete(f"/api/v1/auth/sessions/{phone_id}", headers=user.headers).status_code == 204
    assert_401(client.get(ME, headers=bearer(phone["access_token"])), "TOKEN_REVOKED")
    assert client.delete(f"/api/v1/auth/sessions/{phone_id}", headers=user.headers).status_code == 404
    assert json_of(client.get("/api/v1/auth/sessions", headers=user.headers))["meta"]["total"] == 1


def test_a_session_of_another_user_is_404(app: Flask, client: FlaskClient) -> None:
    alice, bob = create_user(app), create_user(app)
    response = client.delete(f"/api/v1/auth/sessions/{bob.session_id}", headers=alice.headers)
    assert response.status_code == 404
    assert client.get(ME, headers=bob.headers).status_code == 200


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def test_forged_and_tampered_tokens_are_401(app: Flask, client: FlaskClient) -> None:
    user = create_user(app)
    with app.app_context():
        claims = claims_of(user.access_token)
    unsigned = pyjwt.encode({**claims}, key="", algorithm="none")
    wrong_key = pyjwt.encode(claims, key="not-the-secret" * 4, algorithm="HS256")
    wrong_audience = pyjwt.encode(
        {**claims, "aud": "someone-else"}, key=app.config["JWT_SECRET_KEY"], algorithm="HS256"
    )
    for token in (_tamper(user.access_token), unsigned, wrong_key, wrong_audience, "garbage", "a.b.c"):
        assert_401(client.get(ME, headers=bearer(token)))
    for header in ({"Authorization": "Basic abc"}, {"Authorization": "Bearer"}, {}):
        assert_401(client.get(ME, headers=header))


def test_expired_token_is_401_token_expired(app: Flask, client: FlaskClient) -> None:
    user = create_user(app)
    with app.app_context():
        claims = claims_of(user.access_token)
        expired = create_access_token(
            identity=user.id,
            additional_claims={"role": "customer", "sid": claims["sid"]},
            expires_delta=timedelta(seconds=-5),
        )
    assert_401(client.get(ME, headers=bearer(expired)), "TOKEN_EXPIRED")


def test_token_of_a_deactivated_or_deleted_user_is_401(app: Flask, client: FlaskClient) -> None:
    admin, user, other = create_user(app, role="admin"), create_user(app), create_user(app)
    assert client.patch(f"/api/v1/users/{user.id}", json={"is_active": False}, headers=admin.headers).status_code == 200
    assert client.get(ME, headers=user.headers).status_code == 401
    assert login(client, user).status_code == 401
    assert client.delete(f"/api/v1/users/{other.id}", headers=admin.headers).status_code == 204
    assert client.get(ME, headers=other.headers).status_code == 401
    assert login(client, other).status_code == 401


def test_lockout_after_five_failures_and_unlock(app: Flask, client: FlaskClient) -> None:
    user = create_user(app)
    updated_at = json_of(client.get("/api/v1/users/me", headers=user.headers))["data"]["updated_at"]
    for _ in range(4):
        assert_401(login(client, user, password="Wrong-Password-99"))
    # Wrong passwords, typed by anyone, are no change of the account.
    assert json_of(client.get("/api/v1/users/me", headers=user.headers))["data"]["updated_at"] == updated_at
    locked = login(client, user, password="Wrong-Password-99")
    assert locked.status_code == 423
    assert json_of(locked)["error"]["code"] == "ACCOUNT_LOCKED"
    assert 0 < int(locked.headers["Retry-After"]) <= 900
    # Even the right password is refused while locked.
    assert login(client, user).status_code == 423

    # Fifteen minutes later the lock is gone and a success resets the count.
    with app.app_context():
        row = db.session.get(User, uuid.UUID(user.id))
        row.locked_until = utcnow() - timedelta(seconds=1)
        db.session.commit()
        limiter.reset()  # the rate-limit window has passed too
    assert login(client, user).status_code == 200
    for _ in range(4):
        assert_401(login(client, user, password="Wrong-Password-99"))
    assert login(client, user).status_code == 200


def test_an_email_without_an_account_locks_as_an_account_does(app: Flask, client: FlaskClient) -> None:
    # Were only accounts locked, five wrong passwords would tell anyone whether an email
    # is registered: a deactivated account and an unknown email lock as an account does.
    user, deactivated = create_user(app), create_user(app)
    with app.app_context():
        db.session.get(User, uuid.UUID(deactivated.id)).is_active = False
        db.session.commit()
    answers: dict[str, list[tuple[int, dict[str, Any], int]]] = {}
    for email in (user.email, deactivated.email, "ghost@example.com"):
        responses = [client.post(LOGIN, json={"email": email, "password": "Wrong-Password-99"}) for _ in range(6)]
        answers[email] = [
            (r.status_code, json_of(r)["error"] | {"request_id": None}, int(r.headers.get("Retry-After", 0)))
            for r in responses
        ]
    assert [status for status, _, _ in answers["ghost@example.com"]] == [401] * 4 + [423] * 2
    without_seconds = {email: [a[:2] for a in seen] for email, seen in answers.items()}
    assert without_seconds[user.email] == without_seconds[deactivated.email] == without_seconds["ghost@example.com"]
    seconds = [[a[2] for a in seen] for seen in answers.values()]
    assert all(abs(a - b) <= 1 for other in seconds for a, b in zip(seconds[0], other, strict=True))

    # The lock ends after LOGIN_LOCKOUT_SECONDS, and a new count begins.
    with app.app_context():
        for key in redis_queues.connection.scan_iter(f"{lockout.NO_ACCOUNT_PREFIX}*"):
            assert redis_queues.connection.pttl(key) <= 900_000
            redis_queues.connection.delete(key)
        limiter.reset()
    attempt = {"email": "Ghost@Example.COM", "password": DEFAULT_PASSWORD}  # the same email
    assert [client.post(LOGIN, json=attempt).status_code for _ in range(5)] == [401] * 4 + [423]


def test_password_is_rehashed_when_the_cost_changes(app: Flask, client: FlaskClient) -> None:
    user = create_user(app)
    with app.app_context():
        before = db.session.get(User, uuid.UUID(user.id)).password_hash
    saved = app.config["ARGON2_TIME_COST"]
    app.config["ARGON2_TIME_COST"] = saved + 1
    app.extensions.pop("storefront.password_hasher", None)
    try:
        assert login(client, user).status_code == 200
        with app.app_context():
            after = db.session.get(User, uuid.UUID(user.id)).password_hash
        assert after != before
        assert f"t={saved + 1}" in after and f"t={saved}," in before
    finally:
        app.config["ARGON2_TIME_COST"] = saved
        app.extensions.pop("storefront.password_hasher", None)
    assert login(client, user).status_code == 200


def test_a_token_without_subject_is_counted_against_the_ip(app: Flask, client: FlaskClient) -> None:
    """The per-account limit decodes the Bearer token before the view verifies it; a token
    that decodes but has no ``sub`` (only a leaked key makes one) falls back to the IP."""
    from app.auth.permissions import _account_key

    claims = {"type": "refresh", "jti": "x", "iss": "storefront-api", "aud": "storefront-clients", "exp": 4102444800}
    token = pyjwt.encode(claims, app.config["JWT_SECRET_KEY"], algorithm="HS256")
    with app.test_request_context(headers=bearer(token), environ_base={"REMOTE_ADDR": "198.51.100.9"}):
        assert _account_key() == "ip:198.51.100.9"
    response = client.post("/api/v1/auth/refresh", headers=bearer(token))
    assert response.status_code == 401
    assert json_of(response)["error"]["code"] == "UNAUTHORIZED"


def test_refresh_is_rate_limited_per_account_from_any_ip(app: Flask, client: FlaskClient) -> None:
    user = create_user(app)
    refresh_token, statuses = user.refresh_token, []
    for n in range(12):
        response = client.post(
            "/api/v1/auth/refresh",
            headers={"Authorization": f"Bearer {refresh_token}"},
            environ_base={"REMOTE_ADDR": f"198.51.100.{n}"},
        )
        statuses.append(response.status_code)
        if response.status_code != 200:
            break
        refresh_token = json_of(response)["data"]["refresh_token"]
    assert statuses == [200] * 10 + [429], statuses
    assert json_of(response)["error"]["code"] == "RATE_LIMITED"


def test_refreshes_behind_one_address_count_per_account_and_junk_per_address(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many users behind one carrier-NAT address refresh more often together than the
    per-IP budget allows: a refresh token that verifies counts against its account only.
    One that does not verify still counts against its address, and is refused past it."""
    nat = {"REMOTE_ADDR": "100.64.0.1"}
    ip_limit = min(item.amount for item in parse_many(app.config["RATELIMIT_AUTH_IP"]))
    users = [create_user(app) for _ in range(ip_limit + 5)]
    for n, user in enumerate(users):
        response = client.post(REFRESH, headers=bearer(user.refresh_token), environ_base=nat)
        assert response.status_code == 200, (n, response.get_data(as_text=True))

    # Junk from that address: counted per address (the per-account budget, which junk also
    # counts against by address, set out of the way to show the per-IP one).
    monkeypatch.setitem(app.config, "RATELIMIT_AUTH_EMAIL", "1000 per minute")
    with app.app_context():
        expired = claims_of(users[0].refresh_token)
    expired = pyjwt.encode({**expired, "exp": int(time.time()) - 5}, app.config["JWT_SECRET_KEY"], algorithm="HS256")
    junk = ["garbage", _tamper(users[1].refresh_token), users[2].access_token, expired]
    statuses = [
        client.post(REFRESH, headers=bearer(junk[n % len(junk)]), environ_base=nat).status_code
        for n in range(ip_limit + 1)
    ]
    assert statuses == [401] * ip_limit + [429], statuses
    # The address's budget is spent; a refresh token that verifies is not held by it.
    refreshed = client.post(REFRESH, headers=bearer(create_user(app).refresh_token), environ_base=nat)
    assert refreshed.status_code == 200, refreshed.get_data(as_text=True)
    assert client.post(REFRESH, headers=bearer("garbage"), environ_base=nat).status_code == 429


def test_unknown_email_and_wrong_password_do_the_same_hashing_work(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = create_user(app)
    verified: list[str] = []
    real_verify = PasswordHasher.verify

    def spy(self: PasswordHasher, encoded: str, password: str | bytes) -> bool:
        verified.append(encoded)
        return real_verify(self, encoded, password)

    monkeypatch.setattr(PasswordHasher, "verify", spy)

    unknown = client.post(LOGIN, json={"email": "nobody@example.com", "password": "Not-The-Password-1"})
    assert unknown.status_code == 401
    assert len(verified) == 1
    wrong = login(client, user, password="Not-The-Password-1")
    assert wrong.status_code == 401
    assert len(verified) == 2

    # Both checks ran against an argon2id hash of the same cost ($argon2id$v=19$m=..,t=..,p=..$...).
    params = [h.split("$")[1:4] for h in verified]
    assert params[0] == params[1]
    assert params[0][0] == "argon2id"


def test_logout_blocklists_the_access_token_for_its_remaining_life(app: Flask, client: FlaskClient) -> None:
    user = create_user(app)
    with app.app_context():
        claims = claims_of(user.access_token)
    remaining = claims["exp"] - time.time()
    assert client.post("/api/v1/auth/logout", headers=user.headers).status_code == 204

    with app.app_context():
        ttl = redis_queues.connection.ttl(BLOCKLIST_PREFIX + claims["jti"])
    # Present, with an expiry (-1 would be "forever", -2 "absent"), no longer than the token lives.
    assert 0 < ttl <= math.ceil(remaining), (ttl, remaining)
    assert ttl >= remaining - 60

    # Even if the session row were un-revoked, the blocklist alone still refuses the token.
    with app.app_context():
        db.session.execute(
            sa.update(AuthSession).where(AuthSession.id == uuid.UUID(user.session_id)).values(revoked_at=None)
        )
        db.session.commit()
    assert_401(client.get(ME, headers=user.headers), "TOKEN_REVOKED")


def test_an_addresss_budget_is_per_client_so_spending_it_locks_nobody_out(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that spent its budget at an address is refused there (however it spells
    it); its owner, elsewhere, still signs in and asks for a reset link. (Many clients
    guessing at one account meet the lockout: ``test_lockout_concurrency``.)"""
    monkeypatch.setitem(app.config, "LOGIN_MAX_FAILURES", 1000)  # so that the lockout (423) cannot answer first
    owner = create_user(app)
    limit = min(item.amount for item in parse_many(app.config["RATELIMIT_AUTH_EMAIL"]))
    attacker = {"REMOTE_ADDR": "203.0.113.9"}
    attempt = {"email": owner.email, "password": "Wrong-Password-99"}
    for i in range(limit):
        response = client.post(LOGIN, json=attempt, environ_base=attacker)
        assert response.status_code == 401, (i, response.get_data(as_text=True))
    refused = client.post(LOGIN, json={**attempt, "email": f" {owner.email.upper()} "}, environ_base=attacker)
    assert refused.status_code == 429
    assert json_of(refused)["error"]["code"] == "RATE_LIMITED"
    assert refused.headers["Retry-After"].isdigit()
    forgot = client.post("/api/v1/auth/password/forgot", json={"email": owner.email}, environ_base=attacker)
    assert forgot.status_code == 429
    # Another email from that client is still heard.
    assert client.post(LOGIN, json={**attempt, "email": "other@example.com"}, environ_base=attacker).status_code == 401

    elsewhere = {"REMOTE_ADDR": "198.51.100.7"}
    signed_in = client.post(LOGIN, json={"email": owner.email, "password": DEFAULT_PASSWORD}, environ_base=elsewhere)
    assert signed_in.status_code == 200, signed_in.get_data(as_text=True)
    forgot = client.post("/api/v1/auth/password/forgot", json={"email": owner.email}, environ_base=elsewhere)
    assert forgot.status_code == 202


def test_an_owner_locked_out_by_someone_elses_guesses_gets_back_in_with_a_reset_link(
    app: Flask, client: FlaskClient, mailbox: Mailbox, run_jobs: Callable[[], int]
) -> None:
    """Anyone can lock an account (that is what a lockout is) and spend their own budget at
    its address: the owner's reset link still comes, works, lifts the lock, and the owner
    signs in."""
    owner = create_user(app)
    limit = min(item.amount for item in parse_many(app.config["RATELIMIT_AUTH_EMAIL"]))
    attacker = {"REMOTE_ADDR": "203.0.113.9"}
    statuses = {
        client.post(
            LOGIN, json={"email": owner.email, "password": "Wrong-Password-99"}, environ_base=attacker
        ).status_code
        for _ in range(limit + 2)
    }
    assert statuses == {401, 423, 429}
    for _ in range(3):
        client.post("/api/v1/auth/password/forgot", json={"email": owner.email}, environ_base=attacker)

    elsewhere = {"REMOTE_ADDR": "198.51.100.7"}
    locked = client.post(LOGIN, json={"email": owner.email, "password": DEFAULT_PASSWORD}, environ_base=elsewhere)
    assert locked.status_code == 423
    forgot = client.post("/api/v1/auth/password/forgot", json={"email": owner.email}, environ_base=elsewhere)
    assert forgot.status_code == 202
    run_jobs()
    reset = client.post(
        "/api/v1/auth/password/reset",
        json={"token": mailbox.token_for(owner.email), "password": "Brand-New-Secret-88"},
        environ_base=elsewhere,
    )
    assert reset.status_code == 204
    signed_in = client.post(
        LOGIN, json={"email": owner.email, "password": "Brand-New-Secret-88"}, environ_base=elsewhere
    )
    assert signed_in.status_code == 200, signed_in.get_data(as_text=True)


def test_limit_keys_and_log_lines_never_hold_an_address(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The counters of per-email limits are keyed by a hash of the address: neither the
    limits' storage (Redis) nor the limiter's log line of a refusal shows it."""
    monkeypatch.setitem(app.config, "RATELIMIT_AUTH_EMAIL", "1 per minute")
    address = "someone.private@example.com"
    for _ in range(2):
        client.post("/api/v1/auth/password/forgot", json={"email": address})
    assert any("exceeded" in record.getMessage() for record in caplog.records)
    assert not [record.getMessage() for record in caplog.records if "someone.private" in record.getMessage()]
    storage: Any = limiter.storage
    if hasattr(storage.storage, "scan_iter"):  # Redis
        keys = [key.decode() if isinstance(key, bytes) else key for key in storage.storage.scan_iter("*")]
    else:  # in memory
        keys = [*storage.storage, *getattr(storage, "events", {})]
    assert keys and not [key for key in keys if "someone.private" in str(key)]
    # Nor a plain hash of it, which anyone holding a list of addresses could match: the
    # digest is keyed with SECRET_KEY.
    plain = {
        hashlib.sha256(address.encode()).hexdigest()[:32],
        hashlib.blake2b(address.encode(), digest_size=16).hexdigest(),
    }
    assert not [key for key in keys if any(digest in str(key) for digest in plain)]
    with app.app_context():
        assert [key for key in keys if email_digest(address) in str(key)]


def test_an_ipv6_client_is_counted_by_its_64_whichever_address_it_takes(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host picks any of the 2^64 addresses of its network: per-IP limits count the /64,
    so a fresh address per request gains nothing; another network has its own budget, and
    an IPv4-mapped address counts as the IPv4 one."""
    monkeypatch.setitem(app.config, "LOGIN_MAX_FAILURES", 1000)  # so that the lockout (423) cannot answer first
    limit = min(item.amount for item in parse_many(app.config["RATELIMIT_AUTH_IP"]))

    def attempt(address: str, n: int) -> int:
        body = {"email": f"someone{n}@example.com", "password": "Wrong-Password-99"}
        return client.post(LOGIN, json=body, environ_base={"REMOTE_ADDR": address}).status_code

    statuses = [attempt(f"2001:db8:1:2:{n:x}::{n + 1:x}", n) for n in range(limit + 2)]
    assert statuses == [401] * limit + [429] * 2, statuses
    assert attempt("2001:db8:1:3::1", 999) == 401  # the next /64
    for n in range(limit):
        assert attempt("198.51.100.9", 2000 + n) == 401
    assert attempt("::ffff:198.51.100.9", 3000) == 429
