"""Writing a chart's files: its spec, a standalone HTML page and a PNG, each put in place by
renaming a finished temporary file (a reader never sees half a chart)."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from survey_assets.charts import render

BUNDLE_FILE = "vega-bundle.js"


@dataclass(frozen=True)
class ChartFiles:
    spec: Path
    html: Path
    png: Path


def write_atomic(path: Path, content: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode() if isinstance(content, str) else content
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a web server must read the site
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_chart(
    folder: Path, name: str, title: str, spec: dict, renderer: ModuleType | None
) -> ChartFiles:
    """`<name>.vl.json`, `<name>.html` (with the Vega bundle beside it) and `<name>.png`.
    Raises RendererMissing, after writing the spec, when vl-convert is not there."""
    spec_path = write_atomic(folder / f"{name}.vl.json", json.dumps(spec, indent=1))
    bundle = render.vega_bundle(renderer)
    bundle_path = folder / BUNDLE_FILE
    if not bundle_path.exists() or bundle_path.read_text(encoding="utf-8") != bundle:
        write_atomic(bundle_path, bundle)
    html = write_atomic(folder / f"{name}.html", render.chart_page(spec, title, BUNDLE_FILE))
    png = write_atomic(folder / f"{name}.png", render.to_png(spec, renderer))
    return ChartFiles(spec_path, html, png)
