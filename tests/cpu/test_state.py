"""State dicts and safetensors: names and parameter lists, a byte-exact round trip for every dtype, the on-disk layout
parsed by hand, a cross-check against the `safetensors` package, atomic saves, and load_state_dict's errors."""
import json, os, struct
import numpy as np
import pytest
import ml_dtypes
from tinygrad import Tensor, nn, dtypes
from tinygrad.nn.state import get_state_dict, get_parameters, load_state_dict, safe_save, safe_load, safe_load_metadata

# safetensors dtype name -> numpy storage dtype
SAFE_NP = {"F16": np.float16, "BF16": ml_dtypes.bfloat16, "F32": np.float32, "F64": np.float64, "I8": np.int8,
           "I16": np.int16, "I32": np.int32, "I64": np.int64, "U8": np.uint8, "U16": np.uint16, "U32": np.uint32,
           "U64": np.uint64, "BOOL": np.bool_}

def sample(code: str) -> np.ndarray:
  """A (2, 3) array of dtype `code` with its extreme values (and nan/inf/-0 for floats)."""
  dt = np.dtype(SAFE_NP[code])
  if code == "BOOL": vals = [True, False, True, True, False, False]
  elif dt.kind in "iu":
    info = np.iinfo(dt)
    vals = [info.min, info.max, 0, 1, info.max - 1, info.min + 1 if dt.kind == "i" else 7]
  else: vals = [np.nan, np.inf, -np.inf, -0.0, 1.5, -3.25]
  return np.array(vals, dtype=object).astype(dt).reshape(2, 3) if dt.kind in "iu" else np.array(vals).astype(dt).reshape(2, 3)

class Block:
  def __init__(self): self.lin, self.norm = nn.Linear(3, 3), nn.LayerNorm(3)

class Net:
  def __init__(self):
    self.l1 = nn.Linear(4, 3)
    self.l2 = nn.Linear(3, 2, bias=False)
    self.blocks = [Block(), Block()]
    self.extra = {"scale": Tensor([2.0])}
  def __call__(self, x: Tensor) -> Tensor:
    x = self.l1(x)
    for b in self.blocks: x = b.norm(b.lin(x))
    return self.l2(x) * self.extra["scale"]

# ---------------------------------------------------------------- get_state_dict, get_parameters

def test_state_dict_names_are_dotted_attribute_paths():
  assert set(get_state_dict(Net())) == {
    "l1.weight", "l1.bias", "l2.weight", "blocks.0.lin.weight", "blocks.0.lin.bias", "blocks.0.norm.weight",
    "blocks.0.norm.bias", "blocks.1.lin.weight", "blocks.1.lin.bias", "blocks.1.norm.weight", "blocks.1.norm.bias",
    "extra.scale"}

def test_state_dict_values_are_the_model_tensors():
  net = Net()
  sd = get_state_dict(net)
  assert sd["l1.weight"] is net.l1.weight and sd["blocks.1.norm.bias"] is net.blocks[1].norm.bias

def test_state_dict_includes_batchnorm_buffers():
  assert set(get_state_dict(nn.BatchNorm2d(4))) == {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}

def test_state_dict_prefix():
  assert set(get_state_dict(nn.Linear(2, 2), prefix="enc.")) == {"enc.weight", "enc.bias"}

def test_get_parameters_lists_every_tensor_once():
  net = Net()
  net.blocks[1].lin = net.blocks[0].lin  # shared layer
  ps = get_parameters(net)
  assert len(ps) == len({id(p) for p in ps}) == 10  # 12 names, the shared Linear counted once
  assert any(p is net.blocks[0].lin.weight for p in ps)

# ---------------------------------------------------------------- round trip and layout

@pytest.mark.parametrize("code", sorted(SAFE_NP))
def test_safe_save_load_round_trip_is_byte_exact(code, tmp_path):
  a = sample(code)
  fn = str(tmp_path / "t.safetensors")
  safe_save({"x": Tensor(a)}, fn)
  out = safe_load(fn)["x"]
  assert out.dtype == Tensor(a).dtype and out.shape == (2, 3)
  assert out.numpy().tobytes() == a.tobytes()

@pytest.mark.parametrize("shape", [(), (0,), (1,), (2, 0, 3), (2, 3, 4)])
def test_safe_save_load_round_trip_shapes(shape, tmp_path):
  a = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
  fn = str(tmp_path / "t.safetensors")
  safe_save({"x": Tensor(a)}, fn)
  out = safe_load(fn)["x"].numpy()
  assert out.shape == shape and out.tobytes() == a.tobytes()

def test_safe_save_round_trips_lazy_and_strided_tensors(tmp_path):
  t = Tensor(np.arange(12, dtype=np.float32).reshape(3, 4)).T[1:, ::2] * 2  # not yet realized, not contiguous
  fn = str(tmp_path / "t.safetensors")
  safe_save({"x": t}, fn)
  np.testing.assert_array_equal(safe_load(fn)["x"].numpy(), (np.arange(12, dtype=np.float32).reshape(3, 4).T[1:, ::2] * 2))

def _parse(fn: str) -> tuple[int, dict, bytes]:
  raw = open(fn, "rb").read()
  (n,) = struct.unpack("<Q", raw[:8])
  return n, json.loads(raw[8:8 + n]), raw[8 + n:]

def test_safetensors_layout_parsed_by_hand(tmp_path):
  a, b = sample("I16"), np.array([1.5, -2.0, 0.25], dtype=np.float64)
  fn = str(tmp_path / "t.safetensors")
  safe_save({"a": Tensor(a), "b": Tensor(b)}, fn)
  n, header, data = _parse(fn)
  assert header["a"] == {"dtype": "I16", "shape": [2, 3], "data_offsets": [0, 12]}
  assert header["b"] == {"dtype": "F64", "shape": [3], "data_offsets": [12, 36]}
  assert len(data) == 36  # the data section holds the tensors back to back, nothing after
  assert data[0:12] == a.astype("<i2").tobytes() and data[12:36] == b.astype("<f8").tobytes()

def test_safetensors_header_length_counts_padding(tmp_path):
  fn = str(tmp_path / "t.safetensors")
  safe_save({"x": Tensor([1.0, 2.0])}, fn)
  n, _, data = _parse(fn)
  assert os.path.getsize(fn) == 8 + n + len(data) and len(data) == 8

def test_safetensors_metadata_is_stored_as_strings(tmp_path):
  fn = str(tmp_path / "t.safetensors")
  safe_save({"x": Tensor([1.0])}, fn, metadata={"format": "pt", "step": 3})
  assert _parse(fn)[1]["__metadata__"] == {"format": "pt", "step": "3"}
  assert set(safe_load(fn)) == {"x"}

def test_safe_load_metadata_reports_data_start(tmp_path):
  fn = str(tmp_path / "t.safetensors")
  safe_save({"x": Tensor([1.0, 2.0])}, fn)
  start, header = safe_load_metadata(fn)
  assert start == 8 + _parse(fn)[0] and header["x"]["dtype"] == "F32"

def test_safe_load_reads_a_hand_written_file(tmp_path):
  payload = np.array([[1, -2], [3, 4]], dtype="<i4").tobytes() + np.array([True, False]).tobytes()
  header = json.dumps({"m": {"dtype": "I32", "shape": [2, 2], "data_offsets": [0, 16]},
                       "k": {"dtype": "BOOL", "shape": [2], "data_offsets": [16, 18]}}).encode()
  fn = tmp_path / "hand.safetensors"
  fn.write_bytes(struct.pack("<Q", len(header)) + header + payload)
  out = safe_load(str(fn))
  np.testing.assert_array_equal(out["m"].numpy(), [[1, -2], [3, 4]])
  assert out["k"].dtype == dtypes.bool and out["k"].numpy().tolist() == [True, False]

@pytest.mark.parametrize("content", [b"", b"\x01\x02", struct.pack("<Q", 10 ** 9) + b"{}", struct.pack("<Q", 4) + b"{no}"],
                         ids=["empty", "short", "huge_header_length", "bad_json"])
def test_safe_load_rejects_corrupt_file(content, tmp_path):
  fn = tmp_path / "bad.safetensors"
  fn.write_bytes(content)
  with pytest.raises(ValueError, match="safe_load"):
    safe_load(str(fn))

def test_safe_load_truncated_data_raises_naming_the_tensor(tmp_path):
  fn = str(tmp_path / "t.safetensors")
  safe_save({"weights": Tensor([1.0, 2.0, 3.0, 4.0])}, fn)
  raw = open(fn, "rb").read()
  open(fn, "wb").write(raw[:-4])  # the last element is cut off
  with pytest.raises(ValueError, match=r"safe_load.*weights"):
    safe_load(fn)

# ---------------------------------------------------------------- cross-check with the safetensors package

def _safetensors_numpy():
  return pytest.importorskip("safetensors.numpy", reason="the safetensors package is not installed (pip install safetensors)")

@pytest.mark.parametrize("code", sorted(SAFE_NP))
def test_file_written_here_loads_in_safetensors(code, tmp_path):
  st_np = _safetensors_numpy()
  a = sample(code)
  fn = str(tmp_path / "t.safetensors")
  safe_save({"x": Tensor(a), "y": Tensor(np.arange(5, dtype=np.int64))}, fn)
  out = st_np.load_file(fn)
  assert out["x"].dtype == a.dtype and out["x"].tobytes() == a.tobytes()
  np.testing.assert_array_equal(out["y"], np.arange(5))

@pytest.mark.parametrize("code", sorted(SAFE_NP))
def test_file_written_by_safetensors_loads_here(code, tmp_path):
  st_np = _safetensors_numpy()
  a = sample(code)
  fn = str(tmp_path / "t.safetensors")
  st_np.save_file({"x": a, "y": np.ones((3, 1), dtype=np.float32)}, fn, metadata={"k": "v"})
  out = safe_load(fn)
  assert out["x"].numpy().tobytes() == a.tobytes() and out["x"].shape == (2, 3)
  np.testing.assert_array_equal(out["y"].numpy(), np.ones((3, 1)))

# ---------------------------------------------------------------- atomic save

def _old_file(tmp_path) -> tuple[str, bytes]:
  fn = str(tmp_path / "model.safetensors")
  safe_save({"w": Tensor([1.0, 2.0, 3.0])}, fn)
  return fn, open(fn, "rb").read()

def test_failed_fsync_leaves_old_file_intact(tmp_path, monkeypatch):
  fn, before = _old_file(tmp_path)
  def boom(fd): raise OSError(28, "No space left on device")
  monkeypatch.setattr(os, "fsync", boom)
  with pytest.raises(OSError):
    safe_save({"w": Tensor([9.0, 9.0, 9.0, 9.0])}, fn)
  assert open(fn, "rb").read() == before

def test_failed_write_mid_file_leaves_old_file_intact(tmp_path, monkeypatch):
  fn, before = _old_file(tmp_path)
  real_fdopen = os.fdopen
  class Failing:
    def __init__(self, f): self.f, self.n = f, 0
    def __enter__(self): return self
    def __exit__(self, *a): self.f.close()
    def write(self, b):
      self.n += 1
      if self.n == 3: raise OSError(5, "Input/output error")  # after the length and the header: inside the data
      return self.f.write(b)
    def __getattr__(self, k): return getattr(self.f, k)
  monkeypatch.setattr(os, "fdopen", lambda *a, **k: Failing(real_fdopen(*a, **k)))
  with pytest.raises(OSError):
    safe_save({"w": Tensor([9.0, 9.0, 9.0, 9.0])}, fn)
  assert open(fn, "rb").read() == before

def test_failed_save_leaves_no_temporary_files(tmp_path, monkeypatch):
  fn, _ = _old_file(tmp_path)
  monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "No space left on device")))
  with pytest.raises(OSError):
    safe_save({"w": Tensor([9.0])}, fn)
  assert sorted(os.listdir(tmp_path)) == ["model.safetensors"]

def test_save_of_a_non_tensor_value_leaves_old_file_intact(tmp_path):
  fn, before = _old_file(tmp_path)
  with pytest.raises((TypeError, AttributeError)):
    safe_save({"w": Tensor([9.0]), "bad": [1, 2, 3]}, fn)
  assert open(fn, "rb").read() == before

def test_failing_tensor_computation_leaves_old_file_intact(tmp_path, monkeypatch):
  fn, before = _old_file(tmp_path)
  good = Tensor([9.0])
  real_numpy = Tensor.numpy
  def numpy(self):
    if self is not good: raise RuntimeError("kernel failed")
    return real_numpy(self)
  monkeypatch.setattr(Tensor, "numpy", numpy)
  with pytest.raises(RuntimeError):
    safe_save({"w": good, "v": Tensor([1.0]) * 2}, fn)
  assert open(fn, "rb").read() == before

def test_successful_save_replaces_old_file(tmp_path):
  fn, _ = _old_file(tmp_path)
  safe_save({"v": Tensor([7, 8], dtype=dtypes.int8)}, fn)
  out = safe_load(fn)
  assert set(out) == {"v"} and out["v"].numpy().tolist() == [7, 8]

# ---------------------------------------------------------------- load_state_dict

def _sd(model) -> dict: return {k: Tensor(v.numpy()) for k, v in get_state_dict(model).items()}

def test_load_state_dict_copies_values():
  src, dst = Net(), Net()
  load_state_dict(dst, _sd(src))
  x = Tensor(np.random.default_rng(0).uniform(-1, 1, (2, 4)).astype(np.float32))
  np.testing.assert_array_equal(dst(x).numpy(), src(x).numpy())

def test_load_state_dict_missing_keys_named():
  sd = _sd(Net())
  del sd["l2.weight"], sd["blocks.1.lin.bias"]
  with pytest.raises(RuntimeError, match=r"missing.*l2\.weight") as e:
    load_state_dict(Net(), sd)
  assert "blocks.1.lin.bias" in str(e.value)

def test_load_state_dict_unexpected_keys_named():
  sd = _sd(Net())
  sd["decoder.weight"] = Tensor([1.0])
  with pytest.raises(RuntimeError, match=r"unexpected.*decoder\.weight"):
    load_state_dict(Net(), sd)

def test_load_state_dict_shape_mismatch_names_key_and_shapes():
  sd = _sd(Net())
  sd["l1.weight"] = Tensor(np.zeros((4, 3), np.float32))
  with pytest.raises(RuntimeError, match=r"l1\.weight.*\(4, 3\).*\(3, 4\)"):
    load_state_dict(Net(), sd)

def test_load_state_dict_error_leaves_model_unchanged():
  net = Net()
  before = net.l1.weight.numpy()
  sd = {k: Tensor(np.zeros(v.shape, np.float32)) for k, v in get_state_dict(Net()).items()}
  sd["l2.weight"] = Tensor(np.zeros((5, 5), np.float32))
  with pytest.raises(RuntimeError):
    load_state_dict(net, sd)
  np.testing.assert_array_equal(net.l1.weight.numpy(), before)

def test_load_state_dict_non_strict_loads_what_matches():
  net = Net()
  keep = net.l2.weight.numpy()
  sd = {"l1.weight": Tensor(np.full((3, 4), 0.5, np.float32)), "l1.bias": Tensor(np.zeros(3, np.float32)),
        "unused.weight": Tensor([1.0])}
  load_state_dict(net, sd, strict=False)
  np.testing.assert_array_equal(net.l1.weight.numpy(), np.full((3, 4), 0.5))
  np.testing.assert_array_equal(net.l1.bias.numpy(), np.zeros(3))
  np.testing.assert_array_equal(net.l2.weight.numpy(), keep)

def test_load_state_dict_casts_to_model_dtype():
  lin = nn.Linear(2, 2)
  load_state_dict(lin, {"weight": Tensor(np.eye(2)), "bias": Tensor(np.array([1, 2], dtype=np.int32))})
  assert lin.weight.dtype == dtypes.float32 and lin.bias.dtype == dtypes.float32
  np.testing.assert_array_equal(lin.bias.numpy(), [1.0, 2.0])

def test_loaded_tensor_is_independent_of_the_checkpoint_tensor():
  lin = nn.Linear(2, 2)
  w = Tensor(np.ones((2, 2), np.float32))
  load_state_dict(lin, {"weight": w, "bias": Tensor(np.zeros(2, np.float32))})
  w.assign(Tensor(np.zeros((2, 2), np.float32))).realize()
  np.testing.assert_array_equal(lin.weight.numpy(), np.ones((2, 2)))

def test_model_round_trips_through_safetensors(tmp_path):
  src, dst = Net(), Net()
  fn = str(tmp_path / "net.safetensors")
  safe_save(get_state_dict(src), fn)
  load_state_dict(dst, safe_load(fn))
  for k, v in get_state_dict(src).items():
    assert get_state_dict(dst)[k].numpy().tobytes() == v.numpy().tobytes(), k

def test_loaded_params_still_train():
  lin = nn.Linear(2, 1)
  load_state_dict(lin, {"weight": Tensor([[1.0, 2.0]]), "bias": Tensor([0.5])})
  opt = nn.optim.SGD([lin.weight, lin.bias], lr=0.1)
  lin(Tensor([[1.0, 1.0]])).sum().backward()
  opt.step()
  np.testing.assert_allclose(lin.weight.numpy(), [[0.9, 1.9]], rtol=1e-6)
  np.testing.assert_allclose(lin.bias.numpy(), [0.4], rtol=1e-6)
