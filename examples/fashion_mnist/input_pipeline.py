"""Fashion-MNIST for the example: loading, batches, their order, device placement.

`load` returns the two splits as in-memory uint8 arrays. The first call builds
tfds' ``fashion_mnist`` dataset in the data directory and caches its splits as
``fashion_mnist.npz`` there (`write_cache`); every later call reads that file
and never imports TensorFlow. Processes that start together on one host
prepare it once (a lock file in the data directory). A cache written by `write_cache` with fewer
images (a generated stand-in, as the tests use) loads the same way.

Where tfds gets the four ``.gz`` files from:

* the Debian package ``dataset-fashion-mnist`` (``/usr/share/datasets/
  fashion-mnist``), when installed. Debian recompressed nothing but dropped the
  file name from the gzip header and changed its time stamp, so tfds would
  reject the files by checksum. We put the header back (the deflate stream and
  trailer are untouched), check that the result has exactly the sha256 that
  tfds registers for the upstream file, and give tfds the directory of restored
  files as its manual directory;
* otherwise the internet, as tfds always does.

`batch_indices` gives the rows of full-size batches in an order that
`epoch_order` draws from ``(seed, epoch)`` alone (so a resumed run sees the
same batches), for an epoch that gathers its batches on the devices;
`to_device` puts arrays there, sharded on their first axis.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pathlib
import shutil
import socket
import struct
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
TRAIN_SIZE, TEST_SIZE = 60_000, 10_000
_SIZES = {"train": TRAIN_SIZE, "test": TEST_SIZE}


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
    debian_dir: where the Debian package keeps the four ``.gz`` files
      (default: `DEBIAN_DIR`).

  Returns:
    ``train_images`` (60000, 28, 28) and ``test_images`` (10000, 28, 28) as
    uint8 in [0, 255], ``train_labels`` and ``test_labels`` as int32 in [0, 9]
    (fewer images from a cache that `write_cache` wrote with fewer).

  Raises:
    DataError: if the data is not cached, the Debian files are absent or do not
      restore to the upstream bytes, and tfds cannot download it.
  """
  data_dir = pathlib.Path(data_dir).expanduser() if data_dir else default_data_dir()
  cache = data_dir / CACHE_NAME
  if not cache.exists():
    # Several processes on one host (two-process runs, `--distributed` with
    # a shared data directory) start together: one prepares, the others wait
    # for its cache instead of building tfds' dataset into the same folder.
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / ".prepare.lock", "w") as lock:
      fcntl.flock(lock, fcntl.LOCK_EX)
      if not cache.exists():
        _prepare(data_dir, pathlib.Path(debian_dir or DEBIAN_DIR), cache)
  with np.load(cache) as f:
    out = {k: f[k] for k in f.files}
  for split in _SIZES:
    images, labels = out.get(f"{split}_images"), out.get(f"{split}_labels")
    if (images is None or labels is None or images.ndim != 3 or images.shape[1:] != (28, 28)
        or images.dtype != np.uint8 or labels.shape != images.shape[:1] or not len(labels)):
      raise DataError(f"{cache} is not a Fashion-MNIST cache; delete it to prepare it again")
    out[f"{split}_labels"] = labels.astype(np.int32)
  return out


def write_cache(data_dir: str | os.PathLike, arrays: dict[str, np.ndarray]) -> pathlib.Path:
  """Writes the splits as `load` reads them: ``data_dir/fashion_mnist.npz``.

  Args:
    data_dir: the cache directory (created if missing).
    arrays: ``train_images`` and ``test_images`` (N, 28, 28) uint8,
      ``train_labels`` and ``test_labels`` (N,) integers in [0, 9].

  Returns:
    The cache file's path. The file is replaced atomically: a half-written
    cache is never read.
  """
  data_dir = pathlib.Path(data_dir)
  data_dir.mkdir(parents=True, exist_ok=True)
  cache = data_dir / CACHE_NAME
  tmp = cache.with_suffix(".tmp.npz")
  np.savez(tmp, **{k: np.asarray(v, np.uint8) for k, v in arrays.items()})
  tmp.replace(cache)
  return cache


def restore_gzip_header(debian: bytes, name: str, mtime: int) -> bytes:
  """Rebuilds the upstream gzip file from Debian's copy of it.

  Debian's files have a bare 10-byte header (no FNAME flag, a new MTIME); the
  upstream header also carries the original file name. Everything after the
  header (deflate stream, CRC-32, size) is the same in both.

  Args:
    debian: the bytes of Debian's ``.gz`` file.
    name: the original file name stored in the header, e.g.
      ``"train-images-idx3-ubyte"`` (without ``.gz``).
    mtime: the upstream modification time.

  Returns:
    The upstream file's bytes.

  Raises:
    DataError: if `debian` is not a gzip file with a bare header.
  """
  if len(debian) < 18 or debian[:3] != b"\x1f\x8b\x08" or debian[3] != 0:
    raise DataError(f"{name}.gz is not a gzip file with a bare header (FLG=0)")
  header = b"\x1f\x8b\x08\x08" + struct.pack("<I", mtime) + debian[8:10]  # then XFL, OS
  return header + name.encode("ascii") + b"\x00" + debian[10:]


def _restore_debian_files(debian_dir: pathlib.Path, out_dir: pathlib.Path) -> None:
  """Writes the four upstream files, checked against tfds' checksums, to `out_dir`."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

  expected = {info.filename: info.checksum
              for info in tfds.builder_cls("fashion_mnist").url_infos.values()}
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

  manual_dir = None
  have_debian = all((debian_dir / f).exists() for f in FILES)
  if have_debian:
    manual_dir = data_dir / "manual"
    _restore_debian_files(debian_dir, manual_dir)
  builder = tfds.builder("fashion_mnist", data_dir=str(data_dir / "tfds"))
  if manual_dir is None and not _reachable(next(iter(builder.url_infos))):
    raise DataError(_missing_message(data_dir, debian_dir, "no network"))
  config = tfds.download.DownloadConfig(manual_dir=str(manual_dir) if manual_dir else None)
  try:
    builder.download_and_prepare(download_dir=str(data_dir / "downloads"), download_config=config)
  except Exception as e:  # pylint: disable=broad-except
    if have_debian:
      raise
    reason = (str(e).strip().splitlines() or [""])[0][:120]
    why = f"{type(e).__name__}: {reason}"
    raise DataError(_missing_message(data_dir, debian_dir, why)) from None

  arrays = {}
  for split in _SIZES:
    ds = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1, shuffle_files=False))
    arrays[f"{split}_images"] = np.asarray(ds["image"], np.uint8).reshape(-1, 28, 28)
    arrays[f"{split}_labels"] = np.asarray(ds["label"], np.uint8)
  write_cache(cache.parent, arrays)
  for scratch in ("manual", "downloads"):  # tfds' own copy stays in tfds/
    shutil.rmtree(data_dir / scratch, ignore_errors=True)


def _reachable(url: str, timeout: float = 10.0) -> bool:
  """Whether `url`'s host answers; assumed so behind a proxy.

  tfds retries an unreachable host for minutes before it gives up; this check
  fails in seconds instead.
  """
  if any(os.environ.get(k) for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")):
    return True
  parts = urllib.parse.urlsplit(url)
  port = parts.port or (443 if parts.scheme == "https" else 80)
  try:
    socket.create_connection((parts.hostname, port), timeout=timeout).close()
  except OSError:
    return False
  return True


def _missing_message(data_dir: pathlib.Path, debian_dir: pathlib.Path, why: str) -> str:
  return (f"Fashion-MNIST is not prepared in {data_dir}, {debian_dir} does not hold "
          f"Debian's copy, and tfds cannot download it ({why}). Get it with "
          "`apt-get install dataset-fashion-mnist`, or run once with internet "
          "access, or point --data-dir (or $LRJAX_DATA_DIR) at a directory holding "
          f"{CACHE_NAME}.")


# --- batches, their order, devices -------------------------------------------


def batch_indices(order: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
  """The rows and weights of an epoch's batches, as ``(steps, batch_size)`` arrays.

  Full-size batches in `order`, the last padded with weight-0 examples (the
  first of `order` again): every example is used once, every batch has the
  same shape (one compile), and padded examples count in neither the loss,
  its gradient nor the metrics. Row ``i`` of the first array indexes the
  images of batch ``i`` (int32), row ``i`` of the second holds their weights.
  """
  n = len(order)
  steps = -(-n // batch_size)
  pad = steps * batch_size - n
  idx = np.concatenate([order, order[:pad]]) if pad <= n else np.resize(order, n + pad)
  weight = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
  return (idx.astype(np.int32).reshape(steps, batch_size),
          weight.reshape(steps, batch_size))


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
  """The data order of an epoch: a function of (seed, epoch) only, so resumable."""
  return np.random.default_rng([seed, epoch]).permutation(n)


def to_device(batch: dict[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
  """A global batch, sharded on its first axis.

  Every process holds the whole batch (same seed, same order) and hands over
  the rows its own devices hold, wherever the mesh put them.
  """

  def put(x):
    rows = [idx[0] for idx in sharding.addressable_devices_indices_map(x.shape).values()]
    lo = min(r.start or 0 for r in rows)
    hi = max(len(x) if r.stop is None else r.stop for r in rows)
    return jax.make_array_from_process_local_data(sharding, x[lo:hi], x.shape)

  return {key: put(x) for key, x in batch.items()}


def make_mesh() -> tuple[jax.sharding.Mesh, NamedSharding, NamedSharding]:
  """A 1-D mesh of all devices, the batch sharding over it and the replicated one."""
  mesh = jax.make_mesh((jax.device_count(),), ("batch",), axis_types=(jax.sharding.AxisType.Auto,))
  return mesh, NamedSharding(mesh, P("batch")), NamedSharding(mesh, P())


def host(tree):
  """A replicated device pytree as NumPy (also when other hosts hold copies)."""
  return jax.tree.map(lambda a: np.asarray(a.addressable_data(0)), tree)
