"""Facts of the book's prose, read from the code the chapters run (Sphinx extension).

The prose pages (``book/*.md``) and the notebooks' markdown state populations, counts,
defaults and models. Typed in, such sentences went stale within one revision (issue 23:
"four pretrained ImageNet CNNs" when the book had six, ``n_images`` "default 500" when
it was 300). Here each such fact is computed from the object the chapters use — the zoo
designs (:data:`lidutils.book.zoo.CONTROLLED` ...), :data:`lidutils.models.OFFLINE_IMAGENET`,
the parameter defaults (:data:`lidutils.book.claims.SHARED_DEFAULTS`), the paper's protocol
(:data:`lidutils.book.paper.PROTOCOL`) — and handed to MyST as a substitution: a page writes
``{{ zoo_networks }}`` and the book shows ``90``.

:func:`facts` returns the substitutions (strings); :data:`GUARDS` are patterns that find
the same facts typed as plain numbers in a page, so that ``tests/test_book.py`` fails when
a page states a number the code contradicts (:func:`stale`).

Listed under ``sphinx.local_extensions`` in ``_config.yml``; the substitutions are added
to ``myst_substitutions`` when the configuration is read (page-level ``substitutions``
front matter still wins).
"""
from __future__ import annotations

import re

WORDS = {0: "zero", 1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven",
         8: "eight", 9: "nine", 10: "ten", 11: "eleven", 12: "twelve"}
_NUMBER = {w: n for n, w in WORDS.items()}
_DATA_NAMES = {"fashion-mnist": "Fashion-MNIST", "animal-mnist": "Animal-MNIST"}
_FAMILY_NAMES = {"mlp": "MLP", "convnet": "ConvNet", "mixer": "Mixer", "cnn": "CNN", "resnet": "ResNet"}


def _word(n):
    return WORDS.get(int(n), _thousands(n))


def _thousands(n):
    """``30000`` -> ``30 000`` (the book's thin-space-free thousands separator)."""
    return f"{int(n):,}".replace(",", " ")


def _and(items):
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _levels(xs):
    return _and(f"{x:g}" for x in xs)


def facts():
    """Substitution name -> text, every one computed from the code the chapters run."""
    from lidutils import models, stats
    from lidutils.book import claims, paper, population, zoo

    fm, an, fa = zoo.CONTROLLED, zoo.CONTROLLED_ANIMAL, zoo.FACTORIAL
    fams = [_FAMILY_NAMES.get(f, f) for f in fm.capacity]
    caps = {len(c) for c in fm.capacity.values()}
    if len(caps) != 1:
        raise ValueError(f"the controlled families have different numbers of capacity levels: {caps}")
    new = {e.key for e in fa.entries()} - {e.key for e in fm.entries()}  # cells shared with the zoo train once
    clf, trunks = list(models.OFFLINE_MODELS), list(models.OFFLINE_TRUNKS)
    imagenet = list(models.OFFLINE_IMAGENET)
    sd = claims.SHARED_DEFAULTS
    f = {
        # the controlled zoo (lidutils.book.zoo.CONTROLLED) and its replication
        "zoo_data": _DATA_NAMES.get(fm.data, fm.data),
        "zoo_families": _and(fams),
        "zoo_n_families": str(len(fams)),
        "zoo_n_families_word": _word(len(fams)),
        "zoo_embed_dim": str(fm.embed_dim),
        "zoo_capacity_levels": str(caps.pop()),
        "zoo_data_levels": str(len(fm.n_train)),
        "zoo_n_train_min": _thousands(min(fm.n_train)),
        "zoo_n_train_max": _thousands(max(fm.n_train)),
        "zoo_label_noise": _levels((0.0,) + tuple(fm.noise)),
        "zoo_seeds": str(len(fm.seeds)),
        "zoo_cells": str(len(fm.cells())),
        "zoo_n_eval": str(zoo.N_EVAL),
        "zoo_networks": str(len(fm.entries())),
        "zoo_animal_data": _DATA_NAMES.get(an.data, an.data),
        "zoo_animal_cells": str(len(an.cells())),
        "zoo_animal_seeds": str(len(an.seeds)),
        "zoo_animal_networks": str(len(an.entries())),
        "factorial_cells": str(len(fa.cells())),
        "factorial_networks": str(len(fa.entries())),
        "factorial_label_noise": _levels((0.0,) + tuple(fa.noise)),
        # the ImageNet-trained networks (lidutils.models.OFFLINE_IMAGENET)
        "n_imagenet": str(len(imagenet)),
        "n_imagenet_word": _word(len(imagenet)),
        "n_imagenet_classifiers_word": _word(len(clf)),
        "n_imagenet_trunks_word": _word(len(trunks)),
        "imagenet_classifiers": _and(f"`{m}`" for m in clf),
        "imagenet_trunks": _and(f"`{m}`" for m in trunks),
        "n_controls_word": _word(len(population.DEFAULT_CONTROLS)),
        "controls": _and(f"`{c}`" for c in population.DEFAULT_CONTROLS),
        "n_paper_models": str(len(models.PAPER_MODELS)),
        # parameter defaults (lidutils.book.claims.SHARED_DEFAULTS) and the paper's protocol
        "n_images": str(sd["n_images"]),
        "n_boot": _thousands(sd["n_boot"]),
        "n_perm": _thousands(sd["n_perm"]),
        "n_pcs": str(paper.PROTOCOL["n_pcs"]),
        "pca_train_percent": f"{paper.PROTOCOL['pca_train_fraction'] * 100:g}",
        "k_model": str(paper.PROTOCOL["k_model"]),
        "k_brain": str(paper.PROTOCOL["k_brain"]),
        "k_sweep": ", ".join(str(k) for k in claims.K_SWEEP),
        "min_n_verdict": str(stats.MIN_N_VERDICT),
    }
    f["factorial_new_networks"] = str(len(new))
    return f


#: (fact, regex): a regex finds the fact typed as a plain number in a page; its one group
#: is the number (digits or a word). ``{{ … }}`` substitutions never match (no digits).
GUARDS = [
    ("n_imagenet", r"\b(\w+) (?:pretrained |ImageNet-trained |offline )?(?:ImageNet(?:-trained)? )?"
                   r"(?:CNNs|networks|models) whose weights ship"),
    ("n_imagenet", r"\b(\w+) (?:pretrained )?ImageNet (?:CNNs|networks|models)\b"),
    ("n_images", r"`n_images`,? defaults? (?:to )?(\d+)"),
    ("n_images", r"\bn_images\s*=\s*(\d+)"),
    ("n_images", r"zoo evaluation\s+images, (\d+) ImageNet photos"),
    ("zoo_n_eval", r"N = (\d+) zoo evaluation"),
    ("zoo_embed_dim", r"\b(\d+)-(?:unit|wide|d) (?:embedding|common)"),
    ("zoo_embed_dim", r"embeddings are (\d+)-wide"),
    ("zoo_networks", r"\b(\d+) networks on Fashion-MNIST"),
    ("zoo_animal_networks", r"(?<![/\d])\b(\d+) (?:networks )?on Animal-MNIST"),
    ("zoo_seeds", r"\b(\w+) seeds per design cell"),
    ("zoo_capacity_levels", r"capacity varied inside the trunk \((\d+) levels"),
    ("zoo_n_families_word", r"crosses (\w+) architecture families"),
    ("n_paper_models", r"\b(\d+) (?:timm |`timm` )?(?:ConvNeXt|tags|paper models)"),
    ("min_n_verdict", r"MIN_N_VERDICT`? ?=? ?(\d+)"),
    ("n_perm", r"\bm\$? = \$?(\d[\d\s\\,]*\d)\$? permutations"),
    ("k_model", r"\((\d+) for alignment and generalization"),
    ("k_brain", r"for alignment and generalization, (\d+) for the brain"),
    ("pca_train_percent", r"fitted on an? (\d+) % split"),
]


def _as_number(text):
    t = re.sub(r"[\s\\,]|\{,\}", "", text.strip().lower())
    if t in _NUMBER:
        return _NUMBER[t]
    try:
        return float(t)
    except ValueError:
        return None


def stale(text, known=None, guards=GUARDS):
    """Numbers in ``text`` that state a fact of :func:`facts` differently: a list of
    ``(fact, stated, expected, excerpt)``. Empty when the page agrees with the code."""
    known = facts() if known is None else known
    out = []
    for name, pattern in guards:
        want = _as_number(known[name])
        for m in re.finditer(pattern, text):
            got = _as_number(m.group(1))
            if got is None:  # a word that is not a number ("the six ..." is caught by the next pattern)
                continue
            if got != want:
                a = max(0, m.start() - 40)
                out.append((name, m.group(1), known[name], " ".join(text[a:m.end() + 20].split())))
    return out


def _add_substitutions(app, config):
    subs = facts()
    subs.update(getattr(config, "myst_substitutions", None) or {})
    config.myst_substitutions = subs


def setup(app):
    app.connect("config-inited", _add_substitutions)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
