"""Runs side by side, each with the multiprocess executor, sharing one warehouse.duckdb: every
warehouse asset and check is in the `warehouse` pool, which the shipped dagster.yaml gives one
slot, so one step at a time opens the file and no run hits DuckDB's single-writer lock.

Three run workers (processes, as Dagster's run launcher starts them) on one instance rebuild
the warehouse from the lab survey's 14-day lake at the same moment, each with the multiprocess
executor allowed two steps at once. The event log must show that the runs overlapped, that steps
waited for the pool, and no lock error; the tables must equal the ones a build done alone made.

The pool alone is not quite enough: on Dagster's SQLite storage, two runs starting at the same
instant can both claim its one slot (seen once in CI: two runs' `lake_views` started within
7 ms, and one failed on DuckDB's lock). The steps therefore also open the warehouse under a
file lock (`survey_assets/warehouse/access.py`); `test_the_file_lock_makes_a_second_writer_wait`
shows across processes that a second writer waits for the first instead of failing.

Without the pool the same three runs collide: on an instance whose dagster.yaml has no `pools`
(2 cores, measured three times) two of the three runs failed every time, their `lake_views` step
with DuckDB's `Could not set lock on file ".../warehouse.duckdb": Conflicting lock is held`, and
4 to 6 pairs of steps overlapped. That depends on timing, so the suite does not rely on it;
`test_a_second_writer_hits_duckdbs_lock` shows deterministically that a second writer fails the
run and is seen where the main test looks for lock errors.
"""

from __future__ import annotations

import multiprocessing
import queue
import shutil
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from survey_assets.defs.constants import WAREHOUSE_FILE, WAREHOUSE_POOL
from survey_assets.settings import PROJECT_ROOT
from survey_assets.warehouse.models import MODELS_DIR, load_models
from survey_assets_tests import warehouse_runs
from survey_assets_tests.test_warehouse_rerun import tables

# The session's lab_survey fixture (14 lab days) is built by whichever test asks first.
pytestmark = pytest.mark.timeout(1800)

RUNS = 3
MAX_CONCURRENT = 2  # per run: without the pool, two steps of one run could write at once too
# A part of the warehouse small enough to run three times, one step at a time: lake_views, then
# its scan_freshness check and two models ready together (a table and a view), then two more
# (the import events the charts annotate).
SELECTION = ["lake_views", "stg_imports", "stg_source_names", "stg_source_firsts",
             "mart_import_events"]  # fmt: skip
LOCK_ERRORS = ("could not set lock", "conflicting lock")
ENDS = (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE)


def _instance(tmp_path: Path) -> dg.DagsterInstance:
    """A persistent instance with the project's own dagster.yaml, created here, once: its SQLite
    storage is set up before any worker opens it (workers creating it together race)."""
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    return dg.DagsterInstance.from_config(str(home))


def _run_side_by_side(instance, data_dir: Path, runs: int, keys: list[str]) -> dict[str, bool]:
    """`runs` run workers executing `keys` at once; their run ids and whether each succeeded."""
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(runs, timeout=300), ctx.Queue()
    workers = [
        ctx.Process(target=warehouse_runs.run_worker,
                    args=(instance.get_ref(), str(data_dir), keys, MAX_CONCURRENT, start, out))
        for _ in range(runs)
    ]  # fmt: skip
    try:
        for worker in workers:
            worker.start()
        results: dict[str, bool] = {}
        while len(results) < runs:
            try:
                run_id, success = out.get(timeout=5)
            except queue.Empty:
                died = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
                assert not died, f"a run worker died (exit codes {died})"
                continue
            results[run_id] = success
        for worker in workers:
            worker.join(60)
            assert worker.exitcode == 0, f"a run worker exited with {worker.exitcode}"
        return results
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()


def _text(entry) -> str:
    """An event's message with its error, if any (a failed step's exception is in the latter)."""
    event = entry.dagster_event
    return f"{entry.message} {event.event_specific_data!r}" if event else entry.message


def test_runs_side_by_side_share_the_warehouse_one_step_at_a_time(lab_survey, tmp_path):
    root = tmp_path / "data"  # the 14-day lake without its warehouse: the runs build it anew
    shutil.copytree(lab_survey, root, ignore=shutil.ignore_patterns(
        "dagster", "lab", "charts", "site", f"{WAREHOUSE_FILE}*"))  # fmt: skip
    instance = _instance(tmp_path)
    assert instance.get_concurrency_config().pool_config.default_pool_limit == 1

    results = _run_side_by_side(instance, root, RUNS, SELECTION)

    logs = {run_id: instance.all_logs(run_id) for run_id in results}
    lock_errors = [_text(e) for entries in logs.values() for e in entries
                   if any(s in _text(e).lower() for s in LOCK_ERRORS)]  # fmt: skip
    assert not lock_errors, lock_errors[0]
    failed = [_text(e) for entries in logs.values() for e in entries if e.is_dagster_event
              and e.dagster_event.event_type == dg.DagsterEventType.STEP_FAILURE]  # fmt: skip
    assert not failed, failed[0]
    assert all(results.values()), results
    assert {p.name: p.limit for p in instance.event_log_storage.get_pool_limits()} == {
        WAREHOUSE_POOL: 1
    }

    # Each run executed every step of the selection, and each of those is in the pool.
    job = warehouse_runs.warehouse_build_job(str(root))
    pools = {node.name: node.definition.pool for node in job.nodes}
    for run_id, entries in logs.items():
        started = {e.step_key for e in entries if e.is_dagster_event
                   and e.dagster_event.event_type == dg.DagsterEventType.STEP_START}  # fmt: skip
        ended = {e.step_key for e in entries
                 if e.is_dagster_event and e.dagster_event.event_type in ENDS}  # fmt: skip
        assert started == ended == {*SELECTION, "lake_views_scan_freshness"}, run_id
        assert {pools[step] for step in started} == {WAREHOUSE_POOL}

    # The runs were in progress together (the barrier starts them at once) ...
    spans = [(min(e.timestamp for e in entries), max(e.timestamp for e in entries))
             for entries in logs.values()]  # fmt: skip
    assert max(start for start, _ in spans) < min(end for _, end in spans), spans
    # ... steps waited for the pool's one slot (in their own run and in the others) ...
    blocked = [e for entries in logs.values() for e in entries
               if e.message and f"blocked by limit for pool {WAREHOUSE_POOL}" in e.message]  # fmt: skip
    assert blocked, "no step ever waited for the warehouse pool"
    # (Steps of two runs may still be in progress together where both claimed the pool's slot
    # at the same instant, Dagster's SQLite race above: the file lock keeps their use of the
    # warehouse apart, which is what the absence of lock errors shows.)

    # What they built is what a build done alone (the lab_survey fixture's) made.
    made = {m.name for m in load_models(MODELS_DIR) if m.name in SELECTION}
    expected = {n: v for n, v in tables(lab_survey / WAREHOUSE_FILE).items() if n in made}
    assert expected and tables(root / WAREHOUSE_FILE) == expected


def test_a_second_writer_hits_duckdbs_lock(tmp_path):
    """The control: a writer holding warehouse.duckdb (this process) makes a warehouse step of
    a run in another process fail with DuckDB's lock error, in the event log the test reads."""
    root = tmp_path / "data"
    root.mkdir()
    instance = _instance(tmp_path)
    with duckdb.connect(str(root / WAREHOUSE_FILE)):
        results = _run_side_by_side(instance, root, 1, ["lake_views"])
    ((run_id, success),) = results.items()
    assert not success
    texts = [_text(e).lower() for e in instance.all_logs(run_id)]
    assert any(all(s in text for s in LOCK_ERRORS) for text in texts)


def _write_under_lock(path: str, out) -> None:
    from survey_assets.warehouse import access

    with access.connect(Path(path)) as con:
        out.put(time.monotonic())  # CLOCK_MONOTONIC: comparable across processes
        con.execute("CREATE OR REPLACE TABLE t AS SELECT 2 AS x")


def test_the_file_lock_makes_a_second_writer_wait(tmp_path):
    """A writer in another process, started while this one holds the warehouse, waits for it
    and then writes; it neither fails on DuckDB's lock nor gets in before the first is done."""
    from survey_assets.warehouse import access

    path = tmp_path / WAREHOUSE_FILE
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    with access.connect(path) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
        child = ctx.Process(target=_write_under_lock, args=(str(path), out))
        child.start()
        time.sleep(2.0)  # ample for a spawned child to reach the lock
        assert out.empty()  # still waiting
        released = time.monotonic()
    entered = out.get(timeout=60)
    child.join(60)
    assert child.exitcode == 0 and entered >= released
    with access.connect(path, read_only=True) as con:
        assert con.execute("SELECT x FROM t").fetchall() == [(2,)]
