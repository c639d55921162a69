"""Simulated longitudinal MS cohort on real anatomy (``longitudinal-al make-cohort``).

anatomy (real tissue maps) -> subject (smooth random deformation) -> pair
(lesions, FLAIR-like contrast, acquisition effects) -> generator (files, manifest,
subject-wise split); manifest reads it back; contact_sheet draws a pair.
"""

from LongitudinalALLib.cohort.anatomy import AnatomyUnavailableWarning, available_anatomies, load_anatomy
from LongitudinalALLib.cohort.generator import CohortOptions, generate_cohort
from LongitudinalALLib.cohort.manifest import load_manifest, pair_files, pairs_in_split
from LongitudinalALLib.cohort.pair import SimulationOptions

__all__ = ["AnatomyUnavailableWarning", "CohortOptions", "SimulationOptions", "available_anatomies",
           "generate_cohort", "load_anatomy", "load_manifest", "pair_files", "pairs_in_split"]
