"""The claim chapters' expensive inputs that do not depend on the zoo, computed ahead of them.

Chapters 01–05 wait for ``population`` (the zoo they measure), but two of their costliest
inputs do not need it: the ImageNet group's features (six networks and two untrained
controls on the sample photos and the probe images) and the within-model degradation
series. ``scripts/build_book.py`` runs :func:`prefetch` in worker processes beside the
zoo's training, so that those caches are filled while one core would otherwise idle
(the zoo's last, single-threaded measurements), and the chapters read them.

Nothing here changes a result: every entry is computed by the functions the chapters
call (:func:`lidutils.book.population.imagenet_features`,
:func:`lidutils.book.degradation.series`) with the chapters' parameters, under the
same content keys and with one math thread as in the chapters' kernels. Work is shared
through locks: a task another worker (or a chapter) is computing is skipped, and a
chapter that needs an entry still being computed waits for it
(:func:`lidutils.cache.computing`).
"""
from __future__ import annotations

import re
from pathlib import Path

from lidutils.book import degradation, population
from lidutils.cache import computing

__all__ = ["prefetch_tasks", "prefetch"]


def prefetch_tasks(params):
    """``[(label, callable)]``: what :func:`prefetch` computes for one chapter's parameters.

    Offline tier only (the paper tier's inputs are downloads and bundles, the dry run's
    stand-ins are cheap): the features of every ImageNet-group model, then every
    degradation series (:func:`lidutils.book.degradation.degradation_plan`).
    """
    if params.get("tier", "offline") != "offline":
        return []
    _, probe, _ = population.brain_data("algonauts92", params.get("rdm_npz"), params.get("image_dir"),
                                        params.get("rois"), params.get("data_dir"))
    controls = params.get("controls")
    names, paths = population.imagenet_inputs(params.get("models"),
                                              population.DEFAULT_CONTROLS if controls is None else controls,
                                              params.get("n_images", 300), params.get("data_dir"))
    cache, device = Path(params["cache_dir"]), params.get("device", "auto")
    layer = params.get("layer", "penultimate")
    tasks = [(f"features of {n}",
              lambda n=n: population.imagenet_features(n, paths, probe, cache, device, layer=layer))
             for n in names]
    models, kinds, n_photos = degradation.degradation_plan(params, names)
    tasks += [(f"degradation series {m} / {k}",
               lambda m=m, k=k: degradation.series(params, m, k, n_photos, probe, cache, device))
              for m in models for k in kinds]
    return tasks


def prefetch(params, say=print):
    """Compute :func:`prefetch_tasks` ``(params)`` into the caches; returns the labels done here.

    Several processes may run it at once on the same parameters: each task is taken by
    one of them (a non-blocking lock per task under ``cache_dir/prefetch``), so two
    workers split the list. Tasks already cached cost a cache read.
    """
    done = []
    for label, task in prefetch_tasks(params):
        slug = re.sub(r"[^\w.-]+", "_", label)
        with computing(Path(params["cache_dir"]) / "prefetch" / slug, wait=False) as mine:
            if mine:
                say(f"[prefetch] {label}")
                task()
                done.append(label)
    return done
