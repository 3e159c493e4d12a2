"""Zone-list sources as declared in one TOML file (`config/sources.lab.toml` by default)."""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass
from pathlib import Path

KINDS = ("czds", "zonefile", "axfr", "list")
CADENCES = {"daily": 1, "weekly": 7, "monthly": 31}


class ConfigError(ValueError):
    """The sources file is wrong: the message names the file, the source and the problem."""


@dataclass(frozen=True)
class Source:
    name: str
    kind: str
    location: str
    cadence: str = "daily"
    zones: tuple[str, ...] = ()

    @property
    def is_file_source(self) -> bool:
        return self.kind != "axfr"

    def folder(self, date: dt.date) -> Path:
        """Where a file source's publication of a day lands."""
        return Path(self.location) / date.isoformat()

    def server(self) -> tuple[str, int]:
        """(address, port) of a zone-transfer source."""
        address, _, port = self.location.rpartition("@")
        return (address, int(port)) if address else (self.location, 53)


@dataclass(frozen=True)
class SourcesConfig:
    path: Path
    sources: tuple[Source, ...]
    extra_suffixes: tuple[str, ...]

    def by_name(self, name: str) -> Source:
        return next(s for s in self.sources if s.name == name)


def load_sources(path: Path, variables: dict[str, str]) -> SourcesConfig:
    """Read and check the sources file; `{name}` in locations is replaced from `variables`."""
    try:
        raw = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    sources = []
    for i, entry in enumerate(raw.get("source", [])):
        where = f"{path}: source #{i + 1} ({entry.get('name', '?')})"
        unknown = set(entry) - {"name", "kind", "location", "cadence", "zones"}
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        for key in ("name", "kind", "location"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise ConfigError(f"{where}: `{key}` is required")
        if entry["kind"] not in KINDS:
            raise ConfigError(f"{where}: kind {entry['kind']!r} is not one of {', '.join(KINDS)}")
        cadence = entry.get("cadence", "daily")
        if cadence not in CADENCES:
            raise ConfigError(f"{where}: cadence {cadence!r} is not one of {', '.join(CADENCES)}")
        zones = tuple(entry.get("zones", ()))
        if entry["kind"] == "axfr" and not zones:
            raise ConfigError(f"{where}: an axfr source needs `zones`")
        try:
            location = entry["location"].format(**variables)
        except KeyError as exc:
            raise ConfigError(f"{where}: unknown variable {exc} in location") from None
        sources.append(Source(entry["name"], entry["kind"], location, cadence, zones))
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: source names must be unique: {names}")
    if not sources:
        raise ConfigError(f"{path}: no [[source]] declared")
    extra = tuple(raw.get("suffixes", {}).get("extra", ()))
    return SourcesConfig(Path(path), tuple(sources), extra)
