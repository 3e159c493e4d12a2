"""The one Definitions object: the defs/ tree, with resources bound from the settings switch."""

import dagster as dg

from survey_assets.defs.resources import resources_for
from survey_assets.settings import PROJECT_ROOT, Settings


def build(settings: Settings) -> dg.Definitions:
    """The survey's definitions for a given settings switch (tests and the demo pass their own)."""
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=PROJECT_ROOT / "survey_assets"),
        dg.Definitions(resources=resources_for(settings)),
    )


defs = build(Settings.from_env())
