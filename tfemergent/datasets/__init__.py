"""Image datasets: tensorflow-datasets online, local files offline, embedded digits.

- `load(name, split, data_dir=None, *, shuffle_files=False)`: a `tf.data.Dataset`
  of `(image uint8 (H, W, C), label int64)`, as tensorflow-datasets gives with
  `as_supervised=True`.
- `load_numpy(name, split, data_dir=None)`: the same as numpy arrays.
- `load_number_codes(split, data_dir=None)`: the Reset-networks number task.
- `double_task(mode, split, ...)`: the double classification tasks of the
  spatial-networks paper, in `DOUBLE_TASK_MODES`.
- `concentric_shells(dim, num_samples, ...)`: the synthetic concentric spherical
  shells of the URN paper (one class per shell), generated on the fly.
- `resolve_data_dir(data_dir=None)`: the local directory in use (argument, else
  `TFEMERGENT_DATA_DIR`, else `None` for tensorflow-datasets).

Names: `"mnist"`, `"fashion_mnist"`, `"cifar10"`, `"number_topography"`,
`"digits"` (scikit-learn's 8x8 digits, always embedded) and `"digits_transposed"` (the
same images transposed: the embedded second task of the double-task experiments).
"""

from tfemergent.datasets.corrupt_dataset_error import CorruptDatasetError
from tfemergent.datasets.dataset_not_found_error import DatasetNotFoundError
from tfemergent.datasets.directories import DATA_DIR_ENV_VAR, resolve_data_dir
from tfemergent.datasets.double_tasks import DOUBLE_TASK_MODES, double_task, double_task_dataset
from tfemergent.datasets.loaders import DATASET_NAMES, load, load_number_codes, load_numpy
from tfemergent.datasets.synthetic import concentric_shells

__all__ = [
    "CorruptDatasetError",
    "DATASET_NAMES",
    "DATA_DIR_ENV_VAR",
    "DOUBLE_TASK_MODES",
    "DatasetNotFoundError",
    "concentric_shells",
    "double_task",
    "double_task_dataset",
    "load",
    "load_number_codes",
    "load_numpy",
    "resolve_data_dir",
]
