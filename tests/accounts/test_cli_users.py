"""``cryocurate users …``: adding users, invite links, listing, disabling, API tokens."""

from __future__ import annotations

import json

import pytest

from cryocurate import accounts
from cryocurate.errors import InputError
from cryocurate.portal import Portal
from tests.cli_in_process import cli


@pytest.fixture
def root(tmp_path, database_url):
    Portal.create(tmp_path / "portal", database_url=database_url).close()
    return tmp_path / "portal"


def test_add_invite_list_token_disable(root, capsys):
    code, out, err = cli(
        capsys, "users", "add", root, "Ada@Lab.org", "--role", "admin", "--name", "Ada L.",
        "--lab", "Lander", "--base-url", "https://portal.lab.org/",
    )  # fmt: skip
    assert code == 0 and "Added ada@lab.org (admin)" in err
    link = out.strip()
    assert link.startswith("https://portal.lab.org/invite/")
    with Portal.open(root) as p, p.transaction() as s:
        assert accounts.peek_invite(s, link.rsplit("/", 1)[1]).display_name == "Ada L."

    code, out, _ = cli(capsys, "users", "invite", root, "ada@lab.org")
    assert code == 0 and out.strip().startswith("http://127.0.0.1:8000/invite/")
    # the older link stopped working
    with Portal.open(root) as p, p.transaction() as s, pytest.raises(InputError, match="valid"):
        accounts.peek_invite(s, link.rsplit("/", 1)[1])

    code, out, err = cli(capsys, "users", "token", root, "ada@lab.org", "--name", "export")
    assert code == 0 and out.strip().startswith("cc_") and "only now" in err
    with Portal.open(root) as p, p.transaction() as s:
        assert accounts.resolve_api_token(s, out.strip()).email == "ada@lab.org"

    cli(capsys, "users", "add", root, "bob@lab.org", "--role", "labeller")
    code, out, _ = cli(capsys, "users", "list", root, "--json")
    rows = json.loads(out)
    assert [(r["email"], r["role"], r["status"]) for r in rows] == [
        ("ada@lab.org", "admin", "invited"),
        ("bob@lab.org", "labeller", "invited"),
    ]
    code, out, _ = cli(capsys, "users", "list", root)
    assert code == 0 and "bob@lab.org" in out and "(Lander)" in out

    assert cli(capsys, "users", "disable", root, "BOB@lab.org")[0] == 0
    rows = json.loads(cli(capsys, "users", "list", root, "--json")[1])
    assert rows[1]["status"] == "disabled"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["add", "{root}", "bob", "--role", "labeller"], "not an email address: 'bob'"),
        (["add", "{root}", "b@x.org", "--role", "boss"], "unknown role 'boss'"),
        (["add", "{root}", "b@x.org", "--role", "admin", "--base-url", "ftp:x"], "web address"),
        (["add", "{root}", "ada@lab.org", "--role", "admin"], "already exists"),
        (["invite", "{root}", "nobody@x.org"], "no user 'nobody@x.org'"),
        (["disable", "{root}", "nobody@x.org"], "no user"),
        (["token", "{root}", "ada@lab.org", "--name", " "], "needs a name"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(root, capsys, argv, message):
    cli(capsys, "users", "add", root, "ada@lab.org", "--role", "admin")
    code, out, err = cli(capsys, "users", *[a.format(root=root) for a in argv])
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("Error: ") and message in err


def test_help_has_examples(capsys):
    for command in ("add", "list", "invite", "disable", "token"):
        code, out, _ = cli(capsys, "users", command, "--help")
        assert code == 0 and "Example" in out
