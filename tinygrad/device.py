"""The device registry: `Device.DEFAULT`, `Device["CPU"]`, and Buffer (a typed allocation on a device).

Backends live in the `runtime` package and are imported only when first used, so a CUDA backend costs nothing until
a Tensor asks for it. Device names are upper-cased ("cuda:1" -> "CUDA:1"), except a DISK device's file path, which
keeps its case: "disk:/data/W.bin" -> "DISK:/data/W.bin" (runtime/disk.py: a file's bytes, memory-mapped).
"""
from __future__ import annotations
import os
from tinygrad.dtype import DType

BACKENDS = {"CPU": ("runtime.cpu", "CPUDevice"), "CUDA": ("runtime.cuda", "CUDADevice"), "DISK": ("runtime.disk", "DiskDevice")}

class _Device:
  def __init__(self): self._opened: dict[str, object] = {}
  @property
  def DEFAULT(self) -> str: return self.canonicalize(os.environ.get("DEV") or os.environ.get("DEVICE") or "CPU")
  @DEFAULT.setter
  def DEFAULT(self, d: str) -> None: os.environ["DEV"] = self.canonicalize(d)
  def canonicalize(self, device: str | None) -> str:
    if device is None: return self.DEFAULT
    if not isinstance(device, str): raise TypeError(f"device must be a string like 'CPU', got {device!r}")
    kind, _, path = device.partition(":")
    if kind.upper() == "DISK":
      if not path: raise ValueError(f"device {device!r}: a DISK device names a file, e.g. 'disk:/tmp/weights.bin'")
      return f"DISK:{path}"
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
  def ptr(self) -> int: return (self._mem if self._mem is not None else self.mem).ptr
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
  def view(self, byte_offset: int, size: int, dtype: DType) -> Buffer:
    """`size` elements of `dtype` starting `byte_offset` bytes into this buffer, sharing its memory (no copy). Only
    backends whose memory has views (DISK: a byte range of the file's mapping) support it."""
    nbytes = size * dtype.itemsize
    if byte_offset < 0 or size < 0 or byte_offset + nbytes > self.nbytes:
      raise ValueError(f"Buffer.view: bytes {byte_offset}..{byte_offset + nbytes} of a {self.device} buffer of {self.nbytes} bytes "
                       f"(valid: 0..{self.nbytes})")
    if not hasattr(self.mem, "view"): raise TypeError(f"Buffer.view: {self.device} buffers have no views (only DISK buffers do)")
    out = Buffer(self.device, size, dtype)
    out._mem = self.mem.view(byte_offset, nbytes)
    return out
  def __repr__(self): return f"<Buffer {self.device} {self.size} {self.dtype}>"
