"""Benchmark: 50 labellers grading at once against one served portal, on SQLite and PostgreSQL.

Why: a grading campaign is the one place where many people *write* to the catalog at the same
time, each keypress a POST, and the promise to them is that no grade is ever lost or counted
twice. This measures whether one ``cryocurate serve`` (one worker, as users run it) keeps up,
how long a keypress waits for its acknowledgement, and whether every grade sent is stored
exactly once, retries included.

Setup (rebuilt for every run, so the counts start from zero): a portal with ``--runs`` 2D
classification runs of ``--classes`` classes each (small boxes; cryoSPARC job folders made by
:func:`cryocurate.synth.synth_cryosparc` and extracted through the real pipeline; the job
folders are cached under ``benchmarks/_data/grading-jobs/``), ``--labellers`` labeller accounts
made with :mod:`cryocurate.accounts`, and one campaign with every run and every labeller
(each labeller grades every item; repeat share 0.05). SQLite: a catalog file in
``benchmarks/_data/grading-sqlite/``. PostgreSQL: a uniquely named database made on the
server of ``--postgres`` (default ``$CRYOCURATE_TEST_POSTGRES_URL``) and dropped afterwards.

The load: ``cryocurate serve ROOT`` in a subprocess on a free loopback port, and in this
process one ``httpx.AsyncClient`` per labeller (its own connection and session cookie, from a
real ``GET /login`` + ``POST /login``; the CSRF token from ``GET /me``). Once all are logged
in they start together; each fetches its queue (``GET …/queue``, 20 items at a time, as the
page does) and grades ``--grades`` items one at a time, one ``POST …/grades`` per keypress
with a fresh request id, after ``--think-ms`` of thinking (default 0: the throughput figure;
several values make several rounds on the same server and logins, e.g. ``--think-ms 0 1000``
for the latency a labeller at a realistic pace sees).
About ``--retry-share`` of the grades are sent a second time with the same request id once
acknowledged, as the page's outbox does after a lost acknowledgement: the server must answer
``duplicate`` and add nothing.

Measured: client-side latency of every grade POST (sent to body read, loopback) and of the
queue fetches; grades per second (distinct grades acknowledged ÷ wall time from the common
start to the last labeller's last acknowledgement); the server's RSS (process tree, sampled
every 50 ms); errors (HTTP status ≠ 200, transport errors, or a result other than
stored/duplicate). Afterwards the catalog's ``grades`` and ``grade_events`` rows are counted
and their request ids compared with those sent: they must be equal, or the script exits 1.
The server's stderr is kept in ``benchmarks/_data/grading-<backend>/server.log``.

Usage: python benchmarks/grading.py [--backends sqlite postgresql] [--postgres URL] [--quick]
       [--labellers 50] [--grades 40] [--think-ms 0 [1000 …]] [--workers 1] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import random
import re
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cryocurate import accounts, grading
from cryocurate.catalog.models import GradeScale
from cryocurate.ingest.datasets import DatasetChoice, DatasetFields
from cryocurate.ingest.extract import Extraction
from cryocurate.portal import Portal
from cryocurate.synth import synth_cryosparc
from results import machine, read_section, write_section
from server import RssSampler, served, tree_rss

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data"
RESULTS = HERE / "RESULTS.md"
SECTION = "grading"
PASSWORD = "a long benchmark password"
POSTGRES_ENV = "CRYOCURATE_TEST_POSTGRES_URL"
WINDOW = 20  # queue items fetched at a time, as the grading page does
KEYS = ("A", "B", "C", "D", "F")
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass(frozen=True)
class Sizes:
    """The portal and the load: runs × classes items, labellers, grades each."""

    runs: int = 10
    classes: int = 100
    box: int = 32
    labellers: int = 50
    grades: int = 40


FULL = Sizes()
QUICK = Sizes(runs=2, classes=40, labellers=10, grades=10)


def _log(message: str) -> None:
    print(f"[grading] {message}", file=sys.stderr, flush=True)


# ── the portal ──────────────────────────────────────────────────────────────────────────────


def ensure_jobs(sizes: Sizes) -> list[Path]:
    """The cryoSPARC job folders (cached: the same arguments give the same files)."""
    folder = DATA / "grading-jobs" / f"c{sizes.classes}-b{sizes.box}"
    jobs = []
    for n in range(sizes.runs):
        job = folder / f"J{100 + n}"
        if not (job / ".complete").exists():
            shutil.rmtree(job, ignore_errors=True)
            synth_cryosparc(
                job,
                n_classes=sizes.classes,
                box=sizes.box,
                n_particles=10 * sizes.classes,
                seed=1000 + n,
                project_uid=f"P{1 + n % 2}",
                job_uid=f"J{100 + n}",
            )
            (job / ".complete").touch()
        jobs.append(job)
    return jobs


@dataclass
class Built:
    """A portal root ready to grade in."""

    root: Path
    database_url: str
    campaign_id: int
    emails: list[str]
    items: int
    queue_entries: int
    build_s: float


def build_portal(root: Path, database_url: str | None, sizes: Sizes) -> Built:
    """A fresh portal at ``root``: the runs (two labs), the labellers, one campaign."""
    start = time.perf_counter()
    jobs = ensure_jobs(sizes)
    shutil.rmtree(root, ignore_errors=True)
    emails = [f"labeller{n:02d}@lab-{'ab'[n % 2]}.org" for n in range(sizes.labellers)]
    with Portal.create(root, database_url) as portal:
        run_ids: list[int] = []
        for lab_index, lab in enumerate(("Lab A", "Lab B")):
            lab_jobs = jobs[lab_index::2]
            if not lab_jobs:
                continue
            choice = DatasetChoice(f"Grading benchmark complex ({lab})", DatasetFields(lab=lab))
            for outcome in Extraction(portal, choice, workers=1).run(lab_jobs):
                if outcome.run_id is None:
                    raise SystemExit(f"extraction failed: {outcome.message}")
                run_ids.append(outcome.run_id)
        # One Argon2 hash for everyone: hashing 50 passwords would only slow the set-up.
        password_hash = accounts.hash_password(PASSWORD)
        with portal.transaction() as session:
            admin = accounts.add_user(session, "admin@lab-a.org", "admin", lab="Lab A")
            for n, email in enumerate(emails):
                user = accounts.add_user(session, email, "labeller", lab=("Lab A", "Lab B")[n % 2])
                user.password_hash = password_hash
            campaign = grading.create_campaign(
                session,
                grading.CampaignSpec(
                    name="Grading benchmark",
                    run_ids=sorted(run_ids),
                    scale=GradeScale.letters,
                    labellers=emails,
                    repeat_share=0.05,
                    seed=20240501,
                ),
                created_by=admin,
            )
            campaign_id = campaign.id
        with portal.engine.connect() as conn:
            items = conn.scalar(sa.text("SELECT count(*) FROM campaign_items")) or 0
            entries = conn.scalar(sa.text("SELECT count(*) FROM campaign_queue")) or 0
        url = portal.database_url
    return Built(root, url, campaign_id, emails, items, entries, time.perf_counter() - start)


@contextlib.contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A new, uniquely named database on the server of ``admin_url``; dropped afterwards."""
    name = f"cryocurate_bench_grading_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = sa.make_url(admin_url).set(database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def database_version(root: Path) -> str:
    with Portal.open(root) as portal, portal.engine.connect() as conn:
        if portal.engine.dialect.name == "sqlite":
            return "SQLite " + str(conn.scalar(sa.text("SELECT sqlite_version()")))
        version = str(conn.scalar(sa.text("SHOW server_version")))
        return f"PostgreSQL {version.split()[0]}"


# ── the labellers ───────────────────────────────────────────────────────────────────────────


@dataclass
class Tally:
    """What every labeller saw, merged."""

    grade_ms: list[float] = field(default_factory=list)  # every grade POST, retries included
    queue_ms: list[float] = field(default_factory=list)
    sent: set[str] = field(default_factory=set)  # distinct request ids sent
    statuses: dict[str, int] = field(default_factory=dict)  # result status → count
    retries: int = 0
    duplicates: int = 0  # retries answered "duplicate"
    errors: list[str] = field(default_factory=list)
    finished_at: float = 0.0

    def error(self, text: str) -> None:
        self.errors.append(text)


async def log_in(client: httpx.AsyncClient, email: str) -> str:
    """A real login (pre-session cookie and form token, then the form); the session's CSRF
    token for ``X-CSRF-Token``."""
    page = await client.get("/login")
    page.raise_for_status()
    found = CSRF_FIELD.search(page.text)
    if found is None:
        raise RuntimeError("no csrf_token field on the login page")
    form = {"email": email, "password": PASSWORD, "csrf_token": found.group(1), "next": "/"}
    answer = await client.post("/login", data=form)
    if answer.status_code != 303:
        raise RuntimeError(f"login of {email} answered {answer.status_code}")
    me = await client.get("/me")
    me.raise_for_status()
    return str(me.json()["csrf_token"])


async def labeller(
    client: httpx.AsyncClient,
    campaign_id: int,
    csrf: str,
    n_grades: int,
    think_s: float,
    retry_share: float,
    rng: random.Random,
    tally: Tally,
    go: asyncio.Event,
) -> None:
    """Grade ``n_grades`` items of this labeller's queue, one POST per keypress."""
    await go.wait()
    url = f"/api/v1/campaigns/{campaign_id}/grades"
    headers = {"X-CSRF-Token": csrf}
    start: int | None = None
    done = 0
    while done < n_grades:
        params: dict[str, int] = {"limit": WINDOW}
        if start is not None:
            params["start"] = start
        t = time.perf_counter()
        try:
            answer = await client.get(f"/api/v1/campaigns/{campaign_id}/queue", params=params)
        except httpx.HTTPError as err:
            tally.error(f"queue: {type(err).__name__}: {err}")
            return
        tally.queue_ms.append((time.perf_counter() - t) * 1000)
        if answer.status_code != 200:
            tally.error(f"queue: HTTP {answer.status_code}: {answer.text[:200]}")
            return
        items = [i for i in answer.json()["items"] if i["grade"] is None]
        if not items:
            tally.error("queue: no items left to grade")
            return
        for item in items:
            if done >= n_grades:
                break
            if think_s:
                await asyncio.sleep(think_s * rng.uniform(0.5, 1.5))
            grade = {
                "request_id": f"bench-{uuid.uuid4().hex}",
                "item_id": item["item_id"],
                "grade": rng.choice(KEYS),
                "repeat": item["repeat"],
                "given_at": dt.datetime.now(dt.UTC).isoformat(),
                "seconds_on_item": round(think_s, 3),
            }
            tally.sent.add(grade["request_id"])
            sends = 2 if rng.random() < retry_share else 1
            for attempt in range(sends):
                t = time.perf_counter()
                try:
                    answer = await client.post(url, json={"grades": [grade]}, headers=headers)
                except httpx.HTTPError as err:
                    tally.error(f"grade: {type(err).__name__}: {err}")
                    continue
                tally.grade_ms.append((time.perf_counter() - t) * 1000)
                if answer.status_code != 200:
                    tally.error(f"grade: HTTP {answer.status_code}: {answer.text[:200]}")
                    continue
                result = answer.json()["results"][0]
                status = str(result["status"])
                tally.statuses[status] = tally.statuses.get(status, 0) + 1
                if attempt:
                    tally.retries += 1
                    tally.duplicates += status == "duplicate"
                if status == "error" or (status == "duplicate" and not attempt):
                    tally.error(f"grade: {status}: {result.get('error')}")
            done += 1
        start = items[-1]["position"] + 1
    tally.finished_at = max(tally.finished_at, time.perf_counter())


@dataclass
class Snapshot:
    """What the catalog holds: row counts, request ids, and the grade annotations' counts."""

    grades: int
    events: int
    ids: set[str]
    annotation_count: int  # sum of object_count over the grade annotations

    @classmethod
    def take(cls, root: Path) -> Snapshot:
        with Portal.open(root) as portal, portal.engine.connect() as conn:
            grades = conn.scalar(sa.text("SELECT count(*) FROM grades")) or 0
            events = conn.scalar(sa.text("SELECT count(*) FROM grade_events")) or 0
            ids = {str(r) for r in conn.scalars(sa.text("SELECT request_id FROM grade_events"))}
            counted = conn.scalar(
                sa.text(
                    "SELECT coalesce(sum(a.object_count), 0) FROM annotations a "
                    "JOIN grade_annotations g ON g.annotation_id = a.id"
                )
            )
        return cls(grades, events, ids, int(counted or 0))


@dataclass
class Phase:
    """One round of grading at one think time, and what it left in the catalog."""

    think_ms: float
    tally: Tally
    wall_s: float
    rss_peak: int
    grades_rows: int  # added by this phase
    events_rows: int
    missing: int  # request ids sent but not in grade_events
    unexpected: int  # request ids added to grade_events but never sent
    annotation_count: int  # added to the grade annotations' object counts

    @property
    def stored_ok(self) -> bool:
        n = len(self.tally.sent)
        return self.grades_rows == n == self.events_rows and not self.missing | self.unexpected


async def load(
    base: str,
    built: Built,
    sizes: Sizes,
    think_ms: list[float],
    retry_share: float,
    seed: int,
    rss: RssSampler,
) -> tuple[list[Phase], float, int]:
    """Log everyone in at once, then let them grade at once, once per think time: (phases,
    login seconds, the server's peak RSS while they logged in)."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    timeout = httpx.Timeout(120.0)
    clients = [
        httpx.AsyncClient(base_url=base, timeout=timeout, limits=limits) for _ in built.emails
    ]
    phases: list[Phase] = []
    try:
        t = time.perf_counter()
        tokens = await asyncio.gather(
            *(log_in(c, e) for c, e in zip(clients, built.emails, strict=True))
        )
        login_s = time.perf_counter() - t
        login_peak = rss.restart()
        before = Snapshot.take(built.root)
        for k, think in enumerate(think_ms):
            tally = Tally()
            go = asyncio.Event()
            tasks = [
                asyncio.create_task(
                    labeller(
                        client,
                        built.campaign_id,
                        csrf,
                        sizes.grades,
                        think / 1000,
                        retry_share,
                        random.Random(seed + 1000 * k + n),
                        tally,
                        go,
                    )
                )
                for n, (client, csrf) in enumerate(zip(clients, tokens, strict=True))
            ]
            await asyncio.sleep(0.1)
            rss.restart()
            start = time.perf_counter()
            go.set()
            await asyncio.gather(*tasks)
            wall = (tally.finished_at or time.perf_counter()) - start
            peak = rss.restart()
            after = Snapshot.take(built.root)
            added = after.ids - before.ids
            phases.append(
                Phase(
                    think_ms=think,
                    tally=tally,
                    wall_s=wall,
                    rss_peak=peak,
                    grades_rows=after.grades - before.grades,
                    events_rows=after.events - before.events,
                    missing=len(tally.sent - after.ids),
                    unexpected=len(added - tally.sent),
                    annotation_count=after.annotation_count - before.annotation_count,
                )
            )
            before = after
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    return phases, login_s, login_peak


# ── one backend ─────────────────────────────────────────────────────────────────────────────


@dataclass
class Outcome:
    """One backend's figures."""

    backend: str
    version: str
    workers: int
    sizes: Sizes
    built: Built
    phases: list[Phase]
    login_s: float
    rss_idle_mb: float
    rss_login_mb: float  # peak while everyone logged in at once
    log_lines: dict[str, int]

    @property
    def stored_ok(self) -> bool:
        return all(p.stored_ok for p in self.phases)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def scan_log(log: Path) -> dict[str, int]:
    """How often the server's stderr mentions the troubles worth knowing about."""
    text = log.read_text(errors="replace") if log.exists() else ""
    patterns = {
        "tracebacks": "Traceback (most recent call last)",
        "database is locked": "database is locked",
        "QueuePool limit": "QueuePool limit",
        "deadlock": "deadlock detected",
        "serialization failure": "could not serialize",
    }
    return {name: text.count(needle) for name, needle in patterns.items() if needle in text}


def run_backend(
    backend: str,
    database_url: str | None,
    sizes: Sizes,
    args: argparse.Namespace,
) -> Outcome:
    folder = DATA / f"grading-{backend}"
    folder.mkdir(parents=True, exist_ok=True)
    root = folder / "portal"
    _log(f"{backend}: building the portal …")
    built = build_portal(root, database_url, sizes)
    _log(
        f"{backend}: {built.items} items, {len(built.emails)} labellers, "
        f"{built.queue_entries:,} queue entries; built in {built.build_s:.1f} s"
    )
    version = database_version(root)
    log = folder / "server.log"
    with served(root, "/login", workers=args.workers, log=log) as (base, proc):
        time.sleep(0.5)
        idle = tree_rss(proc)
        _log(f"{backend}: {len(built.emails)} labellers logging in and grading …")
        with RssSampler(proc, 0.05) as rss:
            phases, login_s, login_peak = asyncio.run(
                load(base, built, sizes, args.think_ms, args.retry_share, args.seed, rss)
            )
    return Outcome(
        backend=backend,
        version=version,
        workers=args.workers,
        sizes=sizes,
        built=built,
        phases=phases,
        login_s=login_s,
        rss_idle_mb=idle / 2**20,
        rss_login_mb=login_peak / 2**20,
        log_lines=scan_log(log),
    )


# ── report ──────────────────────────────────────────────────────────────────────────────────


def table(outcomes: list[Outcome]) -> str:
    lines = [
        "| backend | server workers | labellers | think ms | grades sent | stored: grades / "
        "events | sent = stored | retries : duplicate acks | grades/s | p50 ms | p99 ms "
        "| max ms | queue p50 / p99 ms | errors | server RSS idle / peak MiB |",
        "|---|---:|---:|---:|---:|---:|:---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for o in outcomes:
        for p in o.phases:
            t = p.tally
            acked = t.statuses.get("stored", 0) + t.statuses.get("superseded", 0)
            rate = acked / p.wall_s if p.wall_s else float("nan")
            lines.append(
                f"| {o.version} | {o.workers} | {len(o.built.emails)} | {p.think_ms:g} "
                f"| {len(t.sent):,} | {p.grades_rows:,} / {p.events_rows:,} "
                f"| {'yes' if p.stored_ok else '**no**'} | {t.retries} : {t.duplicates} "
                f"| {rate:,.0f} | {_pct(t.grade_ms, 0.5):.1f} | {_pct(t.grade_ms, 0.99):.1f} "
                f"| {max(t.grade_ms, default=float('nan')):.0f} "
                f"| {_pct(t.queue_ms, 0.5):.1f} / {_pct(t.queue_ms, 0.99):.1f} "
                f"| {len(t.errors)} | {o.rss_idle_mb:.0f} / {p.rss_peak / 2**20:.0f} |"
            )
    return "\n".join(lines)


def details(o: Outcome) -> str:
    parts = [
        f"- {o.version}: {o.built.items:,} items, {o.built.queue_entries:,} queue entries, "
        f"portal built in {o.built.build_s:.1f} s; the {len(o.built.emails)} logins, all at "
        f"once, took {o.login_s:.1f} s (Argon2; before the clock starts), the server's RSS "
        f"peaking at {o.rss_login_mb:,.0f} MiB meanwhile."
    ]
    for p in o.phases:
        t = p.tally
        statuses = ", ".join(f"{k} {v:,}" for k, v in sorted(t.statuses.items()))
        parts.append(
            f"  Think {p.think_ms:g} ms: graded for {p.wall_s:.1f} s; {len(t.grade_ms):,} grade "
            f"POSTs ({statuses}), {len(t.queue_ms):,} queue fetches."
        )
        if p.missing or p.unexpected:
            parts.append(f"  **{p.missing} sent grades missing, {p.unexpected} unexpected rows.**")
        if p.annotation_count != p.grades_rows:
            parts.append(
                f"  **The grade annotations' object counts grew by {p.annotation_count:,}, "
                f"not {p.grades_rows:,}.**"
            )
        if t.errors:
            kinds: dict[str, int] = {}
            for e in t.errors:
                kinds[e[:120]] = kinds.get(e[:120], 0) + 1
            top = sorted(kinds.items(), key=lambda x: -x[1])[:3]
            parts.append("  Errors: " + "; ".join(f"{n}× {k}" for k, n in top) + ".")
    if o.log_lines:
        found = ", ".join(f"{k}: {v}" for k, v in o.log_lines.items())
        parts.append(f"  Server log: {found}.")
    return "\n".join(parts)


def report(outcomes: list[Outcome], command: str, load_at_start: str) -> str:
    s = outcomes[0].sizes
    return "\n".join(
        [
            "## grading",
            "",
            f"Run with `{command}` "
            f"({time.strftime('%Y-%m-%d')}, {machine()}; {load_at_start} at the start; the "
            "labellers and the server share these cores).",
            "",
            f"{s.labellers} simulated labellers (one httpx client and session each, logged in "
            f"through the login form) grade {s.grades} items each at once against one "
            f"`cryocurate serve` on loopback: one `POST /api/v1/campaigns/{{id}}/grades` per "
            "keypress with a fresh request id, the queue fetched 20 items at a time; about "
            "5 % of the grades sent again with the same request id once acknowledged (an "
            "outbox retry), which must be answered `duplicate`. Campaign: "
            f"{s.runs} 2D runs × {s.classes} classes, every labeller grades every item, repeat "
            "share 0.05. Latency: client side, request sent to answer read, every grade POST "
            "(retries included). grades/s: distinct grades acknowledged ÷ wall time from the "
            "common start to the last acknowledgement. Stored: rows in `grades` and "
            "`grade_events` afterwards, and their request ids compared with those sent.",
            "",
            table(outcomes),
            "",
            *(details(o) for o in outcomes),
        ]
    )


def load_average() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--backends", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite", "postgresql"]
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get(POSTGRES_ENV),
        help=f"PostgreSQL URL of a user who may create databases (default: ${POSTGRES_ENV})",
    )
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--labellers", type=int, help="simulated labellers (default 50)")
    parser.add_argument("--grades", type=int, help="grades per labeller (default 40)")
    parser.add_argument("--runs", type=int, help="2D runs in the campaign (default 10)")
    parser.add_argument("--classes", type=int, help="classes per run (default 100)")
    parser.add_argument(
        "--think-ms",
        type=float,
        nargs="+",
        default=[0.0],
        help="mean think time per grade; several values: one round each, same server",
    )
    parser.add_argument("--retry-share", type=float, default=0.05, help="grades sent twice")
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--write", type=Path, default=RESULTS, help="RESULTS.md to update")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    base = QUICK if args.quick else FULL
    sizes = Sizes(
        runs=args.runs or base.runs,
        classes=args.classes or base.classes,
        box=base.box,
        labellers=args.labellers or base.labellers,
        grades=args.grades or base.grades,
    )
    if sizes.grades > sizes.runs * sizes.classes:
        parser.error("more grades per labeller than items in the campaign")
    if "postgresql" in args.backends and not args.postgres:
        parser.error(f"PostgreSQL needs --postgres URL or ${POSTGRES_ENV}")
    load_at_start = load_average()
    outcomes: list[Outcome] = []
    for backend in args.backends:
        if backend == "sqlite":
            outcomes.append(run_backend(backend, None, sizes, args))
        else:
            with postgres_database(args.postgres) as url:
                outcomes.append(run_backend(backend, url, sizes, args))
                shutil.rmtree(DATA / "grading-postgresql" / "portal", ignore_errors=True)
        print(table(outcomes[-1:]), flush=True)
    command = " ".join(["python benchmarks/grading.py", *sys.argv[1:]])
    command = re.sub(r"(--postgres)[ =]\S+", r"\1 URL", command)
    text = report(outcomes, command, load_at_start)
    print()
    print(text)
    if not args.no_write:
        if read_section(args.write, SECTION) is None:
            _log(f"adding the {SECTION} section to {args.write}")
        write_section(args.write, SECTION, text)
    failed = [o.backend for o in outcomes if not o.stored_ok]
    dup_wrong = [
        o.backend for o in outcomes for p in o.phases if p.tally.duplicates != p.tally.retries
    ]
    if failed or dup_wrong:
        _log(f"FAILED: sent ≠ stored on {failed}; retries not all duplicate on {dup_wrong}")
        sys.exit(1)


if __name__ == "__main__":
    main()
