"""Per-object scoring settings: how close a pick must be to a ground-truth pick to match."""

from __future__ import annotations

from cryocurate.catalog.models import ObjectSetting
from cryocurate.errors import InputError
from cryocurate.ingest.annotations import rescore_object
from cryocurate.portal import Portal


def set_object(
    portal: Portal,
    object_id: str,
    *,
    radius_a: float | None = None,
    match_distance_a: float | None = None,
    object_name: str | None = None,
) -> int:
    """Record an object's radius and/or matching distance, then re-score its annotations."""
    for label, value in (("--radius", radius_a), ("--match-distance", match_distance_a)):
        if value is not None and value <= 0:
            raise InputError(f"{label} {value:g} is not a positive distance in Å")
    if radius_a is None and match_distance_a is None and object_name is None:
        raise InputError("nothing to set", hint="give --radius, --match-distance or --name")
    with portal.transaction() as session:
        setting = session.get(ObjectSetting, object_id) or ObjectSetting(object_id=object_id)
        session.add(setting)
        if radius_a is not None:
            setting.radius_a = radius_a
        if match_distance_a is not None:
            setting.match_distance_a = match_distance_a
        if object_name is not None:
            setting.object_name = object_name
        session.flush()
        return rescore_object(portal, session, object_id)
