"""The accounts services on SQLite and PostgreSQL: passwords, invites, sessions, API tokens."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from alembic import command
from argon2 import PasswordHasher

from cryocurate import accounts
from cryocurate.accounts.crypto import token_hash
from cryocurate.catalog import db
from cryocurate.catalog.models import ApiToken, Invite, Role, User, UserSession
from cryocurate.errors import ConflictError, InputError, NotFoundError, PortalError
from cryocurate.portal import Portal
from tests.cli_in_process import cli


@pytest.fixture
def portal(tmp_path, database_url):
    with Portal.create(tmp_path / "portal", database_url=database_url) as p:
        yield p


def _past() -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)


def test_passwords_are_argon2id_with_rfc9106_low_memory_parameters():
    stored = accounts.hash_password("correct horse")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert accounts.verify_password(stored, "correct horse") == (True, False)
    assert accounts.verify_password(stored, "wrong horse") == (False, False)
    assert accounts.verify_password("not a hash", "x" * 8) == (False, False)
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("correct horse")
    assert accounts.verify_password(weak, "correct horse") == (True, True)
    with pytest.raises(InputError, match="at least 12"):
        accounts.hash_password("short")


def test_users_are_lower_cased_unique_and_roles_checked(portal):
    with portal.transaction() as s:
        user = accounts.add_user(s, "  Ada@Lab.ORG ", "Admin", display_name="Ada", lab="L")
        assert (user.email, user.role, user.password_hash) == ("ada@lab.org", Role.admin, None)
    with portal.transaction() as s:
        with pytest.raises(ConflictError, match="already exists"):
            accounts.add_user(s, "ADA@lab.org", "labeller")
        with pytest.raises(InputError, match="unknown role 'boss'"):
            accounts.add_user(s, "bob@lab.org", "boss")
        with pytest.raises(InputError, match="not an email"):
            accounts.add_user(s, "bob", "labeller")
        with pytest.raises(NotFoundError):
            accounts.get_user(s, "nobody@lab.org")
        assert [u.email for u in accounts.list_users(s)] == ["ada@lab.org"]
    # the database itself refuses an upper-case email
    with pytest.raises(sa.exc.IntegrityError), portal.transaction() as s:
        s.add(User(email="Eve@lab.org", role=Role.labeller, disabled=False))


def test_invites_are_hashed_one_time_and_expire(portal):
    with portal.transaction() as s:
        user = accounts.add_user(s, "ada@lab.org", "labeller")
        token = accounts.create_invite(s, user)
        stored = s.scalars(sa.select(Invite.token_hash)).all()
        assert stored == [token_hash(token)] and token not in stored
    with portal.transaction() as s:
        assert accounts.peek_invite(s, token).email == "ada@lab.org"
        with pytest.raises(InputError, match="at least 12"):
            accounts.accept_invite(s, token, "short")
    with portal.transaction() as s:
        accounts.accept_invite(s, token, "a long password")
    with portal.transaction() as s:
        assert accounts.authenticate(s, "ADA@lab.org", "a long password").email == "ada@lab.org"
        with pytest.raises(InputError, match="not valid"):  # one time only
            accounts.accept_invite(s, token, "another password")
    # expired
    with portal.transaction() as s:
        late = accounts.create_invite(s, accounts.get_user(s, "ada@lab.org"))
        s.execute(sa.update(Invite).where(Invite.used_at.is_(None)).values(expires_at=_past()))
    with portal.transaction() as s, pytest.raises(InputError, match="expired"):
        accounts.peek_invite(s, late)
    # a new invite replaces the older unused one
    with portal.transaction() as s:
        ada = accounts.get_user(s, "ada@lab.org")
        first, second = accounts.create_invite(s, ada), accounts.create_invite(s, ada)
    with portal.transaction() as s:
        with pytest.raises(InputError, match="not valid"):
            accounts.peek_invite(s, first)
        assert accounts.peek_invite(s, second).email == "ada@lab.org"
        with pytest.raises(InputError, match="not valid"):
            accounts.peek_invite(s, "made-up")


def test_authentication_refusals_do_not_say_why(portal):
    with portal.transaction() as s:
        ada = accounts.add_user(s, "ada@lab.org", "admin")
        accounts.accept_invite(s, accounts.create_invite(s, ada), "a long password")
        accounts.add_user(s, "bob@lab.org", "labeller")  # invited, no password yet
    for email, password in [
        ("ada@lab.org", "wrong password"),
        ("nobody@lab.org", "a long password"),
        ("bob@lab.org", ""),
        ("not an email", "x"),
    ]:
        with portal.transaction() as s, pytest.raises(accounts.AuthenticationError) as err:
            accounts.authenticate(s, email, password)
        assert str(err.value) == "wrong email or password"
    with portal.transaction() as s:
        accounts.disable_user(s, "ada@lab.org")
    with portal.transaction() as s, pytest.raises(accounts.AuthenticationError):
        accounts.authenticate(s, "ada@lab.org", "a long password")


def test_login_rehashes_a_password_with_old_parameters(portal):
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("a long password")
    with portal.transaction() as s:
        accounts.add_user(s, "ada@lab.org", "admin").password_hash = weak
    with portal.transaction() as s:
        accounts.authenticate(s, "ada@lab.org", "a long password")
    with portal.transaction() as s:
        assert accounts.get_user(s, "ada@lab.org").password_hash.startswith(
            "$argon2id$v=19$m=65536,t=3,p=4$"
        )


def test_sessions_expire_slide_and_end(portal):
    with portal.transaction() as s:
        user = accounts.add_user(s, "ada@lab.org", "reviewer")
        token = accounts.start_session(s, user)
        other = accounts.start_session(s, user)
        assert s.scalars(sa.select(UserSession.token_hash)).all().count(token_hash(token)) == 1
    with portal.transaction() as s:
        assert accounts.resolve_session(s, token).email == "ada@lab.org"
        assert accounts.resolve_session(s, "made-up") is None
        # sliding: a session seen long ago is pushed forward when used
        old = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
        s.execute(
            sa.update(UserSession).values(last_seen=old, expires_at=old + dt.timedelta(days=14))
        )
    with portal.transaction() as s:
        accounts.resolve_session(s, token)
    with portal.transaction() as s:
        row = s.scalar(sa.select(UserSession).where(UserSession.token_hash == token_hash(token)))
        left = accounts.crypto.aware(row.expires_at) - dt.datetime.now(dt.UTC)
        assert left > dt.timedelta(days=13)
        accounts.end_session(s, token)
    with portal.transaction() as s:
        assert accounts.resolve_session(s, token) is None  # logged out
        s.execute(sa.update(UserSession).values(expires_at=_past()))
    with portal.transaction() as s:
        assert accounts.resolve_session(s, other) is None  # expired, and its row deleted
    with portal.transaction() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(UserSession)) == 0
    # csrf tokens differ per session and are not the session token
    assert accounts.csrf_token_for(token) != accounts.csrf_token_for(other)
    assert accounts.csrf_token_for(token) != token


def test_disabling_ends_sessions_and_stops_tokens(portal):
    with portal.transaction() as s:
        user = accounts.add_user(s, "ada@lab.org", "labeller")
        cookie = accounts.start_session(s, user)
        api = accounts.create_api_token(s, user, "script")
    with portal.transaction() as s:
        assert accounts.resolve_api_token(s, api).email == "ada@lab.org"
        accounts.disable_user(s, "ada@lab.org")
    with portal.transaction() as s:
        assert accounts.resolve_session(s, cookie) is None
        assert accounts.resolve_api_token(s, api) is None
        with pytest.raises(InputError, match="disabled"):
            accounts.create_invite(s, accounts.get_user(s, "ada@lab.org"))


def test_api_tokens_are_hashed_named_and_revocable(portal):
    with portal.transaction() as s:
        user = accounts.add_user(s, "ada@lab.org", "labeller")
        api = accounts.create_api_token(s, user, "import script")
        with pytest.raises(InputError, match="name"):
            accounts.create_api_token(s, user, "  ")
    assert api.startswith("cc_")
    with portal.transaction() as s:
        row = s.scalar(sa.select(ApiToken))
        assert row.token_hash == token_hash(api) and row.last_used is None
        assert accounts.resolve_api_token(s, api).email == "ada@lab.org"
    with portal.transaction() as s:
        assert s.scalar(sa.select(ApiToken)).last_used is not None
        ada = accounts.get_user(s, "ada@lab.org")
        assert accounts.revoke_api_token(s, ada, "import script") == 1
        with pytest.raises(NotFoundError):
            accounts.revoke_api_token(s, ada, "import script")
    with portal.transaction() as s:
        assert accounts.resolve_api_token(s, api) is None


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("aaaaaaaa", "at least 12"),
        ("aaaaaaaaaaaaaaa", "repetitive"),
        ("123456789012", "sequential"),
        ("qwertyuiop12", "most common"),
        ("Password1234", "most common"),
        ("ada@lab.org", "at least 12"),
        ("ada.lovelace@lab.org", "your email"),
        ("x" * 1025, "at most 1024"),
    ],
)
def test_weak_passwords_are_refused_in_one_line(password, why):
    with pytest.raises(InputError, match=why) as err:
        accounts.check_password_rules(password, email="ada.lovelace@lab.org")
    assert "\n" not in str(err.value)


def test_passphrases_need_no_digits_or_symbols():
    for good in ("a long password", "correct horse battery", "grids of ice 2026"):
        accounts.check_password_rules(good, email="ada@lab.org")


def test_migrate_brings_a_root_from_before_the_login_throttle(tmp_path, database_url, capsys):
    root = tmp_path / "old"
    with Portal.create(root, database_url=database_url) as p:
        command.downgrade(db._alembic_config(p.engine), "0006")
        assert "login_throttle" not in sa.inspect(p.engine).get_table_names()
    with pytest.raises(PortalError, match="older than 0007"):
        Portal.open(root)
    code, out, _ = cli(capsys, "migrate", root)
    assert code == 0 and "up to date" in out
    with Portal.open(root) as p:
        assert db.current_revision(p.engine) == "0007"
        assert "login_throttle" in sa.inspect(p.engine).get_table_names()
