"""Resources: the survey's settings as Dagster sees them, bound once in definitions.py."""

import datetime as dt
from pathlib import Path

import dagster as dg

from survey_assets.lab import world as W
from survey_assets.settings import Settings
from survey_assets.sources.config import SourcesConfig, load_sources


class SurveySettings(dg.ConfigurableResource):
    """Where data lives and whether the survey runs against the lab or the real Internet."""

    mode: str = "lab"
    data_dir: str
    lab_seed: int = W.DEFAULT_SEED
    lab_scale: str = "demo"
    lab_dns_port: int = 10053
    lab_smtp_port: int = 10025
    downloads_dir: str | None = None
    sources_file: str
    resolver: str | None = None
    trust_anchor: str | None = None

    @property
    def resolver_address(self) -> tuple[str, int]:
        """Where the scanner sends its queries: the lab's resolver unless one is configured."""
        text = self.resolver or f"{W.RESOLVER_ADDRESS}@{self.lab_dns_port}"
        address, _, port = text.rpartition("@")
        return (address, int(port)) if address else (text, 53)

    @property
    def trust_anchor_path(self) -> Path:
        return (
            Path(self.trust_anchor)
            if self.trust_anchor
            else Path(self.data_dir) / "lab" / "trust-anchor.ds"
        )

    def scan_time(self, date: dt.date) -> dt.datetime:
        """The "now" signatures are judged at: noon of the lab's day, or the clock in production."""
        if self.lab:
            return dt.datetime.combine(date, dt.time(12), dt.UTC)
        return dt.datetime.now(dt.UTC)

    @property
    def lab(self) -> bool:
        return self.mode == "lab"

    @property
    def lake(self) -> Path:
        return Path(self.data_dir) / "lake"

    @property
    def downloads(self) -> Path:
        return Path(self.downloads_dir) if self.downloads_dir else Path(self.data_dir) / "downloads"

    @property
    def lab_tld_server(self) -> str:
        return f"{W.TLD_SERVERS['ns1.nic.lab-net.']}@{self.lab_dns_port}"

    def sources(self) -> SourcesConfig:
        variables = {"downloads": str(self.downloads), "lab_tld_server": self.lab_tld_server}
        return load_sources(Path(self.sources_file), variables)

    def lab_serving(self, date: dt.date, private: bool = False):
        """A context in which the lab serves `date` (started here if nothing is listening; on
        free ports and yielded when `private`, for steps that run side by side)."""
        from survey_assets.lab.serve import serving

        return serving(
            seed=self.lab_seed,
            scale=self.lab_scale,
            date=date,
            workdir=Path(self.data_dir) / "lab",
            dns_port=self.lab_dns_port,
            smtp_port=self.lab_smtp_port,
            private=private,
        )

    def world(self, date: dt.date) -> W.World:
        if not self.lab:
            raise RuntimeError("the lab's world exists only in lab mode (SURVEY_MODE=lab)")
        return W.world(self.lab_seed, self.lab_scale, date)


def resources_for(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    return {
        "survey": SurveySettings(
            mode=settings.mode,
            data_dir=str(settings.data_dir),
            lab_seed=settings.lab_seed,
            lab_scale=settings.lab_scale,
            lab_dns_port=settings.lab_dns_port,
            lab_smtp_port=settings.lab_smtp_port,
            downloads_dir=str(settings.downloads_dir) if settings.downloads_dir else None,
            sources_file=str(settings.sources_file),
            resolver=settings.resolver,
            trust_anchor=str(settings.trust_anchor) if settings.trust_anchor else None,
        )
    }
