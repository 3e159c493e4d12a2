"""The `survey` command: the lab, the demo, and (as they land) checks and queries."""

from __future__ import annotations

import datetime as dt
import json
import signal
import sys
import threading
from pathlib import Path

import click

from survey_assets.lab import world as W
from survey_assets.settings import Settings


def _date(_ctx, _param, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return W.parse_date(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


scale_option = click.option(
    "--scale", type=click.Choice(sorted(W.SCALES)), default="tiny", show_default=True
)
seed_option = click.option("--seed", type=int, default=W.DEFAULT_SEED, show_default=True)
date_option = click.option(
    "--date", callback=_date, default=W.LAB_EPOCH.isoformat(), show_default=True,
    help="the world's date, YYYY-MM-DD",
)  # fmt: skip


@click.group()
def main() -> None:
    """The open DNSSEC and DANE-for-SMTP survey."""


@main.group()
def lab() -> None:
    """The lab: a synthetic Internet on loopback."""


@lab.command()
@date_option
@scale_option
@seed_option
@click.option("--dns-port", type=int, default=None, help="default: the settings' lab DNS port")
@click.option("--smtp-port", type=int, default=None, help="default: the settings' lab SMTP port")
@click.option("--workdir", type=click.Path(path_type=Path), default=None)
def serve(date, scale, seed, dns_port, smtp_port, workdir) -> None:
    """Serve the lab's DNS and SMTP until SIGTERM or SIGINT; print one JSON line when ready."""
    from survey_assets.lab.serve import Lab, LabError, info_line

    settings = Settings.from_env()
    lab_ = Lab(
        seed=seed,
        scale=scale,
        date=date,
        workdir=workdir or settings.data_dir / "lab",
        dns_port=dns_port or settings.lab_dns_port,
        smtp_port=smtp_port or settings.lab_smtp_port,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        lab_.start()
    except LabError as exc:
        click.echo(f"survey lab serve: {exc}", err=True)
        sys.exit(1)
    try:
        click.echo(info_line(lab_))
        sys.stdout.flush()
        stop.wait()
    finally:
        lab_.stop()


@lab.command()
@date_option
@scale_option
@seed_option
@click.option("--out", type=click.Path(path_type=Path), required=True)
def zonefiles(date, scale, seed, out) -> None:
    """Write the date's zone lists as downloads look: CZDS files and a name list."""
    from survey_assets.lab.zonefiles import write_zonefiles

    written = write_zonefiles(W.World(seed, scale, date), out)
    click.echo(json.dumps({"out": str(out), "files": written}, sort_keys=True))


@lab.command()
@date_option
@scale_option
@seed_option
@click.option("--out", type=click.Path(path_type=Path), required=True)
def truth(date, scale, seed, out) -> None:
    """Write the date's ground truth as JSON lines."""
    from survey_assets.lab.truth import write_truth

    rows = write_truth(W.World(seed, scale, date), out)
    click.echo(json.dumps({"out": str(out), "rows": rows}))


@main.command()
@click.argument("domain")
@click.option("--resolver", default=None, help="ADDRESS[@PORT]; default: the lab's resolver")
@click.option("--trust-anchor", type=click.Path(path_type=Path), default=None,
              help="root DS records; default: the lab's anchor")  # fmt: skip
@click.option(
    "--now", default=None, help="validation time, YYYY-MM-DD[THH:MM]; default: the lab's day"
)
@click.option("--smtp-port", type=click.IntRange(1, 65535), default=None,
              help="default: the lab's SMTP port (settings), 25 with --resolver")  # fmt: skip
@click.option("--networks", type=click.Choice(["loopback", "global"]), default=None,
              help="addresses that may be contacted; default: loopback for the lab, "
                   "global with --resolver")  # fmt: skip
@click.option("--no-tls", is_flag=True, help="the DNS part only: connect to no MX host")
@click.option("--json", "as_json", is_flag=True, help="the full result, with evidence")
def check(
    domain: str, resolver: str | None, trust_anchor: Path | None, now: str | None,
    smtp_port: int | None, networks: str | None, no_tls: bool, as_json: bool,
) -> None:  # fmt: skip
    """Check one domain live with the survey's own code: DNSSEC of its MX, its MX hosts' TLSA,
    then STARTTLS to every address of each MX host with secure TLSA, the chains, which TLSA
    record matched which certificate, and the DANE verdicts with rollover readiness."""
    from survey_assets.dns.check import (
        CheckError,
        check_domain,
        parse_server,
        render,
        tls_options,
    )
    from survey_assets.dns.scan import read_anchor
    from survey_assets.lab.serve import served_date

    settings = Settings.from_env()
    lab_ = resolver is None
    try:
        server = parse_server(resolver or f"{W.RESOLVER_ADDRESS}@{settings.lab_dns_port}")
        anchor_path = trust_anchor or settings.lab_dir / "trust-anchor.ds"
        try:
            anchors = read_anchor(anchor_path.read_text())
        except (OSError, ValueError) as exc:
            raise CheckError(f"trust anchor {anchor_path}: {exc}") from None
        if now:
            when = dt.datetime.fromisoformat(now)
            when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
        elif lab_ and (day := served_date(server[1])) is not None:
            when = dt.datetime.combine(day, dt.time(12), dt.UTC)
        else:
            when = dt.datetime.now(dt.UTC)
        tls = None
        if not no_tls:
            port = smtp_port or (settings.lab_smtp_port if lab_ else 25)
            tls = tls_options(
                port, lab=(networks or ("loopback" if lab_ else "global")) == "loopback"
            )
        result = check_domain(domain, server, anchors, when, tls)
    except (CheckError, ValueError) as exc:
        click.echo(f"survey check: {exc}", err=True)
        sys.exit(2)
    click.echo(json.dumps(result, indent=2, sort_keys=True) if as_json else render(result))


@main.command()
@click.argument("query")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
def sql(query: str, fmt: str) -> None:
    """Run QUERY against the warehouse, read-only, and print the result."""
    from survey_assets.warehouse.query import QueryError, render, run_query

    warehouse = Settings.from_env().data_dir / "warehouse.duckdb"
    try:
        columns, rows = run_query(warehouse, query)
    except QueryError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(render(columns, rows, fmt))


@main.group()
def site() -> None:
    """The static stats site (built by the `site` asset into <data dir>/site)."""


@site.command("serve")
@click.option("--port", type=int, default=8000, show_default=True, help="0: any free port")
@click.option("--dir", "folder", type=click.Path(path_type=Path), default=None,
              help="the site folder; default: <data dir>/site")  # fmt: skip
def site_serve(port: int, folder: Path | None) -> None:
    """Serve the site on http://127.0.0.1:PORT/ (loopback only) until interrupted."""
    from survey_assets.site.serve import SiteError, make_server

    folder = folder or Settings.from_env().data_dir / "site"
    try:
        server = make_server(folder, port)
    except SiteError as exc:
        click.echo(f"survey site serve: {exc}", err=True)
        sys.exit(2)
    host, bound = server.server_address[:2]
    click.echo(f"serving {folder} on http://{host}:{bound}/ (Ctrl-C stops)")
    sys.stdout.flush()
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@site.command("build")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="default: <data dir>/site")  # fmt: skip
def site_build(out: Path | None) -> None:
    """Build the site from the warehouse without Dagster (the `site` asset does the same)."""
    from survey_assets.site.build import build_site

    data = Settings.from_env().data_dir
    report = build_site(data / "warehouse.duckdb", out or data / "site")
    for notice in report.notices:
        click.echo(f"note: {notice}", err=True)
    click.echo(json.dumps({"site": str(report.out), "pages": len(report.pages),
                           "charts": report.charts, "domains": report.domains,
                           "missing": report.missing}))  # fmt: skip


@main.command()
@click.option("--days", type=int, default=14, show_default=True, help="length of the window")
@click.option("--start", callback=_date, default=W.LAB_EPOCH.isoformat(), show_default=True)
@scale_option
def demo(days: int, start: dt.date, scale: str) -> None:
    """Run the survey end to end on the lab over a window of days."""
    from survey_assets.demo import run_demo

    run_demo(Settings.from_env(), start=start, days=days, scale=scale)


if __name__ == "__main__":
    main()
