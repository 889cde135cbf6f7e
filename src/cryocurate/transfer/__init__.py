"""Moving data in and out of a portal root: downloads in the portal's layouts, and imports of
datasets downloaded from the CZ CryoET Data Portal.

:mod:`.download` lists and copies what a download holds (used by the CLI, the web server's
zip and file routes, and any client); :mod:`.czportal` imports a downloaded portal dataset.
"""

from __future__ import annotations

from cryocurate.transfer.download import Entry, Kind, Listing, copy_entries, list_entity

__all__ = ["Entry", "Kind", "Listing", "copy_entries", "list_entity"]
