"""Disk tensors (runtime/disk.py): a file's bytes as a uint8 tensor on DISK:<path>, memory-mapped. Views that are one
byte range (slices, reshape, bitcast) copy exactly their bytes when read; writes go into the file; safe_load and the
other loaders read through the disk device, so a tensor's bytes are read only when it is realized."""
import os, pathlib
import numpy as np
import pytest
from tinygrad import Tensor, dtypes, Device
from tinygrad.helpers import GlobalCounters
from tinygrad.nn.state import safe_save, safe_load, SAFE_DTYPES, tar_extract, _file_bytes
from tinygrad.dtype import to_np_dtype
import runtime.disk as disk

def write(path, data: bytes) -> pathlib.Path:
  path = pathlib.Path(path)
  path.write_bytes(data)
  return path

@pytest.fixture
def copies(monkeypatch):
  """Every copy out of a disk mapping, as (byte offset in the file, byte count); np.fromfile is refused."""
  log = []
  real = disk.DiskBuffer.copyout
  def copyout(self, dst_ptr, nbytes):
    log.append((self.offset, nbytes))
    return real(self, dst_ptr, nbytes)
  monkeypatch.setattr(disk.DiskBuffer, "copyout", copyout)
  monkeypatch.setattr(np, "fromfile", lambda *a, **k: pytest.fail("np.fromfile: a whole-file read"))
  return log

# ---------------------------------------------------------------- device names and creation

def test_canonicalize_keeps_the_path_case():
  assert Device.canonicalize("disk:/Tmp/Weights.BIN") == "DISK:/Tmp/Weights.BIN"
  assert Device.canonicalize("DISK:rel/A.bin") == "DISK:rel/A.bin"
  assert Device.canonicalize("cpu") == "CPU"

def test_disk_without_a_path_is_a_clear_error():
  with pytest.raises(ValueError, match="DISK device names a file"): Device.canonicalize("disk")

def test_path_tensor_is_the_file_as_uint8_and_reads_nothing(tmp_path, copies):
  p = write(tmp_path / "f.bin", bytes(range(100)))
  t = Tensor(p)
  assert (t.shape, t.dtype, t.device) == ((100,), dtypes.uint8, f"DISK:{p.resolve()}")
  assert copies == []
  assert t.numpy().tobytes() == bytes(range(100)) and copies == [(0, 100)]

def test_path_tensor_with_a_device_is_a_lazy_copy_there(tmp_path, copies):
  p = write(tmp_path / "f.bin", bytes(range(10)))
  t = Tensor(p, device="CPU")
  assert t.device == "CPU" and copies == []
  assert t.numpy().tolist() == list(range(10))

# ---------------------------------------------------------------- views read only their bytes

def test_view_of_the_last_16_bytes_of_a_64mb_sparse_file_copies_16_bytes(tmp_path, copies):
  p = tmp_path / "sparse.bin"
  with open(p, "wb") as f:
    f.truncate(64 << 20)
    f.seek((64 << 20) - 16)
    f.write(bytes(range(16)))
  t = Tensor(p)
  v = t[-16:]
  assert v.device == t.device and v.numpy().tobytes() == bytes(range(16))
  assert copies == [((64 << 20) - 16, 16)]
  assert v.to("CPU").realize().numpy().tobytes() == bytes(range(16))
  assert copies == [((64 << 20) - 16, 16)] * 2

@pytest.mark.parametrize("offset,n", [(0, 4), (12, 8), (36, 28), (64, 0)])
def test_shrink_then_bitcast_reads_exactly_its_range(tmp_path, copies, offset, n):
  a = np.arange(16, dtype=np.float32)
  t = Tensor(write(tmp_path / "f.bin", a.tobytes()))
  v = t[offset:offset + n].bitcast(dtypes.float32)
  np.testing.assert_array_equal(v.to("CPU").numpy(), a[offset // 4:(offset + n) // 4])
  assert copies == ([(offset, n)] if n else [])

def test_copy_of_a_view_runs_no_kernel(tmp_path):
  a = np.arange(16, dtype=np.int32)
  t = Tensor(write(tmp_path / "f.bin", a.tobytes()))
  before = GlobalCounters.kernel_count
  out = t[8:24].bitcast(dtypes.int32).to("CPU").realize()
  assert GlobalCounters.kernel_count == before
  np.testing.assert_array_equal(out.numpy(), a[2:6])

def test_reshape_and_integer_index_are_views(tmp_path, copies):
  a = np.arange(24, dtype=np.int16)
  t = Tensor(write(tmp_path / "f.bin", a.tobytes())).bitcast(dtypes.int16).reshape(2, 3, 4)
  np.testing.assert_array_equal(t[1].numpy(), a.reshape(2, 3, 4)[1])
  np.testing.assert_array_equal(t[1, 2].numpy(), a.reshape(2, 3, 4)[1, 2])
  assert t[0, 1, 3].item() == a.reshape(2, 3, 4)[0, 1, 3]
  assert copies == [(24, 24), (40, 8), (14, 2)]

def test_bitcast_between_itemsizes_needs_whole_elements(tmp_path):
  a = np.arange(8, dtype=np.float32)
  t = Tensor(write(tmp_path / "f.bin", a.tobytes()))
  f32 = t.bitcast(dtypes.float32).reshape(4, 2)
  np.testing.assert_array_equal(f32.bitcast(dtypes.float64).numpy(), a.reshape(4, 2).view(np.float64))
  np.testing.assert_array_equal(f32.bitcast(dtypes.uint16).numpy(), a.reshape(4, 2).view(np.uint16))
  with pytest.raises(ValueError, match=r"bitcast: .*6 bytes, not a whole number of 4-byte"):
    t[:6].bitcast(dtypes.float32)

def test_strided_view_copies_its_covering_rows_and_computes_on_cpu(tmp_path, copies):
  a = np.arange(64, dtype=np.float32).reshape(8, 8)
  t = Tensor(write(tmp_path / "f.bin", a.tobytes())).bitcast(dtypes.float32).reshape(8, 8)
  np.testing.assert_array_equal(t[2:4, 1:3].to("CPU").numpy(), a[2:4, 1:3])
  assert copies == [(2 * 32, 2 * 32)]  # rows 2..3, not the file
  np.testing.assert_array_equal((t.permute(1, 0).to("CPU") * 2).numpy(), a.T * 2)

def test_compute_on_a_disk_tensor_says_to_copy_it_first(tmp_path):
  t = Tensor(write(tmp_path / "f.bin", bytes(8)))
  with pytest.raises(RuntimeError, match=r"cannot be computed on .*t\.to\('CPU'\)"):
    (t + 1).numpy()
  assert (t.to("CPU") + 1).numpy().tolist() == [1] * 8

# ---------------------------------------------------------------- writing

@pytest.mark.parametrize("dt", [dtypes.uint8, dtypes.int32, dtypes.float16, dtypes.float64])
def test_assign_then_read_round_trips_through_the_file(tmp_path, dt):
  a = (np.arange(12) * 3 - 7).astype(to_np_dtype(dt))
  fn = tmp_path / "w.bin"
  w = Tensor.empty(3, 4, dtype=dt, device=f"disk:{fn}")
  assert w.assign(Tensor(a.reshape(3, 4))) is w
  assert fn.read_bytes() == a.tobytes()
  np.testing.assert_array_equal(Tensor(fn).bitcast(dt).reshape(3, 4).numpy(), a.reshape(3, 4))

def test_assign_into_a_byte_range_leaves_the_rest(tmp_path):
  fn = write(tmp_path / "w.bin", b"\xaa" * 16)
  t = Tensor(fn)
  t[4:12].bitcast(dtypes.float32).assign([1.5, -2.0])
  t[12:].assign(7)  # a scalar, broadcast
  assert fn.read_bytes() == b"\xaa" * 4 + np.array([1.5, -2.0], np.float32).tobytes() + b"\x07" * 4

def test_assign_casts_and_reads_computed_values(tmp_path):
  fn = tmp_path / "w.bin"
  w = Tensor.empty(4, dtype=dtypes.int32, device=f"disk:{fn}")
  w.assign(Tensor([0.5, 1.5, 2.5, 3.5]) * 2)
  assert np.frombuffer(fn.read_bytes(), np.int32).tolist() == [1, 3, 5, 7]

def test_to_disk_writes_the_file_when_realized(tmp_path):
  fn = tmp_path / "x.bin"
  x = Tensor([1, 2, 3], dtype=dtypes.int32).to(f"disk:{fn}")
  assert not fn.exists()
  x.realize()
  assert fn.read_bytes() == np.array([1, 2, 3], np.int32).tobytes() and x.numpy().tolist() == [1, 2, 3]

def test_views_see_writes_to_the_file(tmp_path):
  t = Tensor(write(tmp_path / "w.bin", bytes(8)))
  lazy = t[2:4].to("CPU")
  t[2:4].assign([5, 6])
  assert lazy.numpy().tolist() == [5, 6]

# ---------------------------------------------------------------- errors

def test_missing_file_names_it(tmp_path):
  with pytest.raises(FileNotFoundError, match="nope.bin: no such file"): Tensor(tmp_path / "nope.bin")

def test_directory_is_refused(tmp_path):
  with pytest.raises(IsADirectoryError, match="not a regular file"): Tensor(tmp_path)

def test_file_in_a_missing_folder_names_the_device(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"DISK:.*cannot open the file"):
    Tensor.empty(4, dtype=dtypes.uint8, device=f"disk:{tmp_path}/no/such/dir/f.bin").numpy()

def test_out_of_range_view_is_refused(tmp_path):
  t = Tensor(write(tmp_path / "f.bin", bytes(16)))
  with pytest.raises(ValueError, match="shrink"): t.shrink(((8, 20),))

def test_non_uint8_dtype_for_a_path_is_refused(tmp_path):
  with pytest.raises(TypeError, match="bitcast"): Tensor(write(tmp_path / "f.bin", bytes(16)), dtype=dtypes.float32)

def test_file_truncated_under_the_mapping_is_an_error_not_a_crash(tmp_path):
  p = write(tmp_path / "f.bin", bytes(3 * 4096))
  t = Tensor(p)
  os.truncate(p, 100)
  with pytest.raises(OSError, match="truncated to 100 bytes"): t[8192:8200].numpy()

def test_assign_to_a_lazy_disk_view_is_refused(tmp_path):
  t = Tensor(write(tmp_path / "f.bin", bytes(16))).reshape(4, 4)
  with pytest.raises(RuntimeError, match="one byte range"): t.permute(1, 0).assign(Tensor.zeros(4, 4, dtype=dtypes.uint8))
  with pytest.raises(ValueError, match="assign: cannot broadcast"): t.assign(Tensor.zeros(3, dtype=dtypes.uint8))
  with pytest.raises(ValueError, match="assign: cannot assign shape"): t[0].assign(Tensor.zeros(2, 4, dtype=dtypes.uint8))

def test_read_only_file_reads_but_refuses_writes(tmp_path, monkeypatch):
  p = write(tmp_path / "ro.bin", bytes(range(8)))
  real_open = os.open
  def open_read_only(path, flags, *a):  # what os.open does for a 0o444 file when not root
    if flags & os.O_RDWR and str(path) == str(p.resolve()): raise PermissionError(13, "Permission denied", path)
    return real_open(path, flags, *a)
  monkeypatch.setattr(os, "open", open_read_only)
  t = Tensor(p)
  assert t.numpy().tolist() == list(range(8))
  with pytest.raises(PermissionError, match="read-only"): t.assign(Tensor.zeros(8, dtype=dtypes.uint8))
  with pytest.raises(PermissionError, match="read-only"): Tensor.empty(16, dtype=dtypes.uint8, device=t.device).numpy()  # cannot grow
  assert p.read_bytes() == bytes(range(8))

def test_empty_file_is_an_empty_tensor(tmp_path):
  t = Tensor(write(tmp_path / "e.bin", b""))
  assert t.shape == (0,) and t.numpy().size == 0 and t[0:0].to("CPU").numpy().size == 0

def test_replaced_file_keeps_serving_the_mapped_bytes(tmp_path):
  p = write(tmp_path / "f.bin", b"old!")
  t = Tensor(p)
  os.replace(write(tmp_path / "g.bin", b"new!"), p)
  assert t.numpy().tobytes() == b"old!" and Tensor(p).numpy().tobytes() == b"new!"

# ---------------------------------------------------------------- loaders through the disk device

def sample(dt, shape=(3, 5)) -> np.ndarray:
  rng = np.random.default_rng(0)
  if dt == dtypes.bool: return rng.integers(0, 2, shape).astype(bool)
  return rng.integers(0, 256, (*shape, dt.itemsize), dtype=np.uint8).view(to_np_dtype(dt)).reshape(shape)

@pytest.mark.parametrize("code", sorted(SAFE_DTYPES))
def test_safe_load_through_disk_matches_the_in_memory_path(code, tmp_path, copies):
  dt = SAFE_DTYPES[code]
  fn = str(tmp_path / "m.safetensors")
  safe_save({"x": Tensor(sample(dt)), "s": Tensor(sample(dt, ())), "e": Tensor(sample(dt, (0, 2)))}, fn)
  from_disk = safe_load(fn)
  in_memory = safe_load(Tensor(np.frombuffer(open(fn, "rb").read(), np.uint8)))
  for k in ("x", "s", "e"):
    a, b = from_disk[k], in_memory[k]
    assert (a.device, a.dtype, a.shape) == (b.device, b.dtype, b.shape) == (Device.DEFAULT, dt, b.shape)
    assert a.numpy().tobytes() == b.numpy().tobytes() == sample(dt, b.shape).tobytes()

def test_safe_load_reads_the_header_then_each_tensor_only_when_realized(tmp_path, copies):
  fn = str(tmp_path / "m.safetensors")
  a, b = np.arange(1000, dtype=np.float32), np.arange(7, dtype=np.int64)
  safe_save({"a": Tensor(a), "b": Tensor(b)}, fn)
  out = safe_load(fn)
  header = 8 + int.from_bytes(open(fn, "rb").read(8), "little")
  assert sum(n for _, n in copies) == header
  del copies[:]
  np.testing.assert_array_equal(out["b"].numpy(), b)
  assert copies == [(header + 4000, 56)]
  np.testing.assert_array_equal((out["a"] + 1).numpy(), a + 1)
  assert copies[1:] == [(header, 4000)]

def test_safe_load_of_a_disk_tensor_maps_the_file(tmp_path, copies):
  fn = tmp_path / "m.safetensors"
  safe_save({"w": Tensor([1.0, 2.0])}, str(fn))
  out = safe_load(Tensor(fn))
  assert out["w"].numpy().tolist() == [1.0, 2.0] and sum(n for _, n in copies) == fn.stat().st_size

def test_tensors_loaded_before_an_atomic_save_keep_their_values(tmp_path):
  fn = str(tmp_path / "m.safetensors")
  safe_save({"w": Tensor([1.0, 2.0, 3.0])}, fn)
  old = safe_load(fn)["w"]
  safe_save({"w": old * 10}, fn)  # reads the old file, then renames a new one over it
  assert old.numpy().tolist() == [1.0, 2.0, 3.0] and safe_load(fn)["w"].numpy().tolist() == [10.0, 20.0, 30.0]

def test_failed_save_over_a_loaded_file_leaves_it_and_its_tensors(tmp_path, monkeypatch):
  fn = str(tmp_path / "m.safetensors")
  safe_save({"w": Tensor([1.0, 2.0])}, fn)
  before, w = open(fn, "rb").read(), safe_load(fn)["w"]
  monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "No space left on device")))
  with pytest.raises(OSError): safe_save({"w": w + 1}, fn)
  assert open(fn, "rb").read() == before and w.numpy().tolist() == [1.0, 2.0]
  assert sorted(os.listdir(tmp_path)) == ["m.safetensors"]

def test_file_bytes_is_a_lazy_copy_of_its_range(tmp_path, copies):
  p = write(tmp_path / "f.bin", bytes(range(200)))
  t = _file_bytes(str(p), 50, 10)
  assert t.device == Device.DEFAULT and copies == []
  assert t.numpy().tolist() == list(range(50, 60)) and copies == [(50, 10)]
  with pytest.raises(ValueError, match=r"_file_bytes: .*f\.bin: wanted 10 bytes at offset 195, but the file has 200"):
    _file_bytes(str(p), 195, 10)

def test_tar_members_are_lazy_copies_out_of_the_file(tmp_path):
  import io, tarfile
  fn = tmp_path / "a.tar"
  with tarfile.open(fn, "w") as tar:
    for name, data in {"x": bytes(range(256)) * 40, "y": b"hello"}.items():
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
  out = tar_extract(fn)
  assert out["x"].device == Device.DEFAULT and out["x"].numpy().tobytes() == bytes(range(256)) * 40
  assert out["y"].numpy().tobytes() == b"hello"

def test_data_is_never_written_into_a_file_as_a_temporary(tmp_path):
  p = write(tmp_path / "f.bin", bytes(range(16)))
  t = Tensor(p)
  with pytest.raises(TypeError, match=r"would write it into the file.*assign"): t + [1] * 16
  with pytest.raises(TypeError, match="would write it into the file"): t[[0, 2]]
  with pytest.raises(TypeError, match="would write it into the file"): Tensor(np.zeros(4, np.uint8), device=t.device)
  assert p.read_bytes() == bytes(range(16))
