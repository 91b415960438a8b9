"""tar_extract, torch_load and gguf_load on files the tests write themselves with the standard library.

PyTorch checkpoints are written without torch: look-alike modules named torch, torch._utils and torch.storage are put
in sys.modules while the standard pickle module saves, so the pickle holds the same protocol-2 opcodes torch.save
emits (GLOBAL 'torch._utils _rebuild_tensor_v2', persistent ids ('storage', GLOBAL 'torch FloatStorage', key, 'cpu',
numel)); the zip, legacy pickle and legacy tar containers are assembled as torch lays them out. One test compares
against real torch.save when torch is installed. GGUF files are packed with struct, and the Q* blocks are checked
against numpy transcriptions of ggml's reference dequantisation loops.
"""
import io, os, pickle, struct, sys, tarfile, types, zipfile
from collections import OrderedDict
from dataclasses import dataclass
from unittest import mock
import numpy as np
import pytest
from tinygrad import Tensor, dtypes
from tinygrad.nn.state import tar_extract, torch_load

def bits(t: Tensor) -> np.ndarray:
  """The exact stored bit patterns (nan payloads and -0.0 count), as unsigned ints; bools as bools."""
  if t.dtype == dtypes.bool: return t.numpy()
  return t.bitcast({1: dtypes.uint8, 2: dtypes.uint16, 4: dtypes.uint32, 8: dtypes.uint64}[t.dtype.itemsize]).numpy()

def np_bits(a: np.ndarray) -> np.ndarray: return a if a.dtype == np.bool_ else np.ascontiguousarray(a).view(f"u{a.dtype.itemsize}")

# ---------------------------------------------------------------- tar

def write_tar(path, files: dict[str, bytes], mode: str = "w") -> None:
  with tarfile.open(path, mode) as tar:
    dirinfo = tarfile.TarInfo("weights")
    dirinfo.type = tarfile.DIRTYPE
    tar.addfile(dirinfo)
    for name, data in files.items():
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))

TAR_FILES = {"a.bin": bytes(range(256)) * 3, "weights/b.txt": b"hello tar", "empty": b"", "weights/" + "long" * 40: b"\x00\xff" * 700}

def test_tar_extract_round_trip_from_path_and_from_tensor(tmp_path):
  fn = tmp_path / "x.tar"
  write_tar(fn, TAR_FILES)
  for src in (fn, str(fn), Tensor(fn.read_bytes())):
    out = tar_extract(src)
    assert list(out) == list(TAR_FILES)  # regular files only, in archive order: the directory entry is not a member
    for name, data in TAR_FILES.items():
      assert out[name].dtype == dtypes.uint8 and out[name].shape == (len(data),)
      assert out[name].numpy().tobytes() == data

def test_tar_extract_reads_gzip_archives(tmp_path):
  write_tar(tmp_path / "x.tar.gz", TAR_FILES, "w:gz")
  out = tar_extract(tmp_path / "x.tar.gz")
  assert {k: v.numpy().tobytes() for k, v in out.items()} == TAR_FILES

def test_tar_extract_errors_name_the_file(tmp_path):
  (tmp_path / "junk").write_bytes(b"not a tar archive at all" * 30)
  with pytest.raises(ValueError, match=r"tar_extract: .*junk: not a readable tar archive"): tar_extract(tmp_path / "junk")
  write_tar(tmp_path / "x.tar", TAR_FILES)
  (tmp_path / "cut.tar").write_bytes((tmp_path / "x.tar").read_bytes()[:1500])  # a.bin's data runs past the end
  with pytest.raises(ValueError, match=r"tar_extract: .*cut.tar: .*(truncated|not a readable)"): tar_extract(tmp_path / "cut.tar")
  with pytest.raises(TypeError, match=r"tar_extract: expected the file's bytes as a uint8 Tensor .* got a dtypes.float Tensor"):
    tar_extract(Tensor([1.0, 2.0]))
  with pytest.raises(FileNotFoundError, match="tar_extract: .*missing.tar"): tar_extract(tmp_path / "missing.tar")

# ---------------------------------------------------------------- a torch look-alike for pickling

def _module(name: str) -> types.ModuleType:
  return types.ModuleType(name)

fake_torch, fake_utils, fake_storage, fake_tensor = _module("torch"), _module("torch._utils"), _module("torch.storage"), _module("torch._tensor")

def _fake_class(mod: types.ModuleType, name: str) -> type:
  cls = type(name, (), {"__module__": mod.__name__})
  setattr(mod, name, cls)
  return cls

def _fake_function(mod: types.ModuleType, name: str):
  def fn(*args): raise AssertionError(f"{name} is a pickling stand-in")
  fn.__module__, fn.__name__, fn.__qualname__ = mod.__name__, name, name
  setattr(mod, name, fn)
  return fn

class FakeDType:
  """torch.uint16 and friends: pickled by name as GLOBAL 'torch uint16'."""
  __module__ = "torch"
  def __init__(self, name: str): self.name = name
  def __reduce__(self): return self.name

STORAGE_NP = {"HalfStorage": np.float16, "BFloat16Storage": np.uint16, "FloatStorage": np.float32, "DoubleStorage": np.float64,
              "CharStorage": np.int8, "ByteStorage": np.uint8, "ShortStorage": np.int16, "IntStorage": np.int32,
              "LongStorage": np.int64, "BoolStorage": np.bool_}
for _kind in STORAGE_NP:
  _fake_class(fake_torch, _kind)
  _fake_class(fake_torch, _kind.replace("Storage", "Tensor"))
for _name in ("UntypedStorage",): _fake_class(fake_storage, _name)
for _name in ("ComplexFloatStorage", "Tensor", "Size", "device"): _fake_class(fake_torch, _name)
for _name in ("uint16", "uint32", "uint64", "float32"): setattr(fake_torch, _name, FakeDType(_name))
for _name in ("_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter"): _fake_function(fake_utils, _name)
_fake_function(fake_tensor, "_rebuild_from_type_v2")

def faked_torch():
  return mock.patch.dict(sys.modules, {"torch": fake_torch, "torch._utils": fake_utils, "torch.storage": fake_storage, "torch._tensor": fake_tensor})

class Reduced:
  """Pickles as fn(*args), for torch objects the tests only need by name (torch.Size, torch.device)."""
  def __init__(self, fn, *args): self.fn, self.args = fn, args
  def __reduce__(self): return (self.fn, self.args)

@dataclass(eq=False)
class Storage:
  """A torch storage: its key, its type's name in module torch ('FloatStorage', or 'UntypedStorage') and its bytes."""
  key: str
  kind: str
  data: bytes
  @property
  def numel(self) -> int:
    return len(self.data) if self.kind == "UntypedStorage" else len(self.data) // np.dtype(STORAGE_NP.get(self.kind, np.complex64)).itemsize

_keys = iter(range(10**9))
def storage_of(a: np.ndarray, kind: str | None = None, big_endian: bool = False) -> Storage:
  """`a` (flattened) as a storage; bfloat16 is an array of uint16 bit patterns with kind='BFloat16Storage'."""
  if kind is None: kind = {np.dtype(v): k for k, v in STORAGE_NP.items() if k != "BFloat16Storage"}.get(a.dtype, "UntypedStorage")
  a = np.ascontiguousarray(a).reshape(-1)
  return Storage(str(next(_keys)), kind, (a.byteswap() if big_endian else a).tobytes())

@dataclass(eq=False)
class View:
  """A tensor: (offset, size, stride) in elements of a storage; v3 names the dtype of an UntypedStorage's elements."""
  storage: Storage
  offset: int
  size: tuple
  stride: tuple
  v3: str | None = None
  parameter: bool = False
  subclass: bool = False  # a tensor with Python state: wrapped in torch._tensor._rebuild_from_type_v2
  def __reduce_ex__(self, proto):
    args = (self.storage, self.offset, self.size, self.stride, False, OrderedDict())
    if self.subclass: return (fake_tensor._rebuild_from_type_v2, (fake_utils._rebuild_tensor_v2, fake_torch.Tensor, args, {"note": 1}))
    if self.parameter: return (fake_utils._rebuild_parameter, (View(self.storage, self.offset, self.size, self.stride, self.v3), True, OrderedDict()))
    if self.v3: return (fake_utils._rebuild_tensor_v3, args + (getattr(fake_torch, self.v3),))
    return (fake_utils._rebuild_tensor_v2, args)

def tensor_of(a: np.ndarray, kind: str | None = None, **kw) -> View:
  """A contiguous tensor holding `a`."""
  st = storage_of(a, kind, **kw)
  strides = tuple(int(np.prod(a.shape[i + 1:])) for i in range(a.ndim))
  v3 = a.dtype.name if st.kind == "UntypedStorage" else None
  return View(st, 0, a.shape, strides, v3)

@dataclass(eq=False)
class StorageView:
  """An old-style storage view (legacy format only): elements [offset, offset + numel) of `root`, known as `key`."""
  root: Storage
  key: str
  offset: int
  numel: int

class TorchPickler(pickle.Pickler):
  """torch.save's pickler: protocol 2, storages as persistent ids (legacy ids carry a 6th element, the view)."""
  def __init__(self, f, legacy: bool = False):
    super().__init__(f, protocol=2)
    self.legacy, self.storages = legacy, {}
  def persistent_id(self, obj):
    if not isinstance(obj, (Storage, StorageView)): return None
    st = obj.root if isinstance(obj, StorageView) else obj
    self.storages[st.key] = st
    stype = fake_storage.UntypedStorage if st.kind == "UntypedStorage" else getattr(fake_torch, st.kind)
    pid = ("storage", stype, st.key, "cpu", st.numel)
    if not self.legacy: return pid
    return pid + ((obj.key, obj.offset, obj.numel) if isinstance(obj, StorageView) else None,)

def dump(obj, legacy: bool = False) -> tuple[bytes, dict[str, Storage]]:
  buf = io.BytesIO()
  with faked_torch():
    p = TorchPickler(buf, legacy)
    p.dump(obj)
  return buf.getvalue(), p.storages

def save_zip(path, obj, folder: str = "archive", byteorder: str = "little", compression: int = zipfile.ZIP_STORED) -> None:
  """The torch >= 1.6 layout; data members get an extra field padding their data to 64 bytes, as torch's writer does."""
  pkl, storages = dump(obj)
  with zipfile.ZipFile(path, "w", compression) as z:
    z.writestr(f"{folder}/data.pkl", pkl)
    z.writestr(f"{folder}/byteorder", byteorder)
    for key, st in storages.items():
      zi = zipfile.ZipInfo(f"{folder}/data/{key}")
      zi.compress_type = compression
      start = z.fp.tell() + 30 + len(zi.filename) + 4
      zi.extra = struct.pack("<HH", 0x4246, -start % 64) + b"Z" * (-start % 64)
      z.writestr(zi, st.data)
    z.writestr(f"{folder}/version", "3\n")

def save_legacy(path, obj) -> None:
  """_use_new_zipfile_serialization=False: magic, protocol, sys_info, object, sorted keys, then count + bytes per key."""
  pkl, storages = dump(obj, legacy=True)
  out = io.BytesIO()
  for header in (0x1950a86a20f9469cfc6c, 1001, {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}):
    pickle.dump(header, out, protocol=2)
  out.write(pkl)
  keys = sorted(storages)
  pickle.dump(keys, out, protocol=2)
  for k in keys: out.write(struct.pack("<q", storages[k].numel) + storages[k].data)
  path.write_bytes(out.getvalue())

def save_tar(path, obj) -> None:
  """The torch < 0.4 tar layout: 'storages', 'tensors' and 'pickle' (tensors as persistent ids) members."""
  tensors: dict[str, View] = {}
  class P(pickle.Pickler):
    def persistent_id(self, o):
      if not isinstance(o, View): return None
      tensors[str(id(o))] = o
      return str(id(o))
  storages = {}
  with faked_torch():
    main = io.BytesIO()
    P(main, protocol=2).dump(obj)
    for t in tensors.values(): storages[t.storage.key] = t.storage
    sf = io.BytesIO()
    pickle.dump(len(storages), sf, protocol=2)
    for st in storages.values():
      pickle.dump((st.key, "cpu", getattr(fake_torch, st.kind)), sf, protocol=2)
      sf.write(struct.pack("<q", st.numel) + st.data)
    pickle.dump([], sf, protocol=2)  # storage views
    tf = io.BytesIO()
    pickle.dump(len(tensors), tf, protocol=2)
    for key, t in tensors.items():
      pickle.dump((int(key), t.storage.key, getattr(fake_torch, t.storage.kind.replace("Storage", "Tensor"))), tf, protocol=2)
      tf.write(struct.pack(f"<iI{len(t.size)}q{len(t.size)}qq", len(t.size), 0, *t.size, *t.stride, t.offset))
  write_tar(path, {"sys_info": pickle.dumps({"little_endian": True}, protocol=2), "storages": sf.getvalue(),
                   "tensors": tf.getvalue(), "pickle": main.getvalue()})

SAVERS = {"zip": save_zip, "legacy": save_legacy, "tar": save_tar}

# ---------------------------------------------------------------- torch_load

def sample(name: str) -> tuple[np.ndarray, str | None]:
  """A (2, 3) array of torch dtype `name` (bfloat16 as uint16 bits) with extreme values, and its storage kind."""
  if name == "bool": return np.array([[True, False, True], [False, False, True]]), None
  if name == "bfloat16":  # 1.0, -2.0, nan with payload, inf, -0.0, smallest subnormal
    return np.array([[0x3F80, 0xC000, 0x7FC1], [0x7F80, 0x8000, 0x0001]], dtype=np.uint16), "BFloat16Storage"
  dt = np.dtype(name)
  if dt.kind == "f": return np.array([[np.nan, np.inf, -np.inf], [-0.0, 1.5, -3.25]], dtype=dt), None
  info = np.iinfo(dt)
  return np.array([[info.min, info.max, 0], [1, info.max - 1, 7]], dtype=dt), None

TORCH_DTYPES = {"float16": dtypes.float16, "bfloat16": dtypes.bfloat16, "float32": dtypes.float32, "float64": dtypes.float64,
                "int8": dtypes.int8, "int16": dtypes.int16, "int32": dtypes.int32, "int64": dtypes.int64, "uint8": dtypes.uint8,
                "bool": dtypes.bool, "uint16": dtypes.uint16, "uint32": dtypes.uint32, "uint64": dtypes.uint64}

@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_torch_load_every_dtype_bit_exact(tmp_path, fmt):
  arrays = {name: sample(name) for name in TORCH_DTYPES}
  SAVERS[fmt](tmp_path / "x.pt", {name: tensor_of(a, kind) for name, (a, kind) in arrays.items()})
  out = torch_load(tmp_path / "x.pt")
  assert list(out) == list(TORCH_DTYPES)
  for name, (a, _) in arrays.items():
    assert out[name].dtype == TORCH_DTYPES[name] and out[name].shape == (2, 3), name
    np.testing.assert_array_equal(bits(out[name]), np_bits(a), err_msg=name)

def test_torch_load_tar_format_dtypes(tmp_path):
  arrays = {name: sample(name) for name in TORCH_DTYPES if name not in ("uint16", "uint32", "uint64")}
  save_tar(tmp_path / "x.tar", {name: tensor_of(a, kind) for name, (a, kind) in arrays.items()})
  out = torch_load(tmp_path / "x.tar")
  for name, (a, _) in arrays.items():
    assert out[name].dtype == TORCH_DTYPES[name], name
    np.testing.assert_array_equal(bits(out[name]), np_bits(a), err_msg=name)

def views_of_one_storage() -> tuple[dict[str, View], dict[str, np.ndarray]]:
  """Tensors sharing one float32 storage of 0..59: transposed, offset, strided, expanded, overlapping, scalar, empty."""
  base = np.arange(60, dtype=np.float32)
  st = storage_of(base)
  views = {"contiguous": View(st, 0, (3, 4), (4, 1)), "transposed": View(st, 0, (4, 3), (1, 4)),
           "offset": View(st, 5, (2, 3), (3, 1)), "offset_transposed": View(st, 7, (3, 2, 2), (1, 3, 12)),
           "every_other": View(st, 1, (2, 5), (20, 2)), "expanded": View(st, 9, (3, 1, 4), (0, 5, 1)),
           "overlapping": View(st, 2, (5, 4), (3, 1)), "scalar": View(st, 42, (), ()), "empty": View(st, 3, (0, 4), (4, 1)),
           "ones": View(st, 11, (1, 2, 1), (7, 5, 3))}
  expected = {k: np.lib.stride_tricks.as_strided(base[v.offset:], v.size, tuple(s * 4 for s in v.stride)) for k, v in views.items()}
  return views, expected

@pytest.mark.parametrize("fmt", ["zip", "legacy", "tar"])
def test_torch_load_views_sharing_one_storage(tmp_path, fmt):
  views, expected = views_of_one_storage()
  SAVERS[fmt](tmp_path / "x.pt", views)
  out = torch_load(tmp_path / "x.pt")
  for k, ref in expected.items():
    assert out[k].shape == ref.shape, k
    np.testing.assert_array_equal(out[k].numpy(), ref, err_msg=k)

def test_torch_load_legacy_storage_views(tmp_path):
  root = storage_of(np.arange(20, dtype=np.int32))
  part = StorageView(root, "view-1", 4, 10)  # elements 4..13
  save_legacy(tmp_path / "x.pt", {"root": View(root, 0, (20,), (1,)), "a": View(part, 2, (2, 3), (1, 2)), "b": View(part, 0, (10,), (1,))})
  out = torch_load(tmp_path / "x.pt")
  np.testing.assert_array_equal(out["root"].numpy(), np.arange(20))
  np.testing.assert_array_equal(out["a"].numpy(), np.arange(6, 12).reshape(3, 2).T)
  np.testing.assert_array_equal(out["b"].numpy(), np.arange(4, 14))

def test_torch_load_nested_dicts_and_python_values(tmp_path):
  w = np.arange(6, dtype=np.float32).reshape(2, 3)
  sd = OrderedDict([("layer.weight", tensor_of(w)), ("layer.bias", View(storage_of(np.ones(3, np.float32)), 0, (3,), (1,), parameter=True))])
  optimizer = {"state": {0: {"step": tensor_of(np.array(3, np.int64))}}, "param_groups": [{"lr": 0.1, "betas": (0.9, 0.99)}]}
  ckpt = {"model": sd, "epoch": 7, "optimizer": optimizer, "tags": {"a", "b"}, "blob": b"\x00\x01", "name": "run"}
  save_zip(tmp_path / "x.pt", ckpt)
  out = torch_load(tmp_path / "x.pt")
  assert isinstance(out["model"], OrderedDict) and list(out["model"]) == ["layer.weight", "layer.bias"]
  np.testing.assert_array_equal(out["model"]["layer.weight"].numpy(), w)
  np.testing.assert_array_equal(out["model"]["layer.bias"].numpy(), np.ones(3, np.float32))  # a Parameter is its data
  assert out["optimizer"]["state"][0]["step"].item() == 3 and out["optimizer"]["param_groups"] == [{"lr": 0.1, "betas": (0.9, 0.99)}]
  assert (out["epoch"], out["tags"], out["blob"], out["name"]) == (7, {"a", "b"}, b"\x00\x01", "run")

def test_torch_load_torch_values_and_tensor_subclasses(tmp_path):
  st = storage_of(np.arange(6, dtype=np.float32))
  ckpt = {"size": Reduced(fake_torch.Size, (2, 3)), "cpu": Reduced(fake_torch.device, "cpu"), "gpu": Reduced(fake_torch.device, "cuda", 1),
          "dtype": fake_torch.float32, "sub": View(st, 0, (3, 2), (1, 3), subclass=True)}
  save_zip(tmp_path / "x.pt", ckpt)
  out = torch_load(tmp_path / "x.pt")
  assert (out["size"], out["cpu"], out["gpu"], out["dtype"].dtype) == ((2, 3), "cpu", "cuda:1", dtypes.float32)
  np.testing.assert_array_equal(out["sub"].numpy(), np.arange(6, dtype=np.float32).reshape(2, 3).T)

def test_torch_load_any_folder_padding_compression_and_tensor_input(tmp_path):
  a = np.arange(12, dtype=np.int16).reshape(3, 4) * 1000
  for i, kw in enumerate([{"folder": "my_model-v2"}, {"compression": zipfile.ZIP_DEFLATED}]):
    save_zip(tmp_path / f"{i}.pt", {"a": tensor_of(a)}, **kw)
    for src in (tmp_path / f"{i}.pt", Tensor((tmp_path / f"{i}.pt").read_bytes())):
      np.testing.assert_array_equal(torch_load(src)["a"].numpy(), a)

def test_torch_load_big_endian_zip(tmp_path):
  a, b = np.array([1.5, -2.0, 3e30], np.float64), np.array([[1, -2], [300, -40000]], np.int32)
  save_zip(tmp_path / "x.pt", {"a": tensor_of(a, big_endian=True), "b": tensor_of(b, big_endian=True)}, byteorder="big")
  out = torch_load(tmp_path / "x.pt")
  np.testing.assert_array_equal(out["a"].numpy(), a)
  np.testing.assert_array_equal(out["b"].numpy(), b)

def test_torch_load_matches_real_torch_save(tmp_path):
  try: import torch
  except ImportError: pytest.skip("torch not installed")
  base = torch.arange(40, dtype=torch.float32) - 20
  sd = {"w": base.reshape(5, 8).t(), "offset": base[5:11].reshape(2, 3), "expand": base[3:4].expand(3, 2), "unfold": base.unfold(0, 4, 2),
        "param": torch.nn.Parameter(torch.randn(3, 2)), "scalar": torch.tensor(2.5), "nested": {"bf16": torch.randn(4, 3).bfloat16().t()}}
  for name in TORCH_DTYPES:
    sd[name] = torch.tensor(sample(name)[0].astype(np.int64 if name.startswith("uint") and name != "uint8" else None)).to(getattr(torch, name)) \
      if name != "bfloat16" else torch.tensor(sample(name)[0].astype(np.int16)).view(torch.bfloat16)
  def check(ref, got, key):
    if isinstance(ref, dict):
      for k in ref: check(ref[k], got[k], k)
      return
    ref = ref.detach()
    assert got.shape == tuple(ref.shape), key
    as_int = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[ref.element_size()]
    want = ref.numpy() if ref.dtype == torch.bool else ref.contiguous().view(as_int).numpy()
    np.testing.assert_array_equal(bits(got), np_bits(want), err_msg=key)
  for kw in ({}, {"_use_new_zipfile_serialization": False}):
    torch.save(sd, tmp_path / "t.pt", **kw)
    check(sd, torch_load(tmp_path / "t.pt"), "")

def test_torch_load_refuses_other_classes(tmp_path):
  class Evil:
    def __reduce__(self): return (os.system, ("echo pwned",))
  save_zip(tmp_path / "evil.pt", {"a": tensor_of(np.ones(2, np.float32)), "x": Evil()})
  with pytest.raises(pickle.UnpicklingError, match=r"torch_load: .*evil.pt: refusing to load posix.system"): torch_load(tmp_path / "evil.pt")
  save_zip(tmp_path / "complex.pt", {"c": View(Storage("0", "ComplexFloatStorage", b"\x00" * 16), 0, (2,), (1,))})
  with pytest.raises(pickle.UnpicklingError, match=r"torch_load: .*complex.pt: refusing to load torch.ComplexFloatStorage"):
    torch_load(tmp_path / "complex.pt")

def test_torch_load_pickle_cannot_modify_the_allowed_globals(tmp_path):
  # PROTO 2, GLOBAL, EMPTY_DICT, BINUNICODE 'dtype', GLOBAL 'torch int8', SETITEM, BUILD, STOP: set torch.FloatStorage.dtype
  build = b"\x80\x02ctorch\nFloatStorage\n}X\x05\x00\x00\x00dtypectorch\nint8\nsb."
  slots = b"\x80\x02ctorch\nFloatStorage\nN}X\x05\x00\x00\x00dtypectorch\nint8\ns\x86b."  # BUILD with (None, slotstate): setattr
  rebuild = build.replace(b"torch\nFloatStorage", b"torch._utils\n_rebuild_tensor_v2")
  for i, pkl in enumerate([build, slots, build.replace(b"FloatStorage", b"float32"), rebuild]):
    with zipfile.ZipFile(tmp_path / f"{i}.pt", "w") as z: z.writestr("archive/data.pkl", pkl)
    with pytest.raises(pickle.UnpicklingError, match=rf"torch_load: .*{i}.pt: the pickle tries to modify torch"): torch_load(tmp_path / f"{i}.pt")
  save_zip(tmp_path / "ok.pt", {"a": tensor_of(np.array([1.5, 2.5], np.float32))})
  out = torch_load(tmp_path / "ok.pt")["a"]
  assert out.dtype == dtypes.float32 and out.tolist() == [1.5, 2.5]

def test_torch_load_errors_name_the_file_and_the_problem(tmp_path):
  save_zip(tmp_path / "x.pt", {"a": tensor_of(np.arange(64, dtype=np.float32))})
  raw = (tmp_path / "x.pt").read_bytes()
  (tmp_path / "cut.pt").write_bytes(raw[:len(raw) // 2])
  with pytest.raises(ValueError, match=r"torch_load: .*cut.pt: truncated or corrupt"): torch_load(tmp_path / "cut.pt")
  (tmp_path / "junk.pt").write_bytes(b"GGUF\x03\x00\x00\x00" + bytes(100))
  with pytest.raises(ValueError, match=r"torch_load: .*junk.pt: not a PyTorch checkpoint: it starts with b'GGUF"): torch_load(tmp_path / "junk.pt")
  pickle.dump({"a": 1}, open(tmp_path / "plain.pkl", "wb"), protocol=2)
  with pytest.raises(ValueError, match=r"torch_load: .*plain.pkl: not a PyTorch checkpoint: the first pickle is \{'a': 1\}, expected the magic"):
    torch_load(tmp_path / "plain.pkl")
  st = storage_of(np.arange(4, dtype=np.float32))
  save_zip(tmp_path / "short.pt", {"a": View(Storage(st.key, st.kind, st.data[:8]), 0, (4,), (1,))})  # numel 2, view reads 4
  with pytest.raises(ValueError, match=r"torch_load: .*short.pt: storage .* reads element 3, but its storage has 2"):
    torch_load(tmp_path / "short.pt")
  save_legacy(tmp_path / "legacy.pt", {"a": tensor_of(np.arange(64, dtype=np.float64))})
  raw = (tmp_path / "legacy.pt").read_bytes()
  (tmp_path / "legacy_cut.pt").write_bytes(raw[:-8])
  with pytest.raises(ValueError, match=r"torch_load: .*legacy_cut.pt: storage '\d+' needs bytes .* but the file has \d+ \(truncated"):
    torch_load(tmp_path / "legacy_cut.pt")

# ---------------------------------------------------------------- gguf

GGUF_FMT = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

def gguf_value(vtype: int, v) -> bytes:
  if vtype in GGUF_FMT: return struct.pack("<" + GGUF_FMT[vtype], v)
  if vtype == 8: return struct.pack("<Q", len(v.encode())) + v.encode()
  etype, items = v  # arrays: (element type, elements)
  return struct.pack("<IQ", etype, len(items)) + b"".join(gguf_value(etype, x) for x in items)

def write_gguf(path, kv: dict, tensors: list[tuple[str, tuple[int, ...], int, bytes]], version: int = 3, alignment: int = 32) -> None:
  """kv: key -> (value type, value); tensors: (name, Tensor shape, ggml type, raw bytes) laid out aligned."""
  out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kv))
  for k, (vtype, v) in kv.items(): out += gguf_value(8, k) + struct.pack("<I", vtype) + gguf_value(vtype, v)
  offset, data = 0, b""
  for name, shape, gtype, raw in tensors:
    out += gguf_value(8, name) + struct.pack(f"<I{len(shape)}QIQ", len(shape), *reversed(shape), gtype, offset)
    pad = -len(raw) % alignment
    data += raw + b"\x00" * pad
    offset += len(raw) + pad
  path.write_bytes(out + b"\x00" * (-len(out) % alignment) + data)

GGUF_KV = {"u8": (0, 255), "i8": (1, -128), "u16": (2, 65535), "i16": (3, -32768), "u32": (4, 4000000000), "i32": (5, -2000000000),
           "f32": (6, 1.5), "bool": (7, True), "str": (8, "llama ünïcode"), "u64": (10, 2**64 - 1), "i64": (11, -2**63),
           "f64": (12, 0.1), "arr.i32": (9, (5, [1, -2, 3])), "arr.str": (9, (8, ["a", "", "<0x0A>"])),
           "arr.nested": (9, (9, [(6, [0.5, 2.0]), (6, [])])), "arr.empty": (9, (4, []))}

def test_gguf_metadata_of_every_value_type(tmp_path):
  from tinygrad.llm.gguf import gguf_load
  for version in (2, 3):
    write_gguf(tmp_path / "m.gguf", GGUF_KV, [], version=version)
    kv, tensors = gguf_load(tmp_path / "m.gguf")
    assert tensors == {}
    assert kv == {"u8": 255, "i8": -128, "u16": 65535, "i16": -32768, "u32": 4000000000, "i32": -2000000000, "f32": 1.5, "bool": True,
                  "str": "llama ünïcode", "u64": 2**64 - 1, "i64": -2**63, "f64": 0.1, "arr.i32": [1, -2, 3],
                  "arr.str": ["a", "", "<0x0A>"], "arr.nested": [[0.5, 2.0], []], "arr.empty": []}
    assert type(kv["bool"]) is bool

GGUF_NATIVE = {0: np.float32, 1: np.float16, 24: np.int8, 25: np.int16, 26: np.int32, 27: np.int64, 28: np.float64}

@pytest.mark.parametrize("alignment", [32, 64])
def test_gguf_native_tensors(tmp_path, alignment):
  from tinygrad.llm.gguf import gguf_load
  rng = np.random.default_rng(0)
  arrays = {f"t{g}": (rng.standard_normal((3, 5)) * 100).astype(npdt) for g, npdt in GGUF_NATIVE.items()}
  bf16 = rng.integers(0, 2**16, (2, 7), dtype=np.uint16)
  kv = {"general.alignment": (4, alignment)} if alignment != 32 else {}
  write_gguf(tmp_path / "n.gguf", kv, [(k, a.shape, int(k[1:]), a.tobytes()) for k, a in arrays.items()] + [("bf16", (2, 7), 30, bf16.tobytes())],
             alignment=alignment)
  for src in (tmp_path / "n.gguf", Tensor((tmp_path / "n.gguf").read_bytes())):
    _, tensors = gguf_load(src)
    for k, a in arrays.items():
      assert tensors[k].shape == a.shape and tensors[k].numpy().dtype == a.dtype, k
      np.testing.assert_array_equal(tensors[k].numpy(), a)
    assert tensors["bf16"].dtype == dtypes.bfloat16
    np.testing.assert_array_equal(bits(tensors["bf16"]), bf16)

# numpy transcriptions of ggml-quants.c dequantize_row_*: (blocks, block bytes) uint8 -> (blocks * block elements) float32
def f16(b: np.ndarray) -> np.ndarray: return b.copy().view(np.float16).astype(np.float32)  # (nb, 2) -> (nb, 1)

def ref_q8_0(b):
  return (f16(b[:, 0:2]) * b[:, 2:34].view(np.int8)).reshape(-1)

def ref_q4_0(b):
  d, qs, y = f16(b[:, 0:2])[:, 0], b[:, 2:18], np.zeros((len(b), 32), np.float32)
  for j in range(16):
    y[:, j] = ((qs[:, j] & 0x0F).astype(np.int32) - 8) * d
    y[:, j + 16] = ((qs[:, j] >> 4).astype(np.int32) - 8) * d
  return y.reshape(-1)

def ref_q4_1(b):
  d, m, qs, y = f16(b[:, 0:2])[:, 0], f16(b[:, 2:4])[:, 0], b[:, 4:20], np.zeros((len(b), 32), np.float32)
  for j in range(16):
    y[:, j] = (qs[:, j] & 0x0F) * d + m
    y[:, j + 16] = (qs[:, j] >> 4) * d + m
  return y.reshape(-1)

def ref_q5(b, has_min):
  o = 4 if has_min else 2
  d, qh, qs = f16(b[:, 0:2])[:, 0], b[:, o:o + 4].copy().view(np.uint32)[:, 0], b[:, o + 4:o + 20]
  m = f16(b[:, 2:4])[:, 0] if has_min else 0
  y = np.zeros((len(b), 32), np.float32)
  for j in range(16):
    xh_0 = ((qh >> j) << 4) & 0x10
    xh_1 = (qh >> (j + 12)) & 0x10
    x0, x1 = (qs[:, j] & 0x0F) | xh_0, (qs[:, j] >> 4) | xh_1
    if has_min: y[:, j], y[:, j + 16] = x0 * d + m, x1 * d + m
    else: y[:, j], y[:, j + 16] = (x0.astype(np.int32) - 16) * d, (x1.astype(np.int32) - 16) * d
  return y.reshape(-1)

def scale_min_k4(j, q):
  if j < 4: return q[:, j] & 63, q[:, j + 4] & 63
  return (q[:, j + 4] & 0xF) | ((q[:, j - 4] >> 6) << 4), (q[:, j + 4] >> 4) | ((q[:, j] >> 6) << 4)

def ref_q4_k(b):
  d, dmin, scales, q, y = f16(b[:, 0:2])[:, 0], f16(b[:, 2:4])[:, 0], b[:, 4:16], b[:, 16:144], []
  for i, j in enumerate(range(0, 256, 64)):
    sc, m = scale_min_k4(2 * i, scales)
    d1, m1 = d * sc, dmin * m
    sc, m = scale_min_k4(2 * i + 1, scales)
    d2, m2 = d * sc, dmin * m
    qq = q[:, 32 * i:32 * i + 32]
    y += [d1[:, None] * (qq & 0xF) - m1[:, None], d2[:, None] * (qq >> 4) - m2[:, None]]
  return np.concatenate(y, axis=1).reshape(-1)

def ref_q5_k(b):
  d, dmin, scales, qh, ql, y = f16(b[:, 0:2])[:, 0], f16(b[:, 2:4])[:, 0], b[:, 4:16], b[:, 16:48], b[:, 48:176], []
  u1, u2 = 1, 2
  for i in range(4):
    sc, m = scale_min_k4(2 * i, scales)
    d1, m1 = d * sc, dmin * m
    sc, m = scale_min_k4(2 * i + 1, scales)
    d2, m2 = d * sc, dmin * m
    qq = ql[:, 32 * i:32 * i + 32]
    y += [d1[:, None] * ((qq & 0xF) + np.where(qh & u1, 16, 0)) - m1[:, None], d2[:, None] * ((qq >> 4) + np.where(qh & u2, 16, 0)) - m2[:, None]]
    u1, u2 = u1 << 2, u2 << 2
  return np.concatenate(y, axis=1).reshape(-1)

def ref_q6_k(b):
  d, y = f16(b[:, 208:210])[:, 0], np.zeros((len(b), 256), np.float32)
  for n in range(2):
    ql, qh = b[:, 64 * n:64 * n + 64].astype(np.int32), b[:, 128 + 32 * n:160 + 32 * n].astype(np.int32)
    sc = b[:, 192 + 8 * n:200 + 8 * n].view(np.int8)
    for l in range(32):
      s = l // 16
      q1 = ((ql[:, l] & 0xF) | (((qh[:, l] >> 0) & 3) << 4)) - 32
      q2 = ((ql[:, l + 32] & 0xF) | (((qh[:, l] >> 2) & 3) << 4)) - 32
      q3 = ((ql[:, l] >> 4) | (((qh[:, l] >> 4) & 3) << 4)) - 32
      q4 = ((ql[:, l + 32] >> 4) | (((qh[:, l] >> 6) & 3) << 4)) - 32
      for g, q in enumerate((q1, q2, q3, q4)): y[:, 128 * n + 32 * g + l] = d * sc[:, s + 2 * g] * q
  return y.reshape(-1)

# ggml type: (block elements, block bytes, byte offsets of f16 fields, reference)
QUANTS = {"Q4_0": (2, 32, 18, (0,), ref_q4_0), "Q4_1": (3, 32, 20, (0, 2), ref_q4_1), "Q5_0": (6, 32, 22, (0,), lambda b: ref_q5(b, False)),
          "Q5_1": (7, 32, 24, (0, 2), lambda b: ref_q5(b, True)), "Q8_0": (8, 32, 34, (0,), ref_q8_0), "Q4_K": (12, 256, 144, (0, 2), ref_q4_k),
          "Q5_K": (13, 256, 176, (0, 2), ref_q5_k), "Q6_K": (14, 256, 210, (208,), ref_q6_k)}

def random_blocks(rng, n_blocks: int, nbytes: int, f16_at: tuple[int, ...]) -> np.ndarray:
  """Random bytes, with finite float16 scales at the f16 fields."""
  b = rng.integers(0, 256, (n_blocks, nbytes), dtype=np.uint8)
  for o in f16_at: b[:, o:o + 2] = (rng.standard_normal((n_blocks, 1)) * 0.1).astype(np.float16).view(np.uint8)
  return b

@pytest.mark.parametrize("quant", list(QUANTS))
def test_gguf_dequantises_like_ggml(tmp_path, quant):
  from tinygrad.llm.gguf import gguf_load
  gtype, per_block, nbytes, f16_at, ref = QUANTS[quant]
  rng = np.random.default_rng(gtype)
  shape = (3, 2 * per_block)
  blocks = random_blocks(rng, 6, nbytes, f16_at)
  write_gguf(tmp_path / "q.gguf", {"general.architecture": (8, "test")},
             [("w", shape, gtype, blocks.tobytes()), ("bias", (4,), 0, np.ones(4, np.float32).tobytes())])
  kv, tensors = gguf_load(tmp_path / "q.gguf")
  assert kv == {"general.architecture": "test"} and tensors["w"].dtype == dtypes.float32 and tensors["w"].shape == shape
  np.testing.assert_allclose(tensors["w"].numpy(), ref(blocks).reshape(shape), rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(tensors["bias"].numpy(), np.ones(4, np.float32))

def test_gguf_load_is_exported_by_nn_state():
  from tinygrad.llm.gguf import gguf_load
  from tinygrad.nn.state import gguf_load as state_gguf_load
  assert state_gguf_load is gguf_load

def test_gguf_errors_name_the_file_and_the_problem(tmp_path):
  from tinygrad.llm.gguf import gguf_load
  (tmp_path / "x.bin").write_bytes(b"PK\x03\x04" + bytes(40))
  with pytest.raises(ValueError, match=r"gguf_load: .*x.bin: not a GGUF file: it starts with b'PK\\x03\\x04', expected b'GGUF'"):
    gguf_load(tmp_path / "x.bin")
  write_gguf(tmp_path / "v1.gguf", {}, [], version=1)
  with pytest.raises(ValueError, match=r"gguf_load: .*v1.gguf: GGUF version 1 .*expected 2 or 3"): gguf_load(tmp_path / "v1.gguf")
  write_gguf(tmp_path / "q2k.gguf", {}, [("w", (256,), 10, bytes(84))])
  with pytest.raises(ValueError, match=r"gguf_load: .*q2k.gguf: tensor 'w' \(shape \(256,\)\) has ggml type 10 \(Q2_K\), which is not supported"):
    gguf_load(tmp_path / "q2k.gguf")
  write_gguf(tmp_path / "odd.gguf", {}, [("w", (48,), 2, bytes(36))])
  with pytest.raises(ValueError, match=r"gguf_load: .*odd.gguf: tensor 'w' .* is Q4_0 but has 48 elements, not a multiple of its 32"):
    gguf_load(tmp_path / "odd.gguf")
  write_gguf(tmp_path / "full.gguf", GGUF_KV, [("w", (4, 4), 0, bytes(64))])
  raw = (tmp_path / "full.gguf").read_bytes()
  (tmp_path / "cut_data.gguf").write_bytes(raw[:-10])
  with pytest.raises(ValueError, match=r"gguf_load: .*cut_data.gguf: tensor 'w' \(shape \(4, 4\)\) needs bytes .* \(truncated or corrupt\)"):
    gguf_load(tmp_path / "cut_data.gguf")
  (tmp_path / "cut_kv.gguf").write_bytes(raw[:60])
  with pytest.raises(ValueError, match=r"gguf_load: .*cut_kv.gguf: .* \(truncated or corrupt\)"): gguf_load(tmp_path / "cut_kv.gguf")
  (tmp_path / "badtype.gguf").write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + gguf_value(8, "k") + struct.pack("<I", 13))
  with pytest.raises(ValueError, match=r"gguf_load: .*badtype.gguf: metadata 'k' has value type 13, expected one of 0..12"):
    gguf_load(tmp_path / "badtype.gguf")
