"""Moving data in and out of a portal root: downloads in the portal's layouts, and imports of
datasets downloaded from the CZ CryoET Data Portal.

:mod:`.download` lists and copies what a download holds (used by the CLI, the web server's
zip and file routes, and any client); :mod:`.czportal` imports a downloaded portal dataset.
"""

from __future__ import annotations

from typing import Any

from cryocurate.transfer.choices import Kind

_FROM_DOWNLOAD = ("Entry", "Listing", "copy_entries", "list_entity")


def __getattr__(name: str) -> Any:
    """The download API, imported on first use (it needs the catalog; the CLI's start-up
    must not)."""
    if name not in _FROM_DOWNLOAD:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from cryocurate.transfer import download

    return getattr(download, name)


__all__ = ["Entry", "Kind", "Listing", "copy_entries", "list_entity"]
