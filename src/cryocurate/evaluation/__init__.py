"""Scoring annotations against ground truth, reproducibly: the rule is part of every score.

:mod:`.matching` holds point matching (precision, recall, F-β under optimal one-to-one
matching within a stated distance) and voxel-wise mask scores (precision, recall, Dice),
streamed slab by slab for volumes too big to hold in memory.
"""

from cryocurate.evaluation.matching import (
    MATCH_RULE,
    MaskAccumulator,
    MaskScore,
    PointScore,
    default_max_distance,
    fbeta,
    match_points,
    score_mask_slabs,
    score_masks,
)

__all__ = [
    "MATCH_RULE",
    "MaskAccumulator",
    "MaskScore",
    "PointScore",
    "default_max_distance",
    "fbeta",
    "match_points",
    "score_mask_slabs",
    "score_masks",
]
