"""Datasets: the registry (``registry``), their files (``idx``, ``cifar10``, ``local``), sources (``sources``,
``tfds``), the paper's splits (``splits``) and model inputs (``inputs``).

Every dataset is one :class:`DatasetInfo` entry: its shape and classes, its local files and their hashes, the
layout they are in (IDX or CIFAR-10's binary records), where its training split ends, and which download
sources have it. From that entry alone it can be read from local files (``data.source: local``), through
torchvision (``torchvision``: the same IDX files, downloaded), or through tensorflow-datasets (``tfds``:
advbench's own builder over the local files, or tfds's stock builder; see :mod:`advbench.data.tfds`); all
give the same arrays in the same order, so the same prepared file.

Integrity of IDX files is checked on the *decompressed* content (md5), since gzip headers differ between
mirrors; CIFAR-10's binary files are checked by sha256 (:mod:`advbench.data.cifar10`). Prepared data is a
``.npz``
of uint8 images and int64 labels: ``x_train``, ``x_val``, ``x_test`` (MNIST: the first 50k, 50k-60k, the 10k
test set, as the paper's pylearn2 setup splits them), plus any fitted preprocessing (``prep_*`` arrays, e.g.
CIFAR-10's GCN + ZCA). Models see flat float32 vectors (:func:`advbench.data.inputs.model_inputs`): pixels
in [0, 1], or the
preprocessed space.
"""
