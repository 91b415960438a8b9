"""State dicts, and the file formats weights arrive in: safetensors, tar, PyTorch checkpoints (GGUF is in tinygrad.llm.gguf).

safetensors: 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}}, then the raw
little-endian data. safe_save writes to a temporary file in the same directory and renames it over the target, so a
failed save never destroys the previous file.

The loaders read files only through the DISK device (runtime/disk.py): a path becomes `Tensor(pathlib.Path(path))`, the
file mapped, not read. Headers are parsed from host copies of just their bytes; a tensor's bytes are a lazy copy of
exactly its byte range out of the mapping to the default device (`_file_bytes`), done when that tensor is realized, so
loading a checkpoint reads nothing but headers and realizing one tensor reads only its bytes. Element bytes become typed
values (`_decode`; safetensors on a little-endian host: a bitcast view of the file), strided views (`_as_strided`) and
dequantised blocks in generated kernels. A file replaced after loading (safe_save renames a new file over it) keeps
serving the old bytes to the tensors already loaded.

PyTorch checkpoints (torch.save), three layouts:
* zip (torch >= 1.6): <folder>/data.pkl is a protocol-2 pickle whose tensors are persistent ids
  ('storage', <torch.FloatStorage>, key, location, numel) rebuilt by torch._utils._rebuild_tensor_v2(storage, offset,
  size, stride, ...); the storage's bytes are the stored member <folder>/data/<key>; <folder>/byteorder says little
  or big.
* legacy pickle (_use_new_zipfile_serialization=False): pickles of the magic number, the protocol version (1001) and
  sys_info, then the object pickle (ids ('storage', type, key, location, numel, view)), a pickle of the sorted storage
  keys, then per key an int64 element count and the raw bytes.
* legacy tar (torch < 0.4): members 'storages' (count, then per storage a pickled (key, location, type), an int64
  count and the bytes, then a pickled list of storage views), 'tensors' (count, then per tensor a pickled (key,
  storage key, type), int32 ndim, 4 pad bytes, int64 sizes, int64 strides, int64 offset) and 'pickle' (the object,
  tensors as persistent ids).
Unpickling only resolves the globals in _TORCH_GLOBALS (rebuild functions, storage types, dtypes, OrderedDict, a few
builtins); any other class is refused, so a checkpoint cannot run code.
"""
from __future__ import annotations
import codecs, io, json, os, pathlib, pickle, struct, sys, tarfile, tempfile, zipfile
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable
from tinygrad.tensor import Tensor
from tinygrad.dtype import DType, dtypes
from tinygrad.device import Device
from tinygrad.helpers import argsort, prod

SAFE_DTYPES: dict[str, DType] = {"F16": dtypes.float16, "BF16": dtypes.bfloat16, "F32": dtypes.float32, "F64": dtypes.float64,
  "I8": dtypes.int8, "I16": dtypes.int16, "I32": dtypes.int32, "I64": dtypes.int64, "U8": dtypes.uint8, "U16": dtypes.uint16,
  "U32": dtypes.uint32, "U64": dtypes.uint64, "BOOL": dtypes.bool}
SAFE_NAMES = {v: k for k, v in SAFE_DTYPES.items()}

def get_state_dict(obj: Any, prefix: str = "", tensor_type=Tensor) -> dict[str, Tensor]:
  """Every Tensor reachable through attributes, lists, tuples and dicts, keyed by its dotted path ('l1.weight')."""
  if isinstance(obj, tensor_type): return {prefix.strip("."): obj}
  if hasattr(obj, "_asdict"): return get_state_dict(obj._asdict(), prefix, tensor_type)
  if isinstance(obj, OrderedDict) or isinstance(obj, dict): items = obj.items()
  elif isinstance(obj, (list, tuple)): items = enumerate(obj)
  elif hasattr(obj, "__dict__"): items = vars(obj).items()
  else: return {}
  out: dict[str, Tensor] = {}
  for k, v in items: out.update(get_state_dict(v, f"{prefix}{k}.", tensor_type))
  return out

def get_parameters(obj: Any) -> list[Tensor]:
  """The tensors of get_state_dict(obj), each once."""
  seen, out = set(), []
  for t in get_state_dict(obj).values():
    if id(t) not in seen: seen.add(id(t)); out.append(t)
  return out

def load_state_dict(model: Any, state_dict: dict[str, Tensor], strict: bool = True, verbose: bool = False, consume: bool = False, realize: bool = True) -> None:
  """Copy state_dict's tensors into model's tensors of the same name (cast to the model's dtype, moved to its device)."""
  model_sd = get_state_dict(model)
  missing = [k for k in model_sd if k not in state_dict]
  unexpected = [k for k in state_dict if k not in model_sd]
  bad_shape = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {model_sd[k].shape}" for k in model_sd
               if k in state_dict and tuple(state_dict[k].shape) != model_sd[k].shape]
  problems = []
  if strict and missing: problems.append(f"missing keys: {missing}")
  if strict and unexpected: problems.append(f"unexpected keys: {unexpected}")
  if bad_shape: problems.append(f"shape mismatch: {'; '.join(bad_shape)}")
  if problems: raise RuntimeError("load_state_dict: " + "; ".join(problems))
  loaded = []
  for k, t in model_sd.items():
    if k not in state_dict: continue
    v = state_dict[k]
    if not isinstance(v, Tensor): v = Tensor(v)
    t.replace(v.to(t.device).cast(t.dtype).contiguous())
    loaded.append(t)
    if verbose: print(f"loaded {k} {t.shape} {t.dtype}")
    if consume: del state_dict[k]
  if realize: Tensor.realize_all(loaded)

def safe_save(tensors: dict[str, Tensor], fn: str, metadata: dict[str, str] | None = None) -> None:
  header: dict[str, Any] = {}
  offset, payloads = 0, []
  for name, t in tensors.items():
    if t.dtype not in SAFE_NAMES: raise TypeError(f"safe_save: {name} has dtype {t.dtype}, which safetensors cannot store")
    data = t.numpy().tobytes()
    header[name] = {"dtype": SAFE_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
    payloads.append(data)
    offset += len(data)
  if metadata: header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
  hb = json.dumps(header, separators=(",", ":")).encode()
  hb += b" " * (-len(hb) % 8)  # the data starts 8-byte aligned
  folder = os.path.dirname(os.path.abspath(fn))
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=".safe_save-", suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(struct.pack("<Q", len(hb)))
      f.write(hb)
      for p in payloads: f.write(p)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, fn)
  except BaseException:
    try: os.unlink(tmp)
    except OSError: pass
    raise

def safe_load_metadata(fn: Tensor | str | pathlib.Path) -> tuple[int, dict[str, Any]]:
  """(offset of the data, parsed JSON header) of a safetensors file (its path, or its bytes as a uint8 Tensor)."""
  return _safe_header(_Source(fn, "safe_load"))

def _safe_header(src: _Source) -> tuple[int, dict[str, Any]]:
  if src.size < 8: raise ValueError(src.error("not a safetensors file (shorter than 8 bytes)"))
  n = struct.unpack("<Q", src.read(0, 8))[0]
  if n > src.size - 8: raise ValueError(src.error(f"not a safetensors file (header of {n} bytes)"))
  try: header = json.loads(src.read(8, n))
  except (UnicodeDecodeError, json.JSONDecodeError) as e: raise ValueError(src.error(f"corrupt header ({e})")) from None
  return 8 + n, header

def safe_load(fn: Tensor | str | pathlib.Path) -> dict[str, Tensor]:
  """Tensors of a safetensors file (its path, or its bytes as a uint8 Tensor), by name (the file's order)."""
  src = _Source(fn, "safe_load")
  start, header = _safe_header(src)
  out: dict[str, Tensor] = {}
  for name, info in header.items():
    if name == "__metadata__": continue
    if info["dtype"] not in SAFE_DTYPES: raise TypeError(src.error(f"tensor {name!r} has unsupported dtype {info['dtype']}"))
    dt = SAFE_DTYPES[info["dtype"]]
    b, e = info["data_offsets"]
    want = dt.itemsize * prod(info["shape"])
    if e - b != want or start + e > src.size:
      raise ValueError(src.error(f"tensor {name!r} ({info['dtype']}, shape {info['shape']}) needs {want} bytes at offsets "
                                 f"{b}..{e}, but the file has {src.size - start} data bytes (truncated or corrupt)"))
    out[name] = src.typed(start + b, dt, tuple(info["shape"]), f"tensor {name!r}")
  return out

# ---------------------------------------------------------------- bytes in

def _file_view(fn: str | pathlib.Path | Tensor, offset: int, nbytes: int) -> Tensor:
  """Bytes [offset, offset + nbytes) of the file fn (a path, or the file as a uint8 disk Tensor) as a uint8 view on the
  DISK device: nothing is read until it is copied out."""
  f = fn if isinstance(fn, Tensor) else Tensor(pathlib.Path(fn))
  if offset < 0 or nbytes < 0 or offset + nbytes > f.numel():
    raise ValueError(f"_file_bytes: {fn if not isinstance(fn, Tensor) else f.device}: wanted {nbytes} bytes at offset {offset}, "
                     f"but the file has {f.numel()}")
  return f.flatten()[offset:offset + nbytes]

def _file_bytes(fn: str | pathlib.Path | Tensor, offset: int, nbytes: int) -> Tensor:
  """Bytes [offset, offset + nbytes) of the file fn as a uint8 Tensor on the default device: a lazy copy of exactly that
  byte range out of the file's mapping, done when the tensor is realized. Every loader reads tensor data through this."""
  return _file_view(fn, offset, nbytes).to(Device.DEFAULT)

def _is_disk_bytes(t: Tensor) -> bool:
  """t is a uint8 disk tensor that is one byte range of its file (the file itself, a slice of it)."""
  from runtime.disk import is_disk, buffer_of
  return is_disk(t.device) and t.dtype == dtypes.uint8 and buffer_of(t) is not None

class _Source:
  """What a loader parses: a file (its path, or the file as a uint8 disk Tensor: read through the DISK device) or a
  uint8 Tensor of a file's bytes. read() gives host bytes for headers, tensor() a byte range as a uint8 Tensor on a
  compute device, typed() a byte range as a tensor of a dtype and shape, open() a seekable binary file object."""
  def __init__(self, src: Tensor | str | pathlib.Path, op: str):
    self.op = op
    self.disk: Tensor | None = None  # the file on DISK, when src is a file
    self.t: Tensor | None = None     # the file's bytes in a compute device's memory, when src is such a Tensor
    self._host: Any = None
    if isinstance(src, Tensor):
      if src.dtype != dtypes.uint8: raise TypeError(f"{op}: expected the file's bytes as a uint8 Tensor (or a path), got a {src.dtype} Tensor")
      if _is_disk_bytes(src): self.disk, self.name, self.device = src.flatten(), src.device.partition(":")[2], None
      else: self.t, self.name, self.device = src.flatten(), f"<uint8 Tensor of {src.numel()} bytes>", src.device
      self.size = src.numel()
    elif isinstance(src, (str, os.PathLike)):
      self.name, self.device = os.fspath(src), None
      if not os.path.isfile(self.name): raise FileNotFoundError(f"{op}: {self.name}: no such file")
      self.disk = Tensor(pathlib.Path(self.name))
      self.size = self.disk.numel()
    else: raise TypeError(f"{op}: expected a uint8 Tensor of the file's bytes, a str or a pathlib.Path, got {type(src).__name__}")
  def error(self, msg: str) -> str: return f"{self.op}: {self.name}: {msg}"
  def check(self, offset: int, nbytes: int, what: str) -> None:
    if offset < 0 or nbytes < 0 or offset + nbytes > self.size:
      raise ValueError(self.error(f"{what} needs bytes {offset}..{offset + nbytes}, but the file has {self.size} (truncated or corrupt)"))
  def _bytes(self, offset: int, nbytes: int):
    if self.disk is not None: return _file_view(self.disk, offset, nbytes).numpy()  # one copy of just these bytes
    if self._host is None: self._host = self.t.numpy()
    return self._host[offset:offset + nbytes]
  def read(self, offset: int, nbytes: int, what: str = "the header") -> bytes:
    self.check(offset, nbytes, what)
    return self._bytes(offset, nbytes).tobytes()
  def tensor(self, offset: int, nbytes: int, what: str) -> Tensor:
    """Bytes [offset, offset + nbytes) as a uint8 Tensor of their own (so same-shaped tensors share compiled kernels)."""
    self.check(offset, nbytes, what)
    if self.disk is not None: return _file_bytes(self.disk, offset, nbytes)
    return Tensor(self._bytes(offset, nbytes), device=self.device)
  def typed(self, offset: int, dtype: DType, shape: tuple[int, ...], what: str) -> Tensor:
    """The little-endian elements of dtype at offset, in shape. From a file on a little-endian host: the bytes viewed as
    dtype on DISK (a bitcast), copied to the default device when realized; bool and otherwise: decoded in a kernel."""
    nbytes = dtype.itemsize * prod(shape)
    if self.disk is None or dtype == dtypes.bool or sys.byteorder != "little": return _decode(self.tensor(offset, nbytes, what), dtype).reshape(shape)
    self.check(offset, nbytes, what)
    return _file_view(self.disk, offset, nbytes).bitcast(dtype).reshape(shape).to(Device.DEFAULT)
  def open(self) -> io.BufferedReader: return io.BufferedReader(_SourceIO(self), buffer_size=1 << 20)

class _SourceIO(io.RawIOBase):
  def __init__(self, src: _Source): self.src, self.pos = src, 0
  def readable(self) -> bool: return True
  def seekable(self) -> bool: return True
  def tell(self) -> int: return self.pos
  def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
    self.pos = max(0, offset + (0, self.pos, self.src.size)[whence])
    return self.pos
  def readinto(self, b) -> int:
    n = max(0, min(len(b), self.src.size - self.pos))
    if n: b[:n] = memoryview(self.src._bytes(self.pos, n))
    self.pos += n
    return n

_UINT_OF_SIZE = {2: dtypes.uint16, 4: dtypes.uint32, 8: dtypes.uint64}

def _decode(u8: Tensor, dtype: DType, big_endian: bool = False) -> Tensor:
  """The bytes along u8's last axis as elements of dtype (little-endian unless big_endian), computed in a kernel."""
  if dtype == dtypes.bool: return u8 != 0
  if dtype.itemsize == 1: return u8.bitcast(dtype)
  b = u8.reshape(u8.shape[:-1] + (u8.shape[-1] // dtype.itemsize, dtype.itemsize))
  if big_endian: b = b.flip(b.ndim - 1)
  ut = _UINT_OF_SIZE[dtype.itemsize]
  shifts = Tensor.arange(dtype.itemsize, dtype=ut, device=u8.device) * 8
  return (b.cast(ut) << shifts).sum(b.ndim - 1, dtype=ut).bitcast(dtype)

def _as_strided(flat: Tensor, size: tuple[int, ...], stride: tuple[int, ...], offset: int, what: str) -> Tensor:
  """flat[offset + sum_k i_k * stride_k] at every index i of shape size (torch.as_strided), from movement ops: the
  dims sorted by stride each cut the row of elements they span into (n, stride) and keep the first columns, the inner
  dims' span. Views whose dims overlap (a window wider than its stride) gather instead."""
  if len(size) != len(stride) or any(not isinstance(v, int) or v < 0 for v in (*size, *stride, offset)):
    raise ValueError(f"{what}: invalid view: size {size}, stride {stride}, offset {offset}")
  if prod(size) == 0: return flat[0:0].reshape(size)
  last = offset + sum((n - 1) * s for n, s in zip(size, stride))
  if last >= flat.shape[0]:
    raise ValueError(f"{what}: a view of size {size}, stride {stride} at offset {offset} reads element {last}, but its storage has {flat.shape[0]}")
  dims = sorted((i for i, (n, s) in enumerate(zip(size, stride)) if n > 1 and s > 0), key=lambda i: -stride[i])
  span = [1] * (len(dims) + 1)  # span[j]: elements from the first to the last one dims[j:] reach, inclusive
  for j in reversed(range(len(dims))): span[j] = (size[dims[j]] - 1) * stride[dims[j]] + span[j + 1]
  if any(span[j + 1] > stride[d] for j, d in enumerate(dims)):
    idx = sum((Tensor.arange(n, dtype=dtypes.int64, device=flat.device) * s).reshape(tuple(n if k == i else 1 for k in range(len(size))))
              for i, (n, s) in enumerate(zip(size, stride))) + offset
    return flat.gather_rows(idx.expand(size))
  x = flat[offset:offset + span[0]]
  for j, d in enumerate(dims):
    n, s = size[d], stride[d]
    x = x.pad(((0, 0),) * j + ((0, n * s - span[j]),)).reshape(x.shape[:-1] + (n, s))[..., :span[j + 1]]
  x = x.reshape(x.shape[:-1]).permute(argsort(dims))  # drop the 1-element column; back to the checkpoint's dim order
  return x.reshape(tuple(n if i in dims else 1 for i, n in enumerate(size))).expand(size)

# ---------------------------------------------------------------- tar

def tar_extract(t: Tensor | str | pathlib.Path) -> dict[str, Tensor]:
  """The regular files of a tar archive (the bytes as a uint8 Tensor, or a path), by member name, as uint8 Tensors.
  Compressed archives (gz, bz2, xz) are decompressed on the host."""
  src = _Source(t, "tar_extract")
  try:
    with tarfile.open(fileobj=src.open(), mode="r:") as tar:
      return {m.name: src.tensor(m.offset_data, m.size, f"member {m.name!r}") for m in tar.getmembers() if m.isreg()}
  except tarfile.ReadError as plain_error:
    try:
      with tarfile.open(fileobj=src.open(), mode="r:*") as tar:
        return {m.name: Tensor(tar.extractfile(m).read(), device=src.device) for m in tar.getmembers() if m.isreg()}
    except (tarfile.TarError, EOFError, OSError) as e:
      raise ValueError(src.error(f"not a readable tar archive ({plain_error}; {e})")) from None
  except (tarfile.TarError, EOFError) as e:
    raise ValueError(src.error(f"truncated or corrupt tar archive ({e})")) from None

# ---------------------------------------------------------------- PyTorch checkpoints

class _TorchStorage:
  """One storage of a checkpoint: its bytes (None in the legacy pickle's first pass, which only collects keys) and the
  dtype its storage type names. Views decode the bytes as the dtype they ask for (once per dtype)."""
  def __init__(self, src: _Source, key: str, dtype: DType, raw: Tensor | None, big_endian: bool = False):
    self.src, self.key, self.dtype, self.raw, self.big_endian = src, key, dtype, raw, big_endian
    self._flat: dict[DType, Tensor] = {}
  def view(self, dtype: DType, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> Tensor | None:
    if self.raw is None: return None
    if dtype not in self._flat:
      if self.raw.shape[0] % dtype.itemsize:
        raise ValueError(self.src.error(f"storage {self.key!r} has {self.raw.shape[0]} bytes, not a whole number of {dtype} elements"))
      self._flat[dtype] = _decode(self.raw, dtype, self.big_endian)
    return _as_strided(self._flat[dtype], tuple(size), tuple(stride), offset, self.src.error(f"storage {self.key!r}"))

class _Refused(pickle.UnpicklingError):
  """The checkpoint asks for something torch_load does not do (an unknown class, changing a global); torch_load re-raises
  it as an UnpicklingError naming the file."""

@dataclass(frozen=True)
class _Global:
  """What find_class gives the unpickler for an allowed global: a constructor to call, or a tag (torch.FloatStorage,
  torch.float32) carrying a dtype. The instances are shared, so a pickle must not change them: frozen, and BUILD (which
  calls __setstate__) is refused."""
  name: str
  fn: Callable | None = None
  dtype: DType | None = None
  def __call__(self, *args: Any) -> Any:
    if self.fn is None: raise _Refused(f"{self.name} is a type tag and cannot be called")
    return self.fn(*args)
  def __setstate__(self, state: Any) -> None: raise _Refused(f"the pickle tries to modify {self.name}")

def _storage_of(storage: Any) -> _TorchStorage:
  if not isinstance(storage, _TorchStorage):
    raise _Refused(f"a tensor's storage is a {type(storage).__name__}, not a storage")
  return storage

def _rebuild_tensor(storage: Any, storage_offset: int, size: tuple[int, ...], stride: tuple[int, ...], *_) -> Tensor | None:
  st = _storage_of(storage)
  return st.view(st.dtype, storage_offset, size, stride)
def _rebuild_tensor_v3(storage: Any, storage_offset: int, size: tuple[int, ...], stride: tuple[int, ...], requires_grad: bool,
                       backward_hooks: Any, dtype: Any, *_) -> Tensor | None:
  if not isinstance(dtype, _Global) or dtype.dtype is None or dtype.name.endswith("Storage"):
    raise _Refused(f"_rebuild_tensor_v3 got dtype {dtype!r}, not a torch dtype")
  return _storage_of(storage).view(dtype.dtype, storage_offset, size, stride)
def _rebuild_parameter(data: Tensor | None, *_) -> Tensor | None: return data
def _rebuild_from_type_v2(func: Callable, new_type: Any, args: tuple, state: Any) -> Any: return func(*args)
def _torch_device(kind: str, index: int | None = None) -> str: return kind if index is None else f"{kind}:{index}"

_TORCH_STORAGE_DTYPES = {"Half": dtypes.float16, "BFloat16": dtypes.bfloat16, "Float": dtypes.float32, "Double": dtypes.float64,
  "Char": dtypes.int8, "Byte": dtypes.uint8, "Short": dtypes.int16, "Int": dtypes.int32, "Long": dtypes.int64, "Bool": dtypes.bool}
_TORCH_DTYPE_NAMES = {"float16": dtypes.float16, "half": dtypes.float16, "bfloat16": dtypes.bfloat16, "float32": dtypes.float32,
  "float": dtypes.float32, "float64": dtypes.float64, "double": dtypes.float64, "int8": dtypes.int8, "uint8": dtypes.uint8,
  "int16": dtypes.int16, "short": dtypes.int16, "int32": dtypes.int32, "int": dtypes.int32, "int64": dtypes.int64,
  "long": dtypes.int64, "uint16": dtypes.uint16, "uint32": dtypes.uint32, "uint64": dtypes.uint64, "bool": dtypes.bool}
_TORCH_FUNCTIONS: dict[tuple[str, str], Callable] = {
  ("collections", "OrderedDict"): OrderedDict, ("torch", "Size"): tuple, ("torch", "device"): _torch_device,
  ("torch._utils", "_rebuild_tensor"): _rebuild_tensor, ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
  ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3, ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
  ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter, ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
  ("_codecs", "encode"): codecs.encode,  # how protocol 2 pickles bytes
  **{(m, n): f for m in ("builtins", "__builtin__") for n, f in (("set", set), ("frozenset", frozenset), ("complex", complex),
                                                                 ("slice", slice), ("bytearray", bytearray))}}
_TORCH_GLOBALS: dict[tuple[str, str], _Global] = {
  **{(m, n): _Global(f"{m}.{n}", fn) for (m, n), fn in _TORCH_FUNCTIONS.items()},
  ("torch", "Tensor"): _Global("torch.Tensor"), ("torch.nn.parameter", "Parameter"): _Global("torch.nn.Parameter"),
  ("torch.storage", "UntypedStorage"): _Global("torch.UntypedStorage", dtype=dtypes.uint8),
  ("torch", "UntypedStorage"): _Global("torch.UntypedStorage", dtype=dtypes.uint8),
  **{("torch", f"{k}Storage"): _Global(f"torch.{k}Storage", dtype=dt) for k, dt in _TORCH_STORAGE_DTYPES.items()},
  **{("torch", f"{k}Tensor"): _Global(f"torch.{k}Tensor", dtype=dt) for k, dt in _TORCH_STORAGE_DTYPES.items()},
  **{("torch", k): _Global(f"torch.{k}", dtype=dt) for k, dt in _TORCH_DTYPE_NAMES.items()}}

class _TorchUnpickler(pickle.Unpickler):
  """Resolves only _TORCH_GLOBALS; persistent ids (storages, legacy tensors) go to `persistent`."""
  def __init__(self, f: Any, persistent: Callable[[Any], Any]):
    super().__init__(f)
    self.persistent = persistent
  def find_class(self, module: str, name: str) -> Any:
    if (module, name) in _TORCH_GLOBALS: return _TORCH_GLOBALS[(module, name)]
    raise _Refused(f"refusing to load {module}.{name}: a checkpoint may only hold tensors, storages, torch dtypes/Size/device, "
                   "containers (dict, OrderedDict, list, tuple, set) and scalars")
  def persistent_load(self, pid: Any) -> Any: return self.persistent(pid)

def _storage_type(src: _Source, t: Any) -> DType:
  if not isinstance(t, _Global) or t.dtype is None or not t.name.endswith("Storage"):
    raise pickle.UnpicklingError(src.error(f"expected a storage type, got {t!r}"))
  return t.dtype

_TORCH_MAGIC, _TORCH_LEGACY_PROTOCOL = 0x1950a86a20f9469cfc6c, 1001

def torch_load(t: Tensor | str | pathlib.Path) -> dict[str, Tensor]:
  """The object torch.save wrote (usually a state dict, possibly nested) with its tensors as lazy Tensors, without
  importing torch. `t` is the checkpoint's bytes as a uint8 Tensor, or its path."""
  src = _Source(t, "torch_load")
  head = src.read(0, min(src.size, 512))
  try:
    if head.startswith(b"PK\x03\x04"): return _torch_zip(src)
    if len(head) >= 262 and head[257:262] == b"ustar": return _torch_tar(src)
    if head.startswith(b"\x80"): return _torch_legacy(src)
  except _Refused as e: raise pickle.UnpicklingError(src.error(str(e))) from None
  except (EOFError, struct.error, zipfile.BadZipFile, tarfile.TarError, pickle.UnpicklingError, ValueError, TypeError, KeyError,
          IndexError, AttributeError) as e:
    if str(e).startswith("torch_load:"): raise
    raise ValueError(src.error(f"truncated or corrupt checkpoint ({type(e).__name__}: {e})")) from e
  raise ValueError(src.error(f"not a PyTorch checkpoint: it starts with {head[:8]!r}, expected a zip (b'PK\\x03\\x04'), a tar "
                             "or a pickle (b'\\x80')"))

def _torch_zip(src: _Source) -> Any:
  z = zipfile.ZipFile(src.open())
  infos = {zi.filename: zi for zi in z.infolist()}
  pkl = [n for n in infos if n.count("/") == 1 and n.endswith("/data.pkl")]
  if not pkl: raise ValueError(src.error(f"zip archive without a <folder>/data.pkl (members {list(infos)[:5]}): not a torch.save checkpoint"))
  folder = pkl[0][:-len("data.pkl")]
  order = z.read(folder + "byteorder").decode().strip() if folder + "byteorder" in infos else "little"
  if order not in ("little", "big"): raise ValueError(src.error(f"byteorder is {order!r}, expected 'little' or 'big'"))
  def member(zi: zipfile.ZipInfo) -> Tensor:
    if zi.compress_type != zipfile.ZIP_STORED: return Tensor(z.read(zi), device=src.device)
    local = src.read(zi.header_offset, 30, f"zip member {zi.filename!r}")
    if local[:4] != b"PK\x03\x04": raise ValueError(src.error(f"zip member {zi.filename!r}: no local header at offset {zi.header_offset}"))
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    return src.tensor(zi.header_offset + 30 + name_len + extra_len, zi.file_size, f"zip member {zi.filename!r}")
  storages: dict[str, _TorchStorage] = {}
  def persistent(pid: Any) -> _TorchStorage:
    if not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != "storage":
      raise pickle.UnpicklingError(src.error(f"unexpected persistent id {pid!r}"))
    dtype, key, numel = _storage_type(src, pid[1]), str(pid[2]), pid[4]
    if key not in storages:
      if (zi := infos.get(f"{folder}data/{key}")) is None: raise ValueError(src.error(f"storage {key!r} has no member {folder}data/{key}"))
      if zi.file_size < numel * dtype.itemsize:
        raise ValueError(src.error(f"storage {key!r} holds {numel} {dtype} elements ({numel * dtype.itemsize} bytes), but {zi.filename} "
                                   f"has {zi.file_size} bytes"))
      storages[key] = _TorchStorage(src, key, dtype, member(zi), order == "big")
    return storages[key]
  return _TorchUnpickler(io.BytesIO(z.read(infos[pkl[0]])), persistent).load()

def _torch_legacy(src: _Source) -> Any:
  f = src.open()
  def load(persistent: Callable[[Any], Any]) -> Any: return _TorchUnpickler(f, persistent).load()
  def no_ids(pid: Any) -> Any: raise pickle.UnpicklingError(src.error(f"unexpected persistent id {pid!r} in the header"))
  if (magic := load(no_ids)) != _TORCH_MAGIC:
    raise ValueError(src.error(f"not a PyTorch checkpoint: the first pickle is {magic!r}, expected the magic number {_TORCH_MAGIC:#x}"))
  if (version := load(no_ids)) != _TORCH_LEGACY_PROTOCOL:
    raise ValueError(src.error(f"legacy protocol version {version!r}, expected {_TORCH_LEGACY_PROTOCOL}"))
  if not isinstance(sys_info := load(no_ids), dict) or not sys_info.get("little_endian", True):
    raise ValueError(src.error(f"sys_info {sys_info!r}: only little-endian legacy checkpoints are supported"))
  start = f.tell()
  # pass 1 (storages empty) collects each storage key's dtype, its first user's, as torch does; pass 2 rebuilds the tensors
  dtypes_of: dict[str, DType] = {}
  storages: dict[str, _TorchStorage] = {}
  views: dict[str, _TorchStorage] = {}
  def persistent(pid: Any) -> _TorchStorage:
    if not isinstance(pid, tuple) or len(pid) != 6 or pid[0] != "storage":
      raise pickle.UnpicklingError(src.error(f"unexpected persistent id {pid!r}"))
    dtype, key, view = _storage_type(src, pid[1]), str(pid[2]), pid[5]
    dtypes_of.setdefault(key, dtype)
    if key not in storages: return _TorchStorage(src, key, dtype, None)
    if view is None: return storages[key]
    view_key, offset, numel = view  # an old storage view: elements [offset, offset + numel) of the root
    if str(view_key) not in views:
      raw = storages[key].raw[offset * dtype.itemsize:(offset + numel) * dtype.itemsize]
      views[str(view_key)] = _TorchStorage(src, str(view_key), dtype, raw)
    return views[str(view_key)]
  load(persistent)
  keys, pos = load(no_ids), f.tell()
  if not isinstance(keys, list):
    raise ValueError(src.error(f"expected the list of storage keys after the object, got {type(keys).__name__}"))
  for key in map(str, keys):
    if key not in dtypes_of: raise ValueError(src.error(f"storage key {key!r} is listed but no tensor uses it"))
    numel = struct.unpack("<q", src.read(pos, 8, f"storage {key!r}"))[0]
    nbytes = numel * dtypes_of[key].itemsize
    storages[key] = _TorchStorage(src, key, dtypes_of[key], src.tensor(pos + 8, nbytes, f"storage {key!r}"))
    pos += 8 + nbytes
  if missing := set(dtypes_of) - set(storages): raise ValueError(src.error(f"storages {sorted(missing)} are used but have no data"))
  f.seek(start)
  return load(persistent)

def _torch_tar(src: _Source) -> Any:
  with tarfile.open(fileobj=src.open(), mode="r:") as tar: members = {m.name: m for m in tar.getmembers()}
  for name in ("storages", "tensors", "pickle"):
    if name not in members: raise ValueError(src.error(f"tar archive without a {name!r} member: not a legacy torch.save checkpoint"))
  f = src.open()
  def load(persistent: Callable[[Any], Any]) -> Any: return _TorchUnpickler(f, persistent).load()
  def no_ids(pid: Any) -> Any: raise pickle.UnpicklingError(src.error(f"unexpected persistent id {pid!r}"))
  def ints(fmt: str) -> tuple[int, ...]: return struct.unpack(fmt, f.read(struct.calcsize(fmt)))
  storages: dict[str, _TorchStorage] = {}
  f.seek(members["storages"].offset_data)
  for _ in range(load(no_ids)):
    key, _location, stype = load(no_ids)
    dtype, (numel,) = _storage_type(src, stype), ints("<q")
    storages[str(key)] = _TorchStorage(src, str(key), dtype, src.tensor(f.tell(), numel * dtype.itemsize, f"storage {key!r}"))
    f.seek(numel * dtype.itemsize, io.SEEK_CUR)
  for target, root, offset, numel in load(no_ids):
    r = storages[str(root)]
    storages[str(target)] = _TorchStorage(src, str(target), r.dtype, r.raw[offset * r.dtype.itemsize:(offset + numel) * r.dtype.itemsize])
  tensors: dict[str, Tensor | None] = {}
  f.seek(members["tensors"].offset_data)
  for _ in range(load(no_ids)):
    key, storage_key, _ttype = load(no_ids)
    (ndim,) = ints("<i")
    f.seek(4, io.SEEK_CUR)  # ndim was once written as 8 bytes
    size, stride, (offset,) = ints(f"<{ndim}q"), ints(f"<{ndim}q"), ints("<q")
    if str(storage_key) not in storages: raise ValueError(src.error(f"tensor {key!r} uses storage {storage_key!r}, which the archive does not have"))
    tensors[str(key)] = _rebuild_tensor(storages[str(storage_key)], offset, size, stride)
  def persistent(pid: Any) -> Tensor | None:
    if isinstance(pid, tuple):
      raise pickle.UnpicklingError(src.error("the checkpoint pickles a whole nn.Module; save and load its state_dict() instead"))
    if str(pid) not in tensors: raise ValueError(src.error(f"the pickle refers to tensor {pid!r}, which the archive does not have"))
    return tensors[str(pid)]
  f.seek(members["pickle"].offset_data)
  return load(persistent)

def __getattr__(name: str) -> Any:
  if name == "gguf_load":  # tinygrad.llm.gguf imports this module, so it is imported on first use
    from tinygrad.llm.gguf import gguf_load
    return gguf_load
  raise AttributeError(f"module 'tinygrad.nn.state' has no attribute {name!r}")
