"""Shared test helpers: free loopback ports and a running lab."""

from __future__ import annotations

import socket

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
