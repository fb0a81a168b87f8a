"""Fashion-MNIST for the example: loading, batches, their order, device placement.

`load` prepares the dataset once with tfds (from the Debian package
``dataset-fashion-mnist`` when installed, else downloaded) and caches its
splits as NumPy; later calls read only the cache.
"""

import fcntl
import hashlib
import os
import pathlib
import shutil
import socket
import urllib.parse

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
CACHE_NAME = "fashion_mnist.npz"
FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
# Modification times in the upstream gzip headers (from the files tfds checks).
_UPSTREAM_MTIME = {"train": 0x59A7E9DE, "t10k": 0x59A7E9F3}
TRAIN_SIZE = 60_000


class DataError(RuntimeError):
  """Fashion-MNIST is neither cached nor obtainable; the message says how to get it."""


def default_data_dir() -> pathlib.Path:
  """``$LRJAX_DATA_DIR``, else ``~/.cache/lrjax/fashion_mnist``."""
  return pathlib.Path(os.environ.get("LRJAX_DATA_DIR")
                      or "~/.cache/lrjax/fashion_mnist").expanduser()


def load(data_dir: str | os.PathLike | None = None, *,
         debian_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
  """Returns Fashion-MNIST, preparing and caching it in `data_dir` the first time.

  Args:
    data_dir: the cache directory (default: `default_data_dir()`).
    debian_dir: the Debian package's four ``.gz`` files (default: `DEBIAN_DIR`).

  Returns:
    ``train_images`` and ``test_images`` (N, 28, 28) uint8, ``train_labels``
    and ``test_labels`` (N,) int32.

  Raises:
    DataError: if the data is neither cached nor obtainable.
  """
  data_dir = pathlib.Path(data_dir).expanduser() if data_dir else default_data_dir()
  cache = data_dir / CACHE_NAME
  if not cache.exists():
    # Processes that start together on one host prepare the data once.
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / ".prepare.lock", "w") as lock:
      fcntl.flock(lock, fcntl.LOCK_EX)
      if not cache.exists():
        _prepare(data_dir, pathlib.Path(debian_dir or DEBIAN_DIR), cache)
  with np.load(cache) as f:
    out = {k: f[k] for k in f.files}
  for split in ("train", "test"):
    images, labels = out.get(f"{split}_images"), out.get(f"{split}_labels")
    if (images is None or labels is None or images.shape[1:] != (28, 28)
        or images.dtype != np.uint8 or labels.shape != images.shape[:1] or not len(labels)):
      raise DataError(f"{cache} is not a Fashion-MNIST cache; delete it to prepare it again")
    out[f"{split}_labels"] = labels.astype(np.int32)
  return out


def write_cache(data_dir: str | os.PathLike, arrays: dict[str, np.ndarray]) -> pathlib.Path:
  """Writes `arrays` (the four arrays `load` returns) as uint8 where `load` reads them.

  The file is replaced atomically: a half-written cache is never read.
  """
  cache = pathlib.Path(data_dir) / CACHE_NAME
  cache.parent.mkdir(parents=True, exist_ok=True)
  tmp = cache.with_suffix(".tmp.npz")
  np.savez(tmp, **{k: np.asarray(v, np.uint8) for k, v in arrays.items()})
  tmp.replace(cache)
  return cache


def restore_gzip_header(debian: bytes, name: str, mtime: int) -> bytes:
  """Rebuilds an upstream gzip file from Debian's copy of it.

  Debian dropped the file name from the header and changed its time stamp, so
  tfds would reject the file by checksum; the rest is the upstream bytes.

  Args:
    debian: the bytes of Debian's ``.gz`` file.
    name: the file name to store, e.g. ``"train-images-idx3-ubyte"``.
    mtime: the upstream modification time.
  """
  if len(debian) < 18 or debian[:3] != b"\x1f\x8b\x08" or debian[3] != 0:
    raise DataError(f"{name}.gz is not a gzip file with a bare header (FLG=0)")
  header = b"\x1f\x8b\x08\x08" + mtime.to_bytes(4, "little") + debian[8:10]  # then XFL, OS
  return header + name.encode("ascii") + b"\x00" + debian[10:]


def _restore_debian_files(debian_dir: pathlib.Path, out_dir: pathlib.Path, url_infos: dict) -> None:
  """Writes the four upstream files to `out_dir`, checked against tfds' `url_infos`."""
  expected = {info.filename: info.checksum for info in url_infos.values()}
  out_dir.mkdir(parents=True, exist_ok=True)
  for fname in FILES:
    restored = restore_gzip_header((debian_dir / fname).read_bytes(), fname.removesuffix(".gz"),
                                   _UPSTREAM_MTIME[fname.split("-")[0]])
    digest = hashlib.sha256(restored).hexdigest()
    if digest != expected[fname]:
      raise DataError(f"{debian_dir / fname} does not restore to the upstream file (sha256 "
                      f"{digest}, tfds expects {expected[fname]}); reinstall "
                      "dataset-fashion-mnist or let tfds download the data")
    (out_dir / fname).write_bytes(restored)


def _prepare(data_dir: pathlib.Path, debian_dir: pathlib.Path, cache: pathlib.Path) -> None:
  """Builds the dataset with tfds (from Debian's files if present) and caches it."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  try:
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise DataError(f"Fashion-MNIST is not cached in {data_dir} and preparing it needs "
                    f"tensorflow-datasets and tensorflow-cpu ({e}); pip install "
                    "'lrjax[examples]'") from None

  builder = tfds.builder("fashion_mnist", data_dir=str(data_dir / "tfds"))
  downloads = data_dir / "downloads"
  have_debian = all((debian_dir / f).exists() for f in FILES)
  if have_debian:  # tfds takes a file from downloads/manual/ instead of downloading it
    _restore_debian_files(debian_dir, downloads / "manual", builder.url_infos)
  elif not _reachable(next(iter(builder.url_infos))):
    raise DataError(_missing_message(data_dir, debian_dir, "no network"))
  try:
    builder.download_and_prepare(download_dir=str(downloads))
  except Exception as e:  # pylint: disable=broad-except
    if have_debian:
      raise
    reason = (str(e).strip().splitlines() or [""])[0][:120]
    why = f"{type(e).__name__}: {reason}"
    raise DataError(_missing_message(data_dir, debian_dir, why)) from None

  arrays = {}
  for split in ("train", "test"):
    ds = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1, shuffle_files=False))
    arrays[f"{split}_images"] = ds["image"].reshape(-1, 28, 28)
    arrays[f"{split}_labels"] = ds["label"]
  write_cache(cache.parent, arrays)
  shutil.rmtree(downloads, ignore_errors=True)  # tfds' own copy stays in tfds/


def _reachable(url: str) -> bool:
  """Whether `url`'s host answers in 10 s (tfds retries for minutes); True behind a proxy."""
  if any(os.environ.get(k) for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")):
    return True
  parts = urllib.parse.urlsplit(url)
  port = parts.port or (443 if parts.scheme == "https" else 80)
  try:
    socket.create_connection((parts.hostname, port), timeout=10).close()
  except OSError:
    return False
  return True


def _missing_message(data_dir: pathlib.Path, debian_dir: pathlib.Path, why: str) -> str:
  return (f"Fashion-MNIST is not prepared in {data_dir}, {debian_dir} does not hold "
          f"Debian's copy, and tfds cannot download it ({why}). Get it with "
          "`apt-get install dataset-fashion-mnist`, or run once with internet "
          "access, or point --data-dir (or $LRJAX_DATA_DIR) at a directory holding "
          f"{CACHE_NAME}.")


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
  """The data order of an epoch: a function of (seed, epoch) only, so resumable."""
  return np.random.default_rng([seed, epoch]).permutation(n)


def batch_indices(order: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
  """The rows (int32) and weights of an epoch's batches, as ``(steps, batch_size)`` arrays.

  The last batch is padded with weight-0 rows (`order` again from its start),
  so that every batch has the same shape (one compile).
  """
  n = len(order)
  steps = -(-n // batch_size)
  idx = np.resize(order, steps * batch_size).astype(np.int32)
  weight = (np.arange(steps * batch_size) < n).astype(np.float32)
  return idx.reshape(steps, batch_size), weight.reshape(steps, batch_size)


def to_device(batch: dict[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
  """A global batch on the devices of `sharding`.

  Every process holds the whole batch (same seed, same order); each device
  takes the rows the sharding gives it.
  """
  return {k: jax.make_array_from_process_local_data(sharding, x, x.shape) for k, x in batch.items()}


def make_mesh() -> tuple[jax.sharding.Mesh, NamedSharding, NamedSharding]:
  """A 1-D mesh of all devices, the batch sharding over it and the replicated one."""
  mesh = jax.make_mesh((jax.device_count(),), ("batch",), axis_types=(jax.sharding.AxisType.Auto,))
  return mesh, NamedSharding(mesh, P("batch")), NamedSharding(mesh, P())


def host(tree):
  """A replicated device pytree as NumPy (also when other hosts hold copies)."""
  return jax.tree.map(lambda a: np.asarray(a.addressable_data(0)), tree)
