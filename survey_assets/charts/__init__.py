"""The survey's charts: Vega-Lite specs built with Altair from warehouse marts (specs.py), the
rows they carry (data.py), and their rendering to PNG, SVG and standalone HTML (render.py).
No Dagster here: the chart assets in defs/charts/ call these functions."""
