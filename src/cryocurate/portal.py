"""A portal root: a folder holding the settings, the catalog database and the data tree.

::

    ROOT/
      cryocurate.toml     settings: where the catalog is, where the data tree is
      catalog.sqlite      the catalog (unless the settings name a PostgreSQL URL)
      data/               the data tree (see cryocurate.store.layout)

:class:`Portal` opens one (checking the schema revision), hands out catalog sessions and knows
the data tree's location. It holds no logic of its own: services such as extraction take a
``Portal`` and do their work through it.

    >>> with Portal.open("my-portal") as portal:        # doctest: +SKIP
    ...     with portal.transaction() as session: ...
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from cryocurate import atomic
from cryocurate.catalog import db
from cryocurate.errors import ConflictError, InputError, PortalError

SETTINGS_FILE = "cryocurate.toml"
DEFAULT_DATABASE = "catalog.sqlite"
DATA_DIR = "data"
DATABASE_ENV = "CRYOCURATE_DATABASE_URL"


@dataclass(frozen=True)
class Settings:
    """What ``cryocurate.toml`` says. ``database_url`` may be relative to the root (SQLite)."""

    database_url: str
    data_dir: str = DATA_DIR
    private: bool = False  # [web] private = true: every page needs a logged-in user
    # [web] trusted_proxies = ["127.0.0.1"]: the reverse proxies whose X-Forwarded-For gives
    # the client's address (login throttling counts per address). Empty: the TCP peer is.
    trusted_proxies: tuple[str, ...] = ()

    def to_toml(self) -> str:
        text = (
            "# cryocurate portal root settings\n"
            "[catalog]\n"
            f"url = {_toml_string(self.database_url)}\n\n"
            "[store]\n"
            f"data = {_toml_string(self.data_dir)}\n"
        )
        web = ("private = true\n" if self.private else "") + (
            f"trusted_proxies = [{', '.join(map(_toml_string, self.trusted_proxies))}]\n"
            if self.trusted_proxies
            else ""
        )
        return text + (f"\n[web]\n{web}" if web else "")


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _resolve_url(root: Path, url: str) -> str:
    """Make a relative SQLite path relative to the root, not to the current directory."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        return prefix + str((root / url[len(prefix) :]).resolve())
    return url


def _boolean(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be true or false, not {value!r}")
    return value


def _strings(value: object, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise TypeError(f"{name} must be a list of addresses, not {value!r}")
    return tuple(value)


def read_settings(root: Path) -> Settings:
    path = root / SETTINGS_FILE
    if not path.is_file():
        raise PortalError(
            "not a portal root (no cryocurate.toml)",
            where=root,
            hint="make one with `cryocurate init ROOT`",
        )
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        settings = Settings(
            database_url=str(raw["catalog"]["url"]),
            data_dir=str(raw.get("store", {}).get("data", DATA_DIR)),
            private=_boolean(raw.get("web", {}).get("private", False), "web.private"),
            trusted_proxies=_strings(
                raw.get("web", {}).get("trusted_proxies", []), "web.trusted_proxies"
            ),
        )
    except (tomllib.TOMLDecodeError, KeyError, TypeError, UnicodeDecodeError, AttributeError) as e:
        raise PortalError(f"unreadable settings: {e}", where=path) from e
    return settings


def _make_folder(path: Path, *, parents: bool = False) -> None:
    """``mkdir`` that ends in one line (``/proc/x``, a file in the way, no permission)."""
    try:
        path.mkdir(parents=parents, exist_ok=True)
    except OSError as err:
        raise InputError(
            f"cannot make the folder: {err.strerror or err}",
            where=path,
            hint="choose a folder you may write to",
        ) from err


class Portal:
    """An open portal root: settings, a catalog engine, the data tree's location."""

    def __init__(self, root: Path, settings: Settings, engine: Engine) -> None:
        self.root = root
        self.settings = settings
        self.engine = engine
        self.sessions: sessionmaker[Session] = db.session_factory(engine)

    @property
    def data_dir(self) -> Path:
        return self.root / self.settings.data_dir

    def tree_path(self, path: Path) -> str:
        """``path`` as the catalog records files: relative to the data tree, with ``/``."""
        return path.relative_to(self.data_dir).as_posix()

    @property
    def database_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @classmethod
    def create(cls, root: str | os.PathLike[str], database_url: str | None = None) -> Portal:
        """Make a portal root: settings, an up-to-date catalog schema, an empty data tree.

        Running it again on an existing root with the same database is harmless (the schema
        is brought up to date); asking for another database than the root's is refused.
        """
        root = Path(root).resolve()
        if root.exists() and not root.is_dir():
            raise ConflictError("exists and is not a folder", where=root)
        url = database_url or f"sqlite:///{DEFAULT_DATABASE}"
        settings_path = root / SETTINGS_FILE
        if settings_path.exists():
            existing = read_settings(root)
            if database_url and existing.database_url != database_url:
                raise ConflictError(
                    f"is already a portal root using {existing.database_url}",
                    where=root,
                    hint="choose another folder, or omit --database",
                )
            settings = existing
        else:
            settings = Settings(database_url=url)
        _make_folder(root, parents=True)
        engine = db.create_engine(_resolve_url(root, settings.database_url))
        db.upgrade(engine)
        _make_folder(root / settings.data_dir)
        if not settings_path.exists():
            # Written last: a folder with settings is a portal root whose catalog exists.
            atomic.write_text(settings_path, settings.to_toml())
        return cls(root, settings, engine)

    @classmethod
    def open(cls, root: str | os.PathLike[str], *, check: bool = True) -> Portal:
        """Open an existing portal root; refuse one whose schema is not this version's."""
        root = Path(root).resolve()
        settings = read_settings(root)
        url = os.environ.get(DATABASE_ENV) or settings.database_url
        engine = db.create_engine(_resolve_url(root, url))
        if check:
            db.check_revision(engine)
        return cls(root, settings, engine)

    def migrate(self) -> None:
        db.upgrade(self.engine)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with db.transaction(self.sessions) as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Portal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
