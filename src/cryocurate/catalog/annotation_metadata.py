"""An annotation's metadata JSON, in the portal's nested shape.

Built from the catalog row alone, so the ingest (which writes it next to the annotation's
files) and the run page (which shows it behind an info button) cannot disagree.
"""

from __future__ import annotations

from typing import Any

from cryocurate.catalog.models import Annotation


def annotation_metadata(a: Annotation, files: list[dict[str, Any]]) -> dict[str, Any]:
    """The portal's annotation metadata JSON (nested shape)."""
    return {
        "annotation_object": {
            "id": a.object_id,
            "name": a.object_name,
            "description": a.object_description,
            "state": a.object_state,
        },
        "annotation_method": a.annotation_method,
        "method_type": a.method_type.value,
        "annotation_software": a.annotation_software,
        "ground_truth_status": a.ground_truth_status,
        "is_curator_recommended": a.is_curator_recommended,
        "object_count": a.object_count,
        "version": a.version,
        "authors": [
            {"name": au.name, "primary_author_status": au.primary_author_status} for au in a.authors
        ],
        "confidence": {
            "precision": a.confidence_precision,
            "recall": a.confidence_recall,
            "ground_truth_used": a.ground_truth_used,
            "rule": a.confidence_rule,
        },
        "dates": {
            "deposition_date": a.deposition_date.isoformat() if a.deposition_date else None,
            "last_modified_date": a.last_modified_date.isoformat()
            if a.last_modified_date
            else None,
        },
        "files": files,
    }
