"""The DISK device: a file's bytes, memory-mapped. `Tensor(pathlib.Path(p))` and `Tensor.empty(n, device="disk:p")`
are tensors backed by the file p; nothing is read until a view of them is copied out.

Memory (DiskDevice, DiskBuffer): a buffer is a byte range of one shared mmap of the file (MAP_SHARED, writable when
the file is). copyout/copyin are one memmove of exactly that range, so reading the last 16 bytes of a 64 MB file
touches one page. DISK runs no kernels: `compiler`, `load` and `run` raise an error that says to copy the tensor to a
compute device first.

Views (the functions after the device, called from tinygrad/tensor.py's disk branches): a `shrink` (slice) of a disk
tensor that is one byte range of it, a `reshape` and a `bitcast` (itemsizes may differ when the last dimension's bytes
divide) are new DISK buffers over the same mapping, not graph nodes. So `.numpy()`, `.to("CPU")` and `.realize()` of
such a view copy exactly its bytes: `.to` is the ordinary COPY (a host transfer, engine/realize.py BufferCopy) of that
buffer. Any other movement op (permute, flip, pad, a strided slice) stays a lazy graph over the covering byte range;
`.to(device)` of it copies that range and runs the rest on `device`. Compute (`t + 1`) on a disk tensor is refused
when it is realized: move it first with `.to("CPU")`.

Writing: `disk_tensor.assign(x)` writes x's bytes (cast to the disk tensor's dtype, broadcast to its shape, computed on
its own device) into the file at once, with one memmove; `x.to("disk:p")` writes x to the start of p (created or
extended as needed) when realized. Views alias the file: a view, or a copy of one not yet realized, sees later writes.

A mapping is bound to the file (inode) it opened: a file replaced by rename (safe_save) keeps serving the old bytes to
the tensors mapped before, and the next `Tensor(pathlib.Path(p))` maps the new file. A file truncated under a mapping
gives an error naming it instead of a SIGBUS.
"""
from __future__ import annotations
import ctypes, mmap, os, stat, weakref
from typing import TYPE_CHECKING, Any
from tinygrad.dtype import DType, dtypes
from tinygrad.device import Device
from tinygrad.helpers import prod
if TYPE_CHECKING:
  from tinygrad.tensor import Tensor
  from tinygrad.uop import UOp

class _Mapping:
  """One mmap of a file, shared by every buffer of it; unmapped when the last buffer goes."""
  def __init__(self, device: str, path: str, nbytes: int):
    self.device, self.path = device, path
    try:
      try: fd, self.writable = os.open(path, os.O_RDWR | os.O_CREAT, 0o644), True
      except PermissionError: fd, self.writable = os.open(path, os.O_RDONLY), False
    except IsADirectoryError: raise IsADirectoryError(f"{device}: {path} is a directory, not a file") from None
    except OSError as e: raise type(e)(e.errno, f"{device}: cannot open the file: {e.strerror}", path) from None
    try:
      st = os.fstat(fd)
      if not stat.S_ISREG(st.st_mode): raise ValueError(f"{device}: {path} is not a regular file")
      self.ident = (st.st_dev, st.st_ino)
      if st.st_size < nbytes:
        if not self.writable: raise PermissionError(f"{device}: {path} has {st.st_size} bytes, {nbytes} are wanted, and it is read-only")
        os.ftruncate(fd, nbytes)  # a new (or shorter) file grows to the buffer's size; the new bytes read as zeros
      self.length = max(st.st_size, nbytes)
      self.mm: mmap.mmap | None = None
      self.ptr = 0
      if self.length:
        import numpy as np
        self.mm = mmap.mmap(fd, self.length, access=mmap.ACCESS_WRITE if self.writable else mmap.ACCESS_READ)
        self._arr = np.frombuffer(self.mm, dtype=np.uint8)  # only for the address; keeps the mapping exported
        self.ptr = self._arr.ctypes.data
    finally: os.close(fd)  # the mmap holds its own descriptor
  def serves(self, nbytes: int) -> bool:
    """Whether this mapping covers nbytes of the file now at its path."""
    try: st = os.stat(self.path)
    except OSError: return False
    return self.length >= nbytes and (st.st_dev, st.st_ino) == self.ident
  def check(self, offset: int, nbytes: int, what: str) -> None:
    if what == "write" and not self.writable: raise PermissionError(f"{self.device}: cannot write: {self.path} is read-only")
    if self.mm is not None and (size := self.mm.size()) < offset + nbytes:  # touching pages past the end would SIGBUS
      raise OSError(f"{self.device}: cannot {what} bytes {offset}..{offset + nbytes}: {self.path} was truncated to {size} bytes "
                    "after it was mapped")

class DiskBuffer:
  """`nbytes` of a file's mapping starting at byte `offset`."""
  __slots__ = ("dev", "mapping", "offset", "nbytes", "ptr", "__weakref__")
  def __init__(self, dev: DiskDevice, mapping: _Mapping, offset: int, nbytes: int):
    self.dev, self.mapping, self.offset, self.nbytes = dev, mapping, offset, nbytes
    self.ptr: int = mapping.ptr + offset if mapping.ptr else 0
  def view(self, offset: int, nbytes: int) -> DiskBuffer:
    assert 0 <= offset and offset + nbytes <= self.nbytes, f"DiskBuffer.view: bytes {offset}..{offset + nbytes} of {self.nbytes}"
    return DiskBuffer(self.dev, self.mapping, self.offset + offset, nbytes)
  def copyout(self, dst_ptr: int, nbytes: int) -> None:
    self.mapping.check(self.offset, nbytes, "read")
    ctypes.memmove(dst_ptr, self.ptr, nbytes)
    self.dev.bytes_read += nbytes
  def copyin(self, src_ptr: int, nbytes: int) -> None:
    self.mapping.check(self.offset, nbytes, "write")
    ctypes.memmove(self.ptr, src_ptr, nbytes)
    self.dev.bytes_written += nbytes

class DiskDevice:
  """The file `device` names ("DISK:<path>"). Counts the bytes copied out and in (`bytes_read`, `bytes_written`)."""
  def __init__(self, device: str):
    self.device, self.path = device, device.partition(":")[2]
    self._mapping: weakref.ref[_Mapping] | None = None
    self.bytes_read = self.bytes_written = 0
  def alloc(self, nbytes: int) -> DiskBuffer:
    """The file's first nbytes (creating the file, or growing it with zeros, when it is shorter and writable)."""
    m = self._mapping() if self._mapping is not None else None
    if m is None or not m.serves(nbytes):
      m = _Mapping(self.device, self.path, nbytes)
      self._mapping = weakref.ref(m)
    return DiskBuffer(self, m, 0, nbytes)
  def _no_kernels(self, *_: Any) -> Any:
    raise RuntimeError(f"{self.device}: a disk tensor holds a file's bytes and cannot be computed on (DISK runs no kernels); copy it "
                       "to a compute device first, e.g. t.to('CPU'). Slices that are one byte range, reshape, bitcast, .numpy() and "
                       ".to() work on it directly")
  compiler = property(_no_kernels)
  load = run = _no_kernels
  def synchronize(self) -> None: pass

# ---------------------------------------------------------------- views (tinygrad/tensor.py's disk branches call these)

def is_disk(device: str) -> bool: return device.startswith("DISK")

def file_tensor(path: Any, device: str | None = None, dtype: Any = None) -> Tensor:
  """Tensor(pathlib.Path): the bytes of the file as a uint8 tensor on DISK:<absolute path>, mapped now (so it is this
  file, even if the path is later replaced), read when copied out; with a device other than DISK, a lazy copy there."""
  import pathlib
  from tinygrad.tensor import Tensor
  from tinygrad.dtype import to_dtype
  if dtype is not None and to_dtype(dtype) != dtypes.uint8:
    raise TypeError(f"Tensor: a pathlib.Path gives the file's bytes as uint8, not {to_dtype(dtype)}; read them as another dtype with "
                    ".bitcast(dtype)")
  p = pathlib.Path(path)
  try: st = p.stat()
  except FileNotFoundError: raise FileNotFoundError(f"Tensor: {p}: no such file (a pathlib.Path is the file's bytes as a disk tensor)") from None
  if not stat.S_ISREG(st.st_mode): raise IsADirectoryError(f"Tensor: {p} is not a regular file (a pathlib.Path is a file's bytes as a disk tensor)")
  t = Tensor.empty(st.st_size, dtype=dtypes.uint8, device=f"DISK:{p.resolve()}")
  buffer_of(t).arg.buf.mem  # map it now
  return t if device is None or (dev := Device.canonicalize(device)) == t.device else t.to(dev)

def buffer_of(t: Tensor) -> UOp | None:
  """The BUFFER node t is (possibly reshaped), or None when t is a lazy graph."""
  from tinygrad.tensor import _resolved, _is_buffer
  from tinygrad.uop import Ops
  u = _resolved(t.uop)
  if not _is_buffer(u): return None
  return u if u.op is Ops.BUFFER else u.src[0]

def _wrap(t: Tensor, b: UOp, shape: tuple[int, ...]) -> Tensor:
  from tinygrad.tensor import Tensor
  from tinygrad.uop import UOp, Ops
  return Tensor._wrap(b if shape == (b.arg.size,) else UOp(Ops.RESHAPE, b.dtype, (b,), shape), t.device)

def _view(t: Tensor, b: UOp, byte_offset: int, shape: tuple[int, ...], dtype: DType) -> Tensor:
  from tinygrad.engine.realize import buffer_uop
  return _wrap(t, buffer_uop(b.arg.buf.view(byte_offset, prod(shape), dtype), (prod(shape),)), shape)

def reshape(t: Tensor, shape: tuple[int, ...]) -> Tensor | None:
  """t (a disk buffer) with a new shape: the same buffer node (the shape was checked by Tensor.reshape)."""
  return None if (b := buffer_of(t)) is None else _wrap(t, b, shape)

def shrink(t: Tensor, arg: tuple[tuple[int, int], ...]) -> Tensor | None:
  """A shrink of a disk buffer: the byte range covering it (leading dims fixed to one index, then one dim's range, the
  later dims whole) is a new buffer view; a shrink of those later dims (not one byte range) stays lazy on top of it."""
  from tinygrad.uop import UOp, Ops
  if (b := buffer_of(t)) is None: return None
  shape, item = t.shape, t.dtype.itemsize
  if prod(e - s for s, e in arg) == 0: return _view(t, b, 0, tuple(e - s for s, e in arg), t.dtype)
  k = next((i for i, (s, e) in enumerate(arg) if e - s != 1), len(shape))
  strides = [prod(shape[i + 1:]) for i in range(len(shape))]
  offset = sum(s * st for (s, _), st in zip(arg[:k + 1], strides))
  cover = tuple(1 if i < k else e - s if i == k else n for i, ((s, e), n) in enumerate(zip(arg, shape)))
  v = _view(t, b, offset * item, cover, t.dtype)
  rest = tuple((0, c) if i <= k else a for i, (a, c) in enumerate(zip(arg, cover)))
  return v if rest == tuple((0, c) for c in cover) else v._new(UOp(Ops.SHRINK, t.dtype, (v.uop,), rest))

def bitcast(t: Tensor, dtype: DType) -> Tensor | None:
  """t's bytes read as dtype: a view of the same bytes. The last dimension's bytes must be a whole number of dtype
  elements (uint8 (4n,) -> float32 (n,); float32 (n, 2) -> float64 (n, 1))."""
  if (b := buffer_of(t)) is None or dtypes.bool in (dtype, t.dtype): return None  # bool: Tensor.bitcast's own error
  shape = t.shape or (1,)
  if (nb := shape[-1] * t.dtype.itemsize) % dtype.itemsize:
    raise ValueError(f"bitcast: {t.dtype} {t.shape} -> {dtype} on {t.device}: the last dimension holds {nb} bytes, not a whole number "
                     f"of {dtype.itemsize}-byte {dtype} elements")
  new = shape[:-1] + (nb // dtype.itemsize,)
  return _view(t, b, 0, new if t.shape or new != (1,) else (), dtype)

def to(t: Tensor, device: str) -> Tensor | None:
  """A lazy graph over disk buffers moved to a compute device: each disk buffer is copied there, the graph runs there.
  None where Tensor.to's own path serves (t is a buffer: one COPY; or the target is DISK too)."""
  from tinygrad.tensor import Tensor
  from tinygrad.uop import UOp, Ops
  if buffer_of(t) is not None or is_disk(device): return None
  copies = {u: UOp(Ops.COPY, u.dtype, (u,), device) for u in t.uop.toposort() if u.op is Ops.BUFFER and is_disk(u.arg.device)}
  return Tensor._wrap(t.uop.substitute(copies), device)

def assign(t: Tensor, x: Any) -> Tensor:
  """Write x (cast to t's dtype, broadcast to t's shape) into the bytes t maps, now; returns t."""
  from tinygrad.tensor import Tensor, _broadcast_shape
  if (b := buffer_of(t)) is None:
    raise RuntimeError(f"assign: {t.device}: only a disk tensor that is one byte range of its file (the file, a slice of it, a reshape "
                       f"or bitcast of one) can be written; this {t.shape} tensor is a lazy {t.uop.op.name} of it")
  if not isinstance(x, Tensor): x = Tensor(x, device="CPU", dtype=t.dtype)
  if x.shape != t.shape: x = x._broadcast_to(_broadcast_shape("assign", t.shape, x.shape))
  if x.shape != t.shape: raise ValueError(f"assign: cannot assign shape {x.shape} to {t.shape} on {t.device}")
  src = x.to("CPU").cast(t.dtype)._buffer()  # computed (and moved to the host) before a byte of the file changes
  if src.nbytes: b.arg.buf.mem.copyin(src.ptr, src.nbytes)
  return t
