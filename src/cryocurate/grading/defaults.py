"""Campaign defaults that the CLI's and the admin page's forms show before any campaign exists.

A module of their own, free of SQLAlchemy and numpy, so that ``cryocurate campaign create
--help`` can print them without importing the grading services.
"""

from __future__ import annotations

DEFAULT_REPEAT_SHARE = 0.05
MAX_REPEAT_SHARE = 0.5
