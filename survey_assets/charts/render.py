"""Rendering Vega-Lite specs: PNG and the Vega JavaScript bundle through vl-convert, and a
standalone HTML page of our own.

vl-convert's own HTML pastes the spec into a <script> as raw JSON, so a scanned name holding
`</script>` would end the script there; ours carries the spec as HTML-safe JSON (every `<`, `>`
and `&` escaped) in a `<script type="application/json">` that is parsed, never evaluated.
Rendering never fetches anything: the data is inline and no base URL is allowed.
"""

from __future__ import annotations

import functools
import importlib
import json
from types import ModuleType

import altair as alt

# The Vega-Lite version Altair writes, in vl-convert's spelling ("v6_4").
VL_VERSION = "v" + "_".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])


class RendererMissing(Exception):
    """vl-convert is not installed (or not usable): charts cannot be drawn or bundled."""


def load_renderer() -> ModuleType | None:
    """vl-convert, or None when it cannot be imported."""
    try:
        return importlib.import_module("vl_convert")
    except ImportError:
        return None


def _need(renderer: ModuleType | None) -> ModuleType:
    if renderer is None:
        raise RendererMissing("vl-convert-python is not installed: charts are not drawn")
    return renderer


def to_png(spec: dict, renderer: ModuleType | None, scale: float = 2.0) -> bytes:
    return _need(renderer).vegalite_to_png(
        spec, vl_version=VL_VERSION, scale=scale, allowed_base_urls=[]
    )


def to_svg(spec: dict, renderer: ModuleType | None) -> str:
    return _need(renderer).vegalite_to_svg(spec, vl_version=VL_VERSION, allowed_base_urls=[])


@functools.cache
def _bundle(renderer: ModuleType) -> str:
    return renderer.javascript_bundle(vl_version=VL_VERSION)


def vega_bundle(renderer: ModuleType | None) -> str:
    """Vega, Vega-Lite and Vega-Embed in one classic script that sets `window.vegaEmbed`: the
    site and chart pages load it from a file next to them, so they work offline."""
    return _bundle(_need(renderer))


def html_json(value: object) -> str:
    """JSON that is safe inside any HTML element: no `<`, `>` or `&` left to be markup."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):  # fmt: skip
        text = text.replace(char, escape)
    return text


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def chart_page(spec: dict, title: str, bundle_src: str) -> str:
    """A standalone page drawing one chart with the Vega bundle at `bundle_src` (a relative
    URL), and the chart's data under it for a reader without JavaScript."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_text(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;margin:2rem}}</style>
<script src="{_text(bundle_src)}"></script></head>
<body><h1>{_text(title)}</h1><div id="chart"></div>
<script type="application/json" id="spec">{html_json(spec)}</script>
<script>
(function () {{
  var spec = JSON.parse(document.getElementById("spec").textContent);
  var target = document.getElementById("chart");
  if (!window.vegaEmbed) {{ target.textContent = "The Vega script is missing: the chart cannot be drawn."; return; }}
  window.vegaEmbed(target, spec, {{renderer: "svg", actions: false}}).catch(function (error) {{
    target.textContent = "The chart could not be drawn: " + error;
  }});
}})();
</script></body></html>
"""
