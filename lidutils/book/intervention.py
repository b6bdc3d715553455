"""The intervention experiment: does lowering local dimension *cause* better generalization?

The paper's evidence is correlational across models that differ in architecture,
size and data. Here the local intrinsic dimension (LID) of the embedding is moved
directly, at fixed architecture, data and schedule, by adding
``lam * lidutils.penalty.batch_penalty(emb, "lid", k)`` to the training loss
(``lam > 0`` lowers LID, ``lam < 0`` raises it), and the effect is measured within
matched seeds (same initialisation, data order and subset; only ``lam`` differs).

Design (:class:`Experiment`, :data:`EXPERIMENTS`)
-------------------------------------------------
For each family (default: the controlled zoo's MLP and MLP-Mixer trunks at
their reference capacity, :data:`lidutils.book.zoo.CONTROLLED`), every network has the
zoo's fixed embedding width, optimiser, cosine schedule with warm-up and weight
decay, and the same training images (``n_train``) and epochs:

- the **dose series**: ``lam`` over ``lambdas[family]``, **symmetric about 0**
  (every positive dose with its negative; :class:`Experiment` refuses anything
  else), every value with every seed (``lam = 0`` is the unregularised network).
  The two **arms** — ``lam > 0`` (LID pushed down) and ``lam < 0`` (LID pushed up)
  — are analysed separately (:data:`ARMS`), so an inverted U (every perturbation
  costs) cannot pass for a monotone dose–response;
- the **norm control**: the penalty ``kind="norm"`` (coefficient of variation of the
  embedding norms: radial, scale invariant, unrelated to local dimension) with the
  weight that gives the *same gradient norm on the embeddings* as the LID penalty
  at ``lam`` (:func:`lidutils.penalty.matched_weight`, measured on the
  unregularised networks' evaluation embeddings), for each ``lam`` in
  ``norm_lambdas[family]`` (positive: the control of the LID-lowering arm);
- the **label-noise series**: ``noise`` of the training labels wrong, for each
  ``lam`` in ``noise_lambdas[family]`` (includes 0), every seed; test accuracy is on
  the clean test labels.

The unregularised networks (the *twins*) are saved at several epochs
(:meth:`Experiment.twin_epochs`): their test accuracy against their training loss
along training is the reference of the primary outcome.

The training regime (default: 1000 images, 24 epochs, no augmentation) is chosen so
that the unregularised networks fit their training set clearly better than the test
set: a generalization gap that a penalty could close (the chapter shows it as a
premise check).

Outcomes: generalization separated from optimisation
----------------------------------------------------
A penalty that makes a network *fit* its training set worse lowers its test
accuracy without saying anything about generalization, and it also shrinks the
generalization gap (an underfitted network has none). The pre-declared primary
outcome therefore compares test accuracy **at matched training loss**
(:func:`test_at_fit`): for a penalised network with final training loss
:math:`L_p` and test accuracy :math:`A_p`, its twin's test accuracy at the same
training loss, :math:`A_t(L_p)`, is interpolated linearly along the twin's
checkpoints :math:`(L_t(e), A_t(e))`, and

.. math:: \\Delta A_{\\mathrm{fit}} = A_p - A_t(L_p),

positive when the penalised network generalizes better than its twin did at the
same fit. The generalization gap :math:`g = A_{\\mathrm{train}} - A_{\\mathrm{test}}`
(training accuracy on the labels trained on, evaluation mode) is a secondary outcome.

Measurements (:func:`measure`), as in the claim notebooks
---------------------------------------------------------
LID: Levina–Bickel MLE at the paper's K = 50, mean over the 1000 evaluation images,
in the PCA-300 space (:func:`lidutils.book.measures.lid_table`); test accuracy (all clean
test images), training accuracy and loss; model–model alignment: held-out ridge
:math:`R^2` (:func:`lidutils.book.measures.ridge_all_pairs`, the paper's ridge on 300 PCs)
in both directions between the network and each *unregularised* clean network of
its family with another seed, averaged over those references; brain: Spearman RSA
of the 92-image probe RDM with each subject's EVC and IT RDM, mean over subjects
(:func:`lidutils.book.measures.brain_long`).

Modules
-------
Only imports and organisation here: :mod:`~lidutils.book.intervention_design` (experiments,
entries, training), :mod:`~lidutils.book.intervention_measures` (measurements, paired
differences), :mod:`~lidutils.book.intervention_verdict` (penalty validation, records, verdict).
"""
from lidutils.book.intervention_design import (  # noqa: F401
    METRICS, ARMS, ARM_TEXT, PRIMARIES, UNIT, Experiment, EXPERIMENTS, ALIASES, experiment, design,
    design_text, entries, run, twin_curves, load_eval,
)
from lidutils.book.intervention_measures import (  # noqa: F401
    torch_threads, measure, test_at_fit, paired, paired_summary, baseline, baseline_text,
)
from lidutils.book.intervention_verdict import (  # noqa: F401
    validate_penalty, penalty_validation, validation_text, arm, records, claim_verdict,
    write_result, norm_control, interpretation, brain_context, result_extra,
)
