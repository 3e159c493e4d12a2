"""`make demo`: the lab on loopback and the survey's assets over a window of days."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import click

from survey_assets.settings import PROJECT_ROOT, Settings


def run_demo(settings: Settings, *, start: dt.date, days: int, scale: str) -> None:
    if days < 1:
        raise click.BadParameter(f"--days {days}: the window needs at least one day")
    settings = Settings(**{**settings.__dict__, "lab_scale": scale, "mode": "lab"})
    _claim(settings, scale)
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)

    import dagster as dg

    from survey_assets.definitions import build

    definitions = build(settings)
    graph = definitions.resolve_asset_graph()
    everything = definitions.resolve_implicit_global_asset_job_def()
    # The days run the partitioned assets; the warehouse (and what reads it) is built once after.
    daily = {k for k in graph.get_all_asset_keys() if graph.get(k).partitions_def is not None}
    job = everything.get_subset(asset_selection=daily)
    whole = everything.get_subset(asset_selection=set(graph.get_all_asset_keys()) - daily)
    instance = dg.DagsterInstance.get()
    dates = [start + dt.timedelta(days=i) for i in range(days)]
    click.echo(f"lab: seed {settings.lab_seed}, scale {scale}, {dates[0]} .. {dates[-1]}")
    for date in dates:
        began = time.monotonic()
        # The lab runs in its own process, as a real Internet would: it must not share the
        # scanner's interpreter (and its lock) while thousands of queries are in flight.
        with lab_process(settings, scale, date) as info:
            if date == dates[0]:
                click.echo(
                    f"lab serving: resolver {info['resolver']}, SMTP port {info['smtp_port']}"
                )
            result = job.execute_in_process(
                partition_key=date.isoformat(),
                instance=instance,
                raise_on_error=False,
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            )
        status = "ok" if result.success else "FAILED"
        click.echo(
            f"  {date}: run {result.run_id[:8]} {status} ({time.monotonic() - began:.1f} s)"
            + _candidates_line(result)
        )
        if not result.success:
            raise click.ClickException(f"the run for {date} failed; see `make ui`")
    began = time.monotonic()
    result = whole.execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    click.echo(f"  warehouse: run {result.run_id[:8]} ({time.monotonic() - began:.1f} s)")
    for check in result.get_asset_check_evaluations():
        if not check.passed:
            click.echo(f"    check {check.asset_key.to_user_string()}/{check.check_name}: "
                       f"{check.severity.value}: {check.description}")  # fmt: skip
    if not result.success:
        raise click.ClickException("the warehouse run failed; see `make ui`")
    click.echo("")
    click.echo("results:")
    click.echo(f"  lake (Parquet):    {settings.lake_dir}")
    click.echo(f"  zone downloads:    {settings.data_dir / 'downloads'}")
    click.echo(f"  candidates:        {settings.lake_dir / 'candidate_domains'}")
    click.echo(f"  lab ground truth:  {settings.lab_dir / 'truth'}")
    click.echo(f"  warehouse:         {settings.data_dir / 'warehouse.duckdb'}")
    click.echo(
        '  query it:          .venv/bin/survey sql "SELECT * FROM mart_daily_totals ORDER BY date"'
    )
    click.echo(f"  run history:       make ui  (dagster dev, DAGSTER_HOME={home})")
    click.echo(f"  charts:            {settings.data_dir / 'charts'}")
    click.echo(f"  stats site:        {settings.data_dir / 'site' / 'index.html'}")
    click.echo(
        f"  serve it:          .venv/bin/survey site serve --dir {settings.data_dir / 'site'}"
    )


def _candidates_line(result) -> str:
    """`, 3,912 candidates (+12 -40)` from the run's candidate_domains materialization."""
    found = result.asset_materializations_for_node("candidate_domains") if result.success else []
    if not found:
        return ""
    meta = found[0].metadata
    rows, added, removed = (meta[k].value for k in ("dagster/row_count", "added", "removed"))
    line = f", {rows:,} candidates (+{added:,} -{removed:,})"
    scans = result.asset_materializations_for_node("domain_scans")
    if scans:
        statuses = scans[0].metadata["by_status"].value
        line += ", MX " + " ".join(f"{k} {v:,}" for k, v in sorted(statuses.items()))
    return line


def _claim(settings: Settings, scale: str) -> None:
    """One lab world per data directory: the days of another scale or seed would mix with
    this one's in the lake, and the warehouse's checks would (rightly) fail on the jumps."""
    marker = settings.data_dir / "demo-world.json"
    world = {"scale": scale, "seed": settings.lab_seed}
    if marker.exists():
        before = json.loads(marker.read_text())
        if before != world:
            raise click.UsageError(
                f"{settings.data_dir} holds the lab world {before}, not {world}: its days would "
                "mix in the lake. Give another directory (make demo DATA=...) or empty this "
                "one (make clean)."
            )
        return
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(world) + "\n")


@contextlib.contextmanager
def lab_process(settings: Settings, scale: str, date: dt.date):
    """`survey lab serve` for one date in a child process; yields its JSON line as a dict."""
    cmd = [sys.executable, "-m", "survey_assets.cli", "lab", "serve", "--date", date.isoformat(),
           "--scale", scale, "--seed", str(settings.lab_seed), "--workdir", str(settings.lab_dir),
           "--dns-port", str(settings.lab_dns_port), "--smtp-port", str(settings.lab_smtp_port)]  # fmt: skip
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline() if child.stdout else ""
        if not line:
            raise click.ClickException(f"the lab did not start: {child.stderr.read().strip()}")
        yield json.loads(line)
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
