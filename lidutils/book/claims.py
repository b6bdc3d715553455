"""The claim analyses, as one namespace for the chapters (``from lidutils.book import claims as C``).

Only imports and organisation: each name lives in the module of its concern:
:mod:`~lidutils.book.params` (notebook parameters, the K of each claim),
:mod:`~lidutils.book.study` (the population a chapter analyses),
:mod:`~lidutils.book.records` (the record builder, Holm, results files),
:mod:`~lidutils.book.analyses` (primary analyses, K curves, robustness, C5/C6),
:mod:`~lidutils.book.brain` (the brain test, C7), :mod:`~lidutils.book.local_global` (C4),
:mod:`~lidutils.book.validation` (synthetic worlds through this code) and
:mod:`~lidutils.book.degradation` (within-model degradation series).
"""
from lidutils.book.measures import lid_col  # noqa: F401
from lidutils.book.report import best_k_frame, facts_frame, readable, write_claim  # noqa: F401
from lidutils.book.params import (  # noqa: F401
    SHARED_DEFAULTS, NOTEBOOK_DEFAULTS, OWN_PARAMETERS, K_SWEEP, GLOBAL_FRACTION, MIN_N, parameters,
    book_root, notebook_parameter_defaults, claim_k, k_grid, k_global,
)
from lidutils.book.study import (  # noqa: F401
    analysis_populations, primary_population, Study, setup, DRY_RUN_BANNER, from_population,
    zoo_design, zoo_networks, learning_curves, population_named, populations_frame,
    replication_populations,
)
from lidutils.book.records import (  # noqa: F401
    families_of, within_design, correlate, both_methods, holm_gate, finalize, records_frame,
    unit_groups, write, member_units,
)
from lidutils.book.analyses import (  # noqa: F401
    target_measures, measured, k_curve, max_over_k_p, robustness_grid, family_records, C5_SERIES,
    c5_primaries, c5_verdict, c6_verdict, premise_records, lid_label, primary_analysis,
    series_table, show_claim, k_curves, cell_partial, lite_series, natural_k_table, epoch_table,
)
from lidutils.book.brain import (  # noqa: F401
    model_rdms, brain_test, mark_uninformative, per_subject_records, c7_verdict, compare_regions,
    reference_records, brain_references, brain_showcase, brain_test_frame, ceiling_and_baseline,
    cortical_maps, brain_regions, c2_records, c2_replications, c7_records, write_c7,
)
from lidutils.book.local_global import (  # noqa: F401
    c4_targets, C4_GLOBALS, local_global, contrast_record, local_global_frame, k_trend, c4_verdict,
    c4_records, c4_rule,
)
from lidutils.book.validation import (  # noqa: F401
    world_claims, validation_summary, save_validation,
)
from lidutils.book.degradation import (  # noqa: F401
    DEGRADATION, MIN_RIDGE_PHOTOS, degradation_table, degradation_records,
)
