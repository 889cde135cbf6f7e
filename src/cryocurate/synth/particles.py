"""Per-particle values, generated chunk by chunk in constant memory.

A job's particle tables can hold millions of rows, so nothing here materialises a whole
column. Two kinds of values are needed:

* **physical** attributes of a particle (uid, micrograph, position, defocus) must be the
  same in every file that lists it (every iteration's ``particles.cs``, the passthrough
  file, every ``data.star``). They are pure functions of the particle's index, through a
  counter-based hash (SplitMix64), so any chunk can be computed alone;
* **per-iteration** values (class label, posterior, in-plane angle, shift) are drawn from a
  generator in chunk order. Class labels come from a sequential multivariate
  hypergeometric draw, so each class receives *exactly* its planned count, in random order,
  without ever holding the full label array.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from cryocurate.synth.plan import JobPlan, rng_for

#: Rows per chunk: ~20 MB of ``particles.cs`` rows, the unit of writing and progress.
CHUNK_ROWS = 65_536

#: Particles picked per micrograph (a typical count for a 300 kV K3 micrograph).
PER_MICROGRAPH = 150

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijection on uint64, so distinct inputs give distinct uids."""
    z = np.asarray(x, dtype=np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def _key(seed: int, stream: int) -> np.uint64:
    return splitmix64(np.array([(seed * 1_000_003 + stream) & 0xFFFFFFFFFFFFFFFF], np.uint64))[0]


def hashed_uniform(index: np.ndarray, seed: int, stream: int) -> np.ndarray:
    """Uniform [0, 1) floats that depend only on (seed, stream, index)."""
    with np.errstate(over="ignore"):
        z = splitmix64(np.asarray(index, dtype=np.uint64) ^ _key(seed, stream))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def particle_uids(index: np.ndarray, seed: int) -> np.ndarray:
    """Random-looking, unique 64-bit uids for particle indices (stable across files)."""
    with np.errstate(over="ignore"):
        return splitmix64(np.asarray(index, dtype=np.uint64) + _key(seed, 99))


@dataclass(frozen=True)
class Micrographs:
    """Per-micrograph values: the particles of micrograph m are rows m·per … m·per+per−1."""

    per: int
    defocus_u: np.ndarray
    astigmatism: np.ndarray
    angle_rad: np.ndarray
    ctf_max_res: np.ndarray
    ctf_fom: np.ndarray
    uids: np.ndarray
    stems: list[str]

    @property
    def n(self) -> int:
        return len(self.stems)


def micrographs(n_particles: int, seed: int) -> Micrographs:
    """The micrographs the particles were picked from, with EPU-style names."""
    n = max(1, -(-n_particles // PER_MICROGRAPH))
    rng = rng_for(seed, 31)
    hole = rng.integers(10_000_000, 90_000_000)
    data = rng.integers(10_000_000, 90_000_000)
    day = int(rng.integers(1, 29))
    stems = []
    for m in range(n):
        sec = (8 * 3600 + 17 * m) % 86_400
        month = 3 + m // 20_000 % 9
        clock = f"{sec // 3600:02d}{sec // 60 % 60:02d}{sec % 60:02d}"
        stamp = f"2024{month:02d}{day:02d}_{clock}"
        stems.append(f"FoilHole_{hole + m // 4}_Data_{data}_{m % 4 + 1:02d}_{stamp}_fractions")
    return Micrographs(
        per=PER_MICROGRAPH,
        defocus_u=rng.uniform(8000.0, 25000.0, n),
        astigmatism=rng.uniform(50.0, 600.0, n),
        angle_rad=rng.uniform(-np.pi / 2, np.pi / 2, n),
        ctf_max_res=rng.uniform(2.8, 6.0, n),
        ctf_fom=rng.uniform(0.05, 0.3, n),
        uids=rng.integers(10**17, 10**18, n, dtype=np.uint64),
        stems=stems,
    )


def class_labels(counts: np.ndarray, seed: int, stream: int) -> Iterator[np.ndarray]:
    """Chunks of class labels (uint32) in random order, each class exactly ``counts[k]`` times."""
    remaining = np.asarray(counts, dtype=np.int64).copy()
    rng = rng_for(seed, 41, stream)
    total = int(remaining.sum())
    done = 0
    while done < total:
        m = min(CHUNK_ROWS, total - done)
        if m == total - done:
            drawn = remaining.copy()
        else:
            drawn = rng.multivariate_hypergeometric(remaining, m, method="marginals")
        labels = np.repeat(np.arange(len(remaining), dtype=np.uint32), drawn)
        rng.shuffle(labels)
        remaining -= drawn
        done += m
        yield labels


@dataclass
class Chunk:
    """One chunk of particles: their global indices and their values at one iteration."""

    index: np.ndarray
    micrograph: np.ndarray
    in_micrograph: np.ndarray
    label: np.ndarray
    posterior: np.ndarray
    class_ess: np.ndarray
    psi_rad: np.ndarray
    shift_px: np.ndarray
    defocus_u: np.ndarray
    defocus_v: np.ndarray
    coord_frac: np.ndarray


def chunks(
    plan: JobPlan, mics: Micrographs, *, seed: int, stream: int, n_rows: int | None = None
) -> Iterator[Chunk]:
    """The particles of ``plan`` (the first ``n_rows`` of the job) in chunks."""
    n_rows = plan.n_particles if n_rows is None else n_rows
    if n_rows != plan.n_particles:
        raise ValueError(f"plan has {plan.n_particles} particles, asked for {n_rows}")
    rng = rng_for(seed, 43, stream)
    beta = np.array([c.posterior_beta for c in plan.classes], dtype=np.float64).reshape(-1, 2)
    ess = plan.column("ess_scale").astype(np.float64)
    acc = plan.column("accuracy_translation_a").astype(np.float64)
    start = 0
    for labels in class_labels(plan.counts, seed, stream):
        m = len(labels)
        idx = np.arange(start, start + m, dtype=np.int64)
        start += m
        mic = idx // mics.per
        jitter = hashed_uniform(idx, seed, 1) - 0.5
        du = mics.defocus_u[mic] + 300.0 * jitter
        yield Chunk(
            index=idx,
            micrograph=mic,
            in_micrograph=idx % mics.per,
            label=labels,
            posterior=rng.beta(beta[labels, 0], beta[labels, 1]),
            class_ess=1.0 + rng.exponential(ess[labels]),
            psi_rad=rng.uniform(0.0, 2 * np.pi, m),
            shift_px=rng.normal(0.0, 1.0, (m, 2)) * (0.8 + acc[labels, None]),
            defocus_u=du,
            defocus_v=du - mics.astigmatism[mic],
            coord_frac=np.stack(
                [hashed_uniform(idx, seed, 2), hashed_uniform(idx, seed, 3)], axis=1
            ),
        )
