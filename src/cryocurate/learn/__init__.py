"""Training data out of a grading campaign: job-grouped splits, the export, a PyTorch loader.

Why a package of its own: a campaign's grades become a training set only once images,
metadata, every grade, the consensus and a leak-free split are written together with a
datasheet that says where they came from; and whoever trains on it needs to read it back
without a portal or a database. The pieces:

* :mod:`cryocurate.learn.splits`: train/validation/test by *job* (class averages of one job
  are near-duplicates of each other, so a job on both sides would leak), seeded and
  stratified by lab;
* :mod:`cryocurate.learn.export`: ``cryocurate export`` (images, tables, splits, datasheet,
  manifest), all built in a temporary folder and renamed into place;
* :mod:`cryocurate.learn.loader`: a ``torch.utils.data.Dataset`` over an export.

Only :mod:`cryocurate.learn.loader` imports torch, and nothing imports it on import of this
package, so exporting works where torch is not installed.
"""

from __future__ import annotations
