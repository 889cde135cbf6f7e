"""A Python client for a cryocurate portal, shaped like the CZ CryoET Data Portal's client.

Why its own package: scripts and notebooks on other machines need only this and httpx; it
talks HTTP to ``/api/v1`` and never imports the server (no SQLAlchemy, no FastAPI).

    >>> from cryocurate.client import Client, Dataset, Run          # doctest: +SKIP
    >>> client = Client("http://127.0.0.1:8000")                    # doctest: +SKIP
    >>> Dataset.find(client, [Dataset.runs.annotations.object_name == "ribosome"])  # doctest: +SKIP
    >>> for run in Run.find(client, [Run.dataset_id >= 10000], order_by="-id", limit=50):
    ...     print(run.name, run.dataset.title, len(run.class_averages))  # doctest: +SKIP
"""

from cryocurate.client._base import FieldRef, Filter, Model, RelationshipRef
from cryocurate.client._client import Client
from cryocurate.client._errors import APIError, ClientError, DownloadError
from cryocurate.client._models import *  # noqa: F403 (the generated entity classes)
from cryocurate.client._models import __all__ as _model_names

__all__ = [
    "APIError",
    "Client",
    "ClientError",
    "DownloadError",
    "FieldRef",
    "Filter",
    "Model",
    "RelationshipRef",
    *_model_names,
]
