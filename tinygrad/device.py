"""The device registry: `Device.DEFAULT`, `Device["CPU"]`, and Buffer (a typed allocation on a device).

Backends live in the `runtime` package and are imported only when first used, so a CUDA backend costs nothing until
a Tensor asks for it.
"""
from __future__ import annotations
import os
from tinygrad.dtype import DType

BACKENDS = {"CPU": ("runtime.cpu", "CPUDevice"), "CUDA": ("runtime.cuda", "CUDADevice")}

class _Device:
  def __init__(self): self._opened: dict[str, object] = {}
  @property
  def DEFAULT(self) -> str: return self.canonicalize(os.environ.get("DEV") or os.environ.get("DEVICE") or "CPU")
  @DEFAULT.setter
  def DEFAULT(self, d: str) -> None: os.environ["DEV"] = self.canonicalize(d)
  def canonicalize(self, device: str | None) -> str:
    if device is None: return self.DEFAULT
    if not isinstance(device, str): raise TypeError(f"device must be a string like 'CPU', got {device!r}")
    d = device.upper()
    kind, _, num = d.partition(":")
    if kind not in BACKENDS: raise ValueError(f"unknown device {device!r} (known: {', '.join(BACKENDS)})")
    return kind if num in ("", "0") else f"{kind}:{num}"
  def __getitem__(self, device: str):
    if (dev := self._opened.get(device)) is not None: return dev
    d = self.canonicalize(device)
    if d not in self._opened:
      import importlib
      mod, cls = BACKENDS[d.partition(":")[0]]
      self._opened[d] = getattr(importlib.import_module(mod), cls)(d)
    return self._opened[d]

Device = _Device()

class Buffer:
  """`size` elements of `dtype` on `device`; the memory is allocated on first use and freed with the last reference."""
  __slots__ = ("device", "size", "dtype", "_mem", "__weakref__")
  def __init__(self, device: str, size: int, dtype: DType):
    self.device, self.size, self.dtype, self._mem = device, size, dtype, None
  @property
  def nbytes(self) -> int: return self.size * self.dtype.itemsize
  @property
  def mem(self):
    if self._mem is None: self._mem = Device[self.device].alloc(self.nbytes)
    return self._mem
  @property
  def ptr(self) -> int: return self.mem.ptr
  def copyin(self, arr) -> Buffer:
    """Copy a C-contiguous numpy array (same byte size) into the buffer."""
    assert arr.nbytes == self.nbytes, f"copyin: {arr.nbytes} bytes into a buffer of {self.nbytes}"
    if self.nbytes: self.mem.copyin(arr.ctypes.data, self.nbytes)
    return self
  def numpy(self):
    import numpy as np
    from tinygrad.dtype import to_np_dtype
    out = np.empty(self.size, dtype=to_np_dtype(self.dtype))
    if self.nbytes: self.mem.copyout(out.ctypes.data, self.nbytes)
    return out
  def __repr__(self): return f"<Buffer {self.device} {self.size} {self.dtype}>"
