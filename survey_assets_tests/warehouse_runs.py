"""Run workers for test_warehouse_concurrency: each one a process of its own, as Dagster's run
launcher starts them, executing the `warehouse_build` job with the multiprocess executor (one
process per step) against a shared instance and a shared data directory."""

from __future__ import annotations

import functools
import os
from pathlib import Path

# The step processes fork from a server that has imported these once (and, through this
# module, built the job once: see WARM): a step then starts in about a second instead of
# paying ~5 s to import dagster, its SQLite storage and the survey, and to build definitions.
PRELOAD = ["dagster", "dagster._core.storage.sqlite_storage",
           "dagster._core.storage.local_compute_log_manager", "duckdb", "survey_assets.definitions",
           __name__]  # fmt: skip
WARM = "SURVEY_TEST_WAREHOUSE_RUNS_DIR"  # set for the fork server: the data dir to build for
POLL = 0.25  # seconds between a blocked step's requests for a pool slot


@functools.cache
def warehouse_build_job(data_dir: str):
    """The real `warehouse_build` job, with the survey's resources pointing at `data_dir`.
    Rebuilt by name in every run worker and step process (see build_reconstructable_job)."""
    from survey_assets.definitions import build
    from survey_assets.defs.constants import WAREHOUSE_JOB
    from survey_assets.settings import Settings

    return build(Settings(data_dir=Path(data_dir), lab_scale="tiny")).resolve_job_def(WAREHOUSE_JOB)


def run_config(max_concurrent: int) -> dict:
    return {
        "execution": {
            "config": {
                "multiprocess": {
                    "max_concurrent": max_concurrent,
                    "start_method": {"forkserver": {"preload_modules": PRELOAD}},
                }
            }
        },
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
    }


def _poll_pools_often() -> None:
    """A step blocked by a pool asks again after 1 s, then ever longer, up to 15 s: most of a
    queue's time would be slots standing free. Ask every POLL seconds instead. Only how often
    the executor asks changes; a slot is still taken and freed in the instance's storage."""
    from dagster._core.execution.plan import instance_concurrency_context as icc

    for name in (
        "INITIAL_INTERVAL_VALUE",
        "STEP_UP_BASE",
        "MAX_CONCURRENCY_CLAIM_BLOCKED_INTERVAL",
    ):
        assert hasattr(icc, name), f"dagster no longer has {name}: update _poll_pools_often"
    icc.INITIAL_INTERVAL_VALUE = icc.MAX_CONCURRENCY_CLAIM_BLOCKED_INTERVAL = POLL
    icc.STEP_UP_BASE = 1.0


def run_worker(instance_ref, data_dir: str, keys: list[str], max_concurrent: int, start, out):
    """Wait for `start` (so every worker's run begins at once), execute the job's `keys` and
    put (run id, success) on `out`."""
    import multiprocessing

    import dagster as dg

    _poll_pools_often()
    # Start the step processes' fork server now, not in the first step (inside its pool slot).
    os.environ[WARM] = data_dir
    forkserver = multiprocessing.get_context("forkserver")
    forkserver.set_forkserver_preload(PRELOAD)
    warm_up = forkserver.Process(target=os.getpid)  # returns once the server has its imports
    warm_up.start()
    warm_up.join()
    job = dg.build_reconstructable_job(__name__, "warehouse_build_job", (data_dir,))
    instance = dg.DagsterInstance.from_ref(instance_ref)
    start.wait()
    result = dg.execute_job(
        job,
        instance=instance,
        run_config=run_config(max_concurrent),
        asset_selection=[dg.AssetKey(k) for k in keys],
    )
    out.put((result.run_id, result.success))


if os.environ.get(WARM):  # in the fork server: every step process inherits the built job
    warehouse_build_job(os.environ[WARM])
