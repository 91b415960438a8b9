"""Offline data sets. Nothing is downloaded: files come from a package or a directory you name."""
from __future__ import annotations
import gzip, os, struct
from tinygrad.tensor import Tensor

FASHION_DIR = "/usr/share/datasets/fashion-mnist"

def _read_idx(path: str):
  import numpy as np
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "rb") as f: data = f.read()
  magic = struct.unpack(">I", data[:4])[0]
  ndim = magic & 0xFF
  shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
  return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)

def _find(folder: str, stem: str) -> str | None:
  for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
    if os.path.exists(p := os.path.join(folder, name)): return p
  return None

def mnist(device=None, fashion: bool = False) -> tuple[Tensor, Tensor, Tensor, Tensor]:
  """(X_train (60000,1,28,28) uint8, Y_train (60000,) uint8, X_test, Y_test) read from IDX files in $MNIST_DIR, or for
  fashion=True from the Debian package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist)."""
  folder = os.environ.get("MNIST_DIR") or (FASHION_DIR if fashion else None)
  if folder is None:
    raise FileNotFoundError("mnist: set MNIST_DIR to a folder with the MNIST IDX files (train-images-idx3-ubyte[.gz], ...), "
                            "or use mnist(fashion=True) with the Debian package dataset-fashion-mnist installed")
  stems = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
  paths = [_find(folder, s) for s in stems]
  if any(p is None for p in paths):
    hint = " (sudo apt-get install dataset-fashion-mnist)" if folder == FASHION_DIR else ""
    raise FileNotFoundError(f"mnist: IDX files not found in {folder}{hint}; missing: {[s for s, p in zip(stems, paths) if p is None]}")
  xtr, ytr, xte, yte = (_read_idx(p) for p in paths)
  return (Tensor(xtr.reshape(-1, 1, 28, 28), device=device), Tensor(ytr, device=device),
          Tensor(xte.reshape(-1, 1, 28, 28), device=device), Tensor(yte, device=device))
