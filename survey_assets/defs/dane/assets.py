"""STARTTLS captures and DANE verdicts: the TLS layer of the survey."""

import contextlib
import datetime as dt
from collections import Counter

import dagster as dg
import polars as pl

from survey_assets import eventloop
from survey_assets.dane.day import capture_frame, verdicts
from survey_assets.defs.constants import (
    CERTIFICATE_CAPTURES,
    CERTIFICATE_CAPTURES_DATASET,
    DAILY,
    DANE_GROUP,
    DANE_VERDICTS,
    DANE_VERDICTS_DATASET,
    DOMAIN_SCANS,
    DOMAIN_SCANS_DATASET,
    MX_HOST_SCANS,
    MX_HOST_SCANS_DATASET,
)
from survey_assets.defs.metadata import md_table
from survey_assets.defs.resources import SurveySettings
from survey_assets.lake.parquet import read_partition, replace_partition
from survey_assets.smtp.client import CaptureSettings, capture_all
from survey_assets.smtp.targets import addresses_of, targets_of

# The scanner's name in EHLO: a page at that name should explain the scan (DOMAIN.md etiquette).
EHLO_NAME = "dane-survey.lab-net"


def _capture_settings(survey: SurveySettings, smtp_port: int) -> CaptureSettings:
    if survey.lab:  # the lab's hostile hosts take seconds, not minutes, to give up on
        return CaptureSettings(ehlo_name=EHLO_NAME, port=smtp_port, deadline=5.0,
                               retry_delay=1.0, networks="loopback")  # fmt: skip
    return CaptureSettings(ehlo_name=EHLO_NAME, port=25, deadline=30.0, retry_delay=60.0,
                           networks="global")  # fmt: skip


def _read(survey: SurveySettings, dataset: str, date: dt.date) -> pl.DataFrame | None:
    try:
        return read_partition(survey.lake, dataset, date)
    except FileNotFoundError:
        return None


@dg.asset(key=CERTIFICATE_CAPTURES, deps=[MX_HOST_SCANS], partitions_def=DAILY,
          group_name=DANE_GROUP, kinds={"parquet", "smtp"})  # fmt: skip
def certificate_captures(
    context: dg.AssetExecutionContext, survey: SurveySettings
) -> dg.MaterializeResult:
    """One SMTP STARTTLS session to every address of every MX host with TLSA records, once
    however many domains use the host: the chain the server presented (DER, in order), the
    protocol and cipher, the reply codes, timings, and the failure class when it failed."""
    date = dt.date.fromisoformat(context.partition_key)
    hosts = read_partition(survey.lake, MX_HOST_SCANS_DATASET, date)
    with_tlsa = hosts.filter(pl.col("tlsa").list.len() > 0)
    names = with_tlsa["name"].to_list()
    providers = dict(zip(names, with_tlsa["zone"].to_list(), strict=True))
    with survey.lab_serving(date) if survey.lab else contextlib.nullcontext() as lab:
        resolver, port = survey.resolver_address, survey.lab_smtp_port
        if lab is not None:  # started here: its ports are the settings' (or its own)
            resolver, port = (lab.info.resolver, lab.info.dns_port), lab.info.smtp_port
        addresses = eventloop.run(addresses_of(names, resolver))
        settings = _capture_settings(survey, port)
        captures = eventloop.run(capture_all(targets_of(addresses, providers), settings))
    frame = capture_frame(captures, [h for h, found in addresses.items() if not found])
    path = replace_partition(survey.lake, CERTIFICATE_CAPTURES_DATASET, date, frame)
    reasons = Counter(r or "ok" for r in frame["reason"].to_list())
    failed = frame.filter(pl.col("reason").is_not_null())
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": frame.height,
            "hosts": len(names),
            "chains_captured": int(frame["reason"].is_null().sum()),
            "by_outcome": md_table(("outcome", "count"), reasons.most_common()),
            "failures": md_table(
                ("host", "address", "reason", "stage", "detail"),
                failed.select("host", "address", "reason", "stage", "detail").head(25).rows(),
            ),
            "seconds_p50": float(frame["total_seconds"].median() or 0.0),
            "path": dg.MetadataValue.path(str(path)),
        }
    )


@dg.asset(key=DANE_VERDICTS, deps=[CERTIFICATE_CAPTURES, DOMAIN_SCANS], partitions_def=DAILY,
          group_name=DANE_GROUP, kinds={"parquet"})  # fmt: skip
def dane_verdicts(
    context: dg.AssetExecutionContext, survey: SurveySettings
) -> dg.MaterializeResult:
    """What a DANE-enforcing sender would do, decided from the day's bytes: per address
    (pass, or why not), per MX host (and its rollover readiness against the previous day's
    capture: ready, at risk, botched), and per domain (DANE-enabled only if every primary MX
    host that accepts connections has secure TLSA matching at every address)."""
    date = dt.date.fromisoformat(context.partition_key)
    yesterday = date - dt.timedelta(days=1)
    previous_captures = _read(survey, CERTIFICATE_CAPTURES_DATASET, yesterday)
    frame, judged = verdicts(
        hosts=read_partition(survey.lake, MX_HOST_SCANS_DATASET, date),
        captures=read_partition(survey.lake, CERTIFICATE_CAPTURES_DATASET, date),
        domains=read_partition(survey.lake, DOMAIN_SCANS_DATASET, date),
        now=survey.scan_time(date),
        previous_hosts=_read(survey, MX_HOST_SCANS_DATASET, yesterday),
        previous_captures=previous_captures,
    )
    path = replace_partition(survey.lake, DANE_VERDICTS_DATASET, date, frame)
    domains = frame.filter(pl.col("kind") == "domain")
    secure_mx = domains.filter(pl.col("dnssec") == "secure").height
    botched = sorted(n for n, v in judged.items() if v.rollover == "botched")
    rollover = Counter(v.rollover for v in judged.values())
    reasons = Counter(c for r in frame.filter(pl.col("dane") == "fail")["dane_reasons"].to_list()
                      for c in r)  # fmt: skip
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": frame.height,
            "domains_dane_pass": domains.filter(pl.col("dane") == "pass").height,
            "domains_secure_mx": secure_mx,
            "hosts_by_rollover": dg.MetadataValue.json(dict(rollover.most_common())),
            # The event operators must be told about (rotation_alerts will read these).
            "botched_rotations": md_table(("mx host",), [(n,) for n in botched]),
            "fail_reasons": md_table(("reason", "rows"), reasons.most_common()),
            "previous_capture": "none" if previous_captures is None else yesterday.isoformat(),
            "path": dg.MetadataValue.path(str(path)),
        }
    )
