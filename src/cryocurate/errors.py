"""Every error cryocurate raises on purpose, in one tree.

::

    CryocurateError                 anything we raise knowingly; rendered as one line
    ├── InputError                  the user's input is wrong (exit status 2 at the CLI)   400
    │   ├── MissingFileError        a file or folder that must exist does not, or cannot be read
    │   ├── FormatError             a file exists but its content is not what its format promises
    │   ├── NotAJobError            a folder holds no 2D classification job we recognise
    │   ├── InconsistentJobError    the files of one job disagree with each other
    │   ├── UnsafePathError         a name or path from input would leave its folder
    │   └── TooLargeError           a request body is larger than its route allows          413
    ├── NotFoundError               a catalog entity (dataset, run…) does not exist          404
    │   └── ForbiddenError          …or exists, but this user may not see or do it         403
    ├── AuthenticationError         log in first (or the credentials are wrong)             401
    ├── TooManyRequestsError        too many attempts; try again after ``retry_after`` s    429
    ├── ConflictError               the request clashes with what is already stored         409
    └── PortalError                 the portal root is missing, damaged or of another version

The number at the right is ``http_status``: the one status the web app's error boundary
answers for that error (anything else that escapes a view is a bug and answers 500).

Each error carries *what* went wrong (the message), *where* (a path, a job, an id) and, when
there is one, *what to do* (the hint). ``str(error)`` joins them into the single line the CLI
prints, so a traceback never reaches a user for a problem we anticipated.

Third-party errors (mrcfile, numpy, SQLAlchemy…) are translated into these at the boundary
where they are caught, with ``raise ... from err`` so the cause stays available for debugging.
"""

from __future__ import annotations

from os import PathLike


class CryocurateError(Exception):
    """Base of the tree. ``exit_code`` is what the CLI returns when this error ends a command."""

    exit_code = 1
    http_status = 500

    def __init__(
        self, message: str, *, where: str | PathLike[str] | None = None, hint: str | None = None
    ) -> None:
        self.message = message
        self.where = None if where is None else str(where)
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        line = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            line = f"{line} ({self.hint})"
        return line


class InputError(CryocurateError):
    """The input given to a command is wrong; nothing was written because of it."""

    exit_code = 2
    http_status = 400


class MissingFileError(InputError):
    """A file or folder that must exist is missing or unreadable."""


class FormatError(InputError):
    """A file's content does not follow its format (truncated, wrong magic, bad values…)."""


class NotAJobError(InputError):
    """A folder was given as a job but holds no 2D classification job we recognise."""


class InconsistentJobError(InputError):
    """The files of one job disagree (class counts, class indices, pixel sizes…)."""


class UnsafePathError(InputError):
    """A name or path that came from input (a job.json field, a STAR value, a file name in an
    import) would, used as a path, leave the folder it belongs in: ``..``, an absolute path, a
    separator, a symlink out of the input. Nothing was written because of it."""


class TooLargeError(InputError):
    """A request body is larger than the portal accepts for its route (web/limits.py). A
    filter too wide or too deep to run is a plain InputError (400): it is refused for its
    shape, whatever the size of the body that carried it (catalog/spec_limits.py)."""

    http_status = 413


class NotFoundError(CryocurateError):
    """A catalog entity asked for by id or name does not exist."""

    exit_code = 2
    http_status = 404


class ForbiddenError(NotFoundError):
    """The user may not see or change this (a labeller asking for another's grades). A
    subclass of NotFoundError, so code that only needs "not available" treats both alike; the
    web layer answers 403."""

    http_status = 403


class AuthenticationError(CryocurateError):
    """The request needs a logged-in user (or its credentials are wrong or revoked)."""

    exit_code = 2
    http_status = 401


class TooManyRequestsError(CryocurateError):
    """Too many attempts (logins, invites…) from one account or address; ``retry_after`` is
    the number of seconds after which the next attempt is considered again."""

    exit_code = 2
    http_status = 429

    def __init__(
        self,
        message: str,
        *,
        retry_after: int,
        where: str | PathLike[str] | None = None,
        hint: str | None = None,
    ) -> None:
        self.retry_after = max(1, int(retry_after))
        super().__init__(message, where=where, hint=hint)


class ConflictError(CryocurateError):
    """The request clashes with what is already stored (a name taken, a root already made…)."""

    exit_code = 2
    http_status = 409


class PortalError(CryocurateError):
    """The portal root is missing, damaged, or was written by a newer cryocurate."""

    exit_code = 2
