"""The one Definitions object: the defs/ tree, with resources bound from the settings switch."""

import dagster as dg

from survey_assets import defs as defs_package
from survey_assets.defs.resources import resources_for
from survey_assets.settings import Settings

defs = dg.Definitions.merge(
    dg.load_defs(defs_package),
    dg.Definitions(resources=resources_for(Settings.from_env())),
)
