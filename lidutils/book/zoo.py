"""A model zoo trained from scratch: a real population whose generalization is measured.

The paper correlates local intrinsic dimension with generalization and alignment
across a *population* of models that differ in capacity and training data. Offline
only four pretrained ImageNet CNNs are available, too few for a correlation, so
this module trains a population here: small image classifiers
(:mod:`lidutils.archs`: MLP, CNN, all-convolutional ConvNet, ResNet, MLP-Mixer)
swept over

- architecture family and capacity (``width``, ``depth``),
- data scale (``n_train`` images, or ``data_fraction`` of the training split;
  stratified and nested: for one seed a smaller subset is part of a larger one),
- label noise (``label_noise``: that fraction of the training labels replaced by
  a different class; the realised fraction is stored as ``label_noise_actual``),
- training duration (a checkpoint, its metrics and embeddings at each epoch in
  ``epochs``: under-trained and converged regimes are both population members),
- seeds (weight init, data order, augmentation, subset and noise draw).

Every ``(model, epoch)`` checkpoint is one row of the zoo table, with its held-out
test accuracy (the generalization score), train accuracy and loss, parameter
count, training examples seen, fraction of dead embedding units, the convergence
check (:func:`convergence`) and paths to its state_dict and to its embeddings of a
fixed held-out evaluation set (``which="eval"``) and of a probe image set
(``which="probe"``, by default the 92 Algonauts images, converted to the training
format). The per-epoch training curve of every network is stored
(:func:`load_learning_curve`).

Controlled design
-----------------
The book's population is a factorial design (:class:`Design`, :func:`design_table`):
``"controlled"`` on Fashion-MNIST (:data:`CONTROLLED`) and its replication
``"controlled-animal"`` on Animal-MNIST (:data:`CONTROLLED_ANIMAL`). Every network
of every family ends its trunk in the same ``EMBED_DIM``-wide embedding layer
(capacity varies only inside the trunk), is trained with AdamW, a cosine schedule
with linear warm-up, weight decay and random shifts, and carries its design cell
(``design``, shared by its seed replicates), ``capacity_level``, ``data_level``
and its series memberships ``in_capacity`` / ``in_data`` / ``in_noise``: three
one-factor series around one reference cell per family. The legacy grids
``"smoke"`` and ``"default"`` (constant-rate Adam, penultimate width growing with
``width``) stay available for comparison.

Data
----
Named training sets (:mod:`lidutils.loaders`): ``"fashion-mnist"`` (70 000 images,
its standard 60 000 / 10 000 split, verified on the SHA-256 of the decompressed
files) and ``"animal-mnist"`` (PyPI ``animal-mnist`` 0.4, MIT; 10 000 28x28
white-on-black silhouettes, 284 exact duplicates removed before a stratified
80/20 split, so 9 716 remain and no test image has a copy in the training set).
Any ``(images, labels)`` arrays work as well, e.g. CIFAR-10 on a machine with
internet access::

    import numpy as np, torchvision
    tr = torchvision.datasets.CIFAR10("data", train=True, download=True)
    te = torchvision.datasets.CIFAR10("data", train=False, download=True)
    images = np.concatenate([tr.data, te.data])            # uint8 (60000, 32, 32, 3)
    labels = np.concatenate([tr.targets, te.targets])
    table = train_zoo("default", images=images, labels=labels, cache_dir="zoo-cifar")

(the zoo makes its own stratified split of the pooled arrays; on CPU, CIFAR-10 is
far slower than the 28x28 sets).

Cache
-----
``cache_dir/data-<fingerprint>/<entry key>/``: ``entry.json`` (written last: an
entry is complete iff it exists), ``e<epoch>.pt`` (state_dict),
``e<epoch>_eval.npz`` (``emb``, ``labels``, ``pred``) and
``e<epoch>_probe-<probe hash>.npz`` (``emb``). All files are written atomically.
An entry's key hashes its fields (and ``ZOO_VERSION``), the data fingerprint
hashes the images, labels and split, so a rerun trains nothing that is already
there, an interrupted run resumes at the first unfinished entry, and a changed
entry retrains only itself. Probe embeddings of a new probe set are computed from
the stored checkpoints without retraining.

Determinism
-----------
On CPU, training runs single-threaded by default (``num_threads=1``) with
``torch.use_deterministic_algorithms(True)``: the same entry gives bit-identical
accuracies and embeddings on every run, also with ``num_workers=2`` training
processes (each trains whole networks; spawned, so a script that calls
:func:`train_zoo` with workers needs the usual ``if __name__ == "__main__":``
guard). (Measured on the shared 2-core machine: with two threads and other jobs
running, a training epoch was about 10x *slower* than with one thread, from
thread oversubscription.)

Modules
-------
Only imports and organisation here: :mod:`~lidutils.book.zoo_design` (entries, grids,
designs), :mod:`~lidutils.book.zoo_data` (training sets, probe images),
:mod:`~lidutils.book.zoo_training` (the engine and the readers of its cache).
"""
from lidutils.book.zoo_design import (  # noqa: F401
    ZOO_VERSION, EMBED_DIM, DATASETS, TEST_SIZE, SPLIT_SEED, N_EVAL, SCHEDULES, WARMUP, ZooEntry,
    Design, CONTROLLED, CONTROLLED_ANIMAL, CONTROLLED_SMOKE, FactorialDesign, FACTORIAL,
    FACTORIAL_SMOKE, DESIGNS, GRIDS, GRID_DATA, resolve_grid, CELL_COLUMNS, design_table, cell_of,
)
from lidutils.book.zoo_data import (  # noqa: F401
    prepare_probe, default_probe, ZooData,
)
from lidutils.book.zoo_training import (  # noqa: F401
    CONVERGENCE_WINDOW, CONVERGENCE_MARGIN, convergence, train_zoo, zoo_summary, load_embeddings,
    load_learning_curve, load_eval_labels, load_zoo_model,
)
from lidutils.loaders import (  # noqa: F401  (old names: lidutils.book.zoo.load_fashion_mnist, ...)
    CLASS_NAMES, FASHION_CLASSES, deduplicate, load_animal_mnist, load_fashion_mnist,
)
