"""Shared test helpers: free loopback ports and a running lab."""

from __future__ import annotations

import socket

import pytest

from survey_assets.lab import world as W


def free_port(address: str = W.RESOLVER_ADDRESS) -> int:
    """A port free for both UDP and TCP on `address` (the lab binds the same port everywhere)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((address, 0))
            port = tcp.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.bind((address, port))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no free port on {address}")


def tiny_lab(workdir, date, **options):
    """A tiny lab for one date on free ports, without zone files; use it as a context manager."""
    from survey_assets.lab.serve import Lab

    return Lab(scale="tiny", date=date, workdir=workdir, dns_port=free_port(),
               smtp_port=free_port("127.25.1.1"), write_zones=False, **options)  # fmt: skip


def materialize_days(root, days, selection=None) -> dict:
    """Run the survey's assets (or `selection`) for each day in order, with a tiny lab serving
    that day; every run must succeed. Returns the run results by day."""
    import dagster as dg

    from survey_assets.definitions import build
    from survey_assets.settings import Settings

    lab = tiny_lab(root / "lab", days[0])
    settings = Settings(data_dir=root, lab_scale="tiny", lab_dns_port=lab.dns_port,
                        lab_smtp_port=lab.smtp_port)  # fmt: skip
    job = build(settings).resolve_implicit_global_asset_job_def()
    if selection:
        job = job.get_subset(asset_selection=set(selection))
    instance = dg.DagsterInstance.ephemeral()
    results = {}
    with lab:
        for day in days:
            lab.set_date(day)
            results[day] = job.execute_in_process(partition_key=day.isoformat(), instance=instance)
            assert results[day].success, day
    return results


SURVEY_DAYS = 14  # the window the warehouse, chart, site and notebook tests look at


def warehouse_selection(root) -> set:
    """The unpartitioned assets that build the warehouse (and what reads it)."""
    from survey_assets.definitions import build
    from survey_assets.settings import Settings

    graph = build(Settings(data_dir=root, lab_scale="tiny")).resolve_asset_graph()
    return {k for k in graph.get_all_asset_keys() if graph.get(k).partitions_def is None}


def materialize_warehouse(root, selection=None):
    """Build the warehouse (views, models, checks) from what the lake holds; returns the result
    (it may hold failed checks: callers look)."""
    import dagster as dg

    from survey_assets.definitions import build
    from survey_assets.settings import Settings

    job = build(Settings(data_dir=root, lab_scale="tiny")).resolve_implicit_global_asset_job_def()
    job = job.get_subset(asset_selection=selection or warehouse_selection(root))
    return job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)


@pytest.fixture(scope="session")
def lab_survey(tmp_path_factory):
    """SURVEY_DAYS lab days through every daily asset, then the warehouse, once per session.
    Tests must not change it: copy it first (see `copy_survey`)."""
    root = tmp_path_factory.mktemp("survey")
    days = [W.date_of(i) for i in range(SURVEY_DAYS)]
    from survey_assets.definitions import build
    from survey_assets.settings import Settings

    graph = build(Settings(data_dir=root, lab_scale="tiny")).resolve_asset_graph()
    daily = {k for k in graph.get_all_asset_keys() if graph.get(k).partitions_def is not None}
    materialize_days(root, days, selection=daily)
    assert materialize_warehouse(root).success
    return root
