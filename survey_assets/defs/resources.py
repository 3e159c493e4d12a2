"""Resources: the survey's settings as Dagster sees them, bound once in definitions.py."""

import datetime as dt
from pathlib import Path

import dagster as dg

from survey_assets.lab import world as W
from survey_assets.settings import Settings


class SurveySettings(dg.ConfigurableResource):
    """Where data lives and whether the survey runs against the lab or the real Internet."""

    mode: str = "lab"
    data_dir: str
    lab_seed: int = W.DEFAULT_SEED
    lab_scale: str = "demo"
    lab_dns_port: int = 10053
    lab_smtp_port: int = 10025
    downloads_dir: str | None = None

    @property
    def lab(self) -> bool:
        return self.mode == "lab"

    @property
    def lake(self) -> Path:
        return Path(self.data_dir) / "lake"

    def downloads(self, date: dt.date) -> Path:
        root = Path(self.downloads_dir) if self.downloads_dir else Path(self.data_dir) / "downloads"
        return root / date.isoformat()

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
        )
    }
