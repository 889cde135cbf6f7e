"""``cryocurate users add|list|invite|password|disable|end-sessions|token``: who may use a
portal.

Why a CLI as well as the admin page: the first admin has to come from somewhere, and a
server with no browser at hand still needs its users managed. Secrets (invite links, API
tokens) are printed once, on stdout, and only their hashes are stored.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from cryocurate.cli import console
from cryocurate.errors import InputError

app = typer.Typer(help="Manage the portal's users, invites and API tokens.", no_args_is_help=True)

Root = typer.Argument(..., help="The portal root.")
Email = typer.Argument(..., help="The user's email address.")
BaseUrl = typer.Option(
    "http://127.0.0.1:8000",
    "--base-url",
    help="The portal's address as users reach it (for the invite link).",
)


def _invite_link(base_url: str, token: str) -> str:
    if not base_url.startswith(("http://", "https://")):
        raise InputError(f"not a web address: {base_url!r}", hint="e.g. https://portal.lab.org")
    return f"{base_url.rstrip('/')}/invite/{token}"


@app.command()
def add(
    root: Path = Root,
    email: str = Email,
    role: str = typer.Option(..., "--role", help="admin, labeller or reviewer."),
    name: str | None = typer.Option(None, "--name", help="The user's display name."),
    lab: str | None = typer.Option(None, "--lab", help="The user's lab."),
    base_url: str = BaseUrl,
) -> None:
    """Add a user and print their one-time invite link (valid 7 days).

    Example: cryocurate users add ./portal ada@lab.org --role admin --name "Ada L."
    """
    from cryocurate import accounts
    from cryocurate.portal import Portal

    _invite_link(base_url, "")  # refuse a bad address before writing anything
    with Portal.open(root) as portal, portal.transaction() as session:
        user = accounts.add_user(session, email, role, display_name=name, lab=lab)
        token = accounts.create_invite(session, user)
        address, role_name = user.email, user.role.value
    console.err.print(f"Added {address} ({role_name}). Their one-time invite link:")
    console.out.print(_invite_link(base_url, token), markup=False)


@app.command("list")
def list_(
    root: Path = Root,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the users.

    Example: cryocurate users list ./portal --json
    """
    from cryocurate import accounts
    from cryocurate.portal import Portal

    with Portal.open(root) as portal, portal.transaction() as session:
        rows = [
            {
                "email": u.email,
                "display_name": u.display_name,
                "role": u.role.value,
                "lab": u.lab,
                "status": "disabled"
                if u.disabled
                else ("active" if u.password_hash else "invited"),
                "created_at": u.created_at.isoformat(),
            }
            for u in accounts.list_users(session)
        ]
    if as_json:
        console.out.print(json.dumps(rows, indent=2), markup=False)
        return
    if not rows:
        console.err.print("No users yet; add one with `cryocurate users add`.")
        return
    for r in rows:
        console.out.print(
            f"{r['email']:<32} {r['role']:<9} {r['status']:<8} "
            f"{r['display_name'] or ''} {('(' + r['lab'] + ')') if r['lab'] else ''}".rstrip(),
            markup=False,
        )


@app.command()
def invite(root: Path = Root, email: str = Email, base_url: str = BaseUrl) -> None:
    """Print a new one-time invite link for a user (their older links stop working).

    Example: cryocurate users invite ./portal ada@lab.org
    """
    from cryocurate import accounts
    from cryocurate.portal import Portal

    _invite_link(base_url, "")
    with Portal.open(root) as portal, portal.transaction() as session:
        token = accounts.create_invite(session, accounts.get_user(session, email))
    console.out.print(_invite_link(base_url, token), markup=False)


@app.command()
def password(root: Path = Root, email: str = Email) -> None:
    """Set a user's password (asked twice, not echoed; or one line on standard input) and
    end their sessions. The rules: at least 12 characters, not a common password.

    Example: cryocurate users password ./portal ada@lab.org
    """
    from cryocurate import accounts
    from cryocurate.portal import Portal

    if sys.stdin.isatty():
        first = typer.prompt("New password", hide_input=True, err=True)
        if typer.prompt("Again", hide_input=True, err=True) != first:
            raise InputError("the two passwords differ")
    else:  # a script: the first line of standard input
        first = sys.stdin.readline().rstrip("\r\n")
    accounts.check_password_rules(first, email=email)  # before opening anything
    with Portal.open(root) as portal, portal.transaction() as session:
        user = accounts.get_user(session, email)
        ended, address = accounts.set_password(session, user, first), user.email
    console.err.print(f"Set the password of {address}; ended {ended} of their sessions.")


@app.command()
def disable(root: Path = Root, email: str = Email) -> None:
    """Disable a user: their sessions end and their API tokens stop working.

    Example: cryocurate users disable ./portal ada@lab.org
    """
    from cryocurate import accounts
    from cryocurate.portal import Portal

    with Portal.open(root) as portal, portal.transaction() as session:
        user = accounts.disable_user(session, email)
        address = user.email
    console.err.print(f"Disabled {address}.")


@app.command("end-sessions")
def end_sessions(root: Path = Root, email: str = Email) -> None:
    """Log a user out of every browser (their API tokens keep working; revoke those apart).

    Example: cryocurate users end-sessions ./portal ada@lab.org
    """
    from cryocurate import accounts
    from cryocurate.portal import Portal

    with Portal.open(root) as portal, portal.transaction() as session:
        user = accounts.get_user(session, email)
        ended, address = accounts.end_sessions(session, user), user.email
    console.err.print(f"Ended {ended} session{'' if ended == 1 else 's'} of {address}.")


@app.command()
def token(
    root: Path = Root,
    email: str = Email,
    name: str = typer.Option(..., "--name", help="What the token is for, e.g. 'import script'."),
) -> None:
    """Make an API token for a user's scripts and print it (once; it is stored hashed).

    Scripts send it as `Authorization: Bearer TOKEN`.
    Example: cryocurate users token ./portal ada@lab.org --name "grade export"
    """
    from cryocurate import accounts
    from cryocurate.portal import Portal

    with Portal.open(root) as portal, portal.transaction() as session:
        secret = accounts.create_api_token(session, accounts.get_user(session, email), name)
    console.err.print("The token is shown only now; keep it somewhere safe:")
    console.out.print(secret, markup=False)


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="users")
