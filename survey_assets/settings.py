"""The one settings switch: the lab (default) or production, read from the environment once.

Assets never read the environment: `definitions.py` builds resources from these settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from survey_assets.lab import world as W

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    mode: str = "lab"  # lab | production
    data_dir: Path = PROJECT_ROOT / "data"
    lab_seed: int = W.DEFAULT_SEED
    lab_scale: str = "demo"
    lab_dns_port: int = 10053
    lab_smtp_port: int = 10025
    # Where downloaded zone lists land (one folder per source, one per day inside it).
    downloads_dir: Path | None = None
    # The scanner's recursive resolver ("address@port") and trust anchor; the lab's by default.
    resolver: str | None = None
    trust_anchor: Path | None = None
    # The zone-list sources; the lab's by default.
    sources_file: Path = PROJECT_ROOT / "config" / "sources.lab.toml"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        mode = env.get("SURVEY_MODE", "lab")
        if mode not in ("lab", "production"):
            raise ValueError(f"SURVEY_MODE={mode!r}: expected 'lab' or 'production'")
        scale = env.get("SURVEY_LAB_SCALE", cls.lab_scale)
        if scale not in W.SCALES:
            raise ValueError(f"SURVEY_LAB_SCALE={scale!r}: expected one of {', '.join(W.SCALES)}")
        downloads = env.get("SURVEY_DOWNLOADS_DIR")
        return cls(
            mode=mode,
            data_dir=Path(env.get("SURVEY_DATA_DIR", cls.data_dir)).resolve(),
            lab_seed=int(env.get("SURVEY_LAB_SEED", cls.lab_seed)),
            lab_scale=scale,
            lab_dns_port=int(env.get("SURVEY_LAB_DNS_PORT", cls.lab_dns_port)),
            lab_smtp_port=int(env.get("SURVEY_LAB_SMTP_PORT", cls.lab_smtp_port)),
            downloads_dir=Path(downloads) if downloads else None,
            sources_file=Path(env.get("SURVEY_SOURCES", cls.sources_file)),
            resolver=env.get("SURVEY_RESOLVER") or None,
            trust_anchor=Path(env["SURVEY_TRUST_ANCHOR"])
            if env.get("SURVEY_TRUST_ANCHOR")
            else None,
        )

    @property
    def lake_dir(self) -> Path:
        return self.data_dir / "lake"

    @property
    def lab_dir(self) -> Path:
        return self.data_dir / "lab"

    @property
    def dagster_home(self) -> Path:
        return self.data_dir / "dagster"
