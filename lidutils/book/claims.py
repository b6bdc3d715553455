"""The claim analyses, as one namespace for the chapters (``from lidutils.book import claims as C``).

Only imports and organisation: each name lives in the module of its concern
(:mod:`~lidutils.book.params`, :mod:`~lidutils.book.study`, :mod:`~lidutils.book.records`,
:mod:`~lidutils.book.analyses`, :mod:`~lidutils.book.brain`, :mod:`~lidutils.book.local_global`,
:mod:`~lidutils.book.validation`, :mod:`~lidutils.book.degradation`).
"""
from lidutils.book.analyses import (
    c5_primaries, C5_SERIES, c5_verdict, c6_verdict, cell_partial, epoch_table, family_records,
    k_curve, k_curves, lid_label, lite_series, max_over_k_p, measured, natural_k_table,
    premise_records, primary_analysis, robustness_grid, series_table, show_claim, target_measures,
)
from lidutils.book.brain import (
    brain_references, brain_regions, brain_showcase, brain_test, brain_test_frame, c7_verdict,
    ceiling_and_baseline, compare_regions, mark_uninformative, model_rdms, per_subject_records,
    reference_records, surface_maps,
)
from lidutils.book.degradation import DEGRADATION, degradation_records, degradation_table, MIN_RIDGE_PHOTOS
from lidutils.book.local_global import (
    C4_GLOBALS, c4_records, c4_targets, c4_verdict, contrast_record, k_trend, local_global,
    local_global_frame,
)
from lidutils.book.measures import lid_col
from lidutils.book.params import (
    book_root, GLOBAL_FRACTION, k_global, k_grid, K_SWEEP, MIN_N, NOTEBOOK_DEFAULTS,
    notebook_parameter_defaults, OWN_PARAMETERS, paper_k, parameters, SHARED_DEFAULTS,
)
from lidutils.book.records import (
    both_methods, correlate, families_of, finalize, holm_gate, member_units, records_frame,
    unit_groups, within_design, write,
)
from lidutils.book.report import best_k_frame, facts_frame, readable, write_claim
from lidutils.book.study import (
    analysis_populations, DRY_RUN_BANNER, from_population, learning_curves, population_named,
    populations_frame, primary_population, replication_populations, setup, Study, zoo_design,
    zoo_networks,
)
from lidutils.book.validation import save_validation, validation_summary, world_claims
