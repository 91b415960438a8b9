"""The CUDA runtime: clear errors without pycuda / a driver / a GPU (simulated), the parameter buffer layout, the
device logic against a fake driver (allocation cache, module cache, launch arguments), and, marked `cuda`, real-GPU
runs of rendered kernels compared with the CPU backend (skipped without a GPU)."""
from __future__ import annotations
import ctypes, struct, sys, types
import numpy as np
import pytest
import runtime.cuda as rt
from runtime.cuda import CUDADevice, pack_params

@pytest.fixture
def fresh_driver(monkeypatch):
  """Forget the process-wide driver binding (and restore it afterwards)."""
  monkeypatch.setattr(rt, "_driver_singleton", None)
  monkeypatch.delenv("CUDA_DRIVER", raising=False)
  yield monkeypatch

def _no_pycuda(monkeypatch):
  monkeypatch.setitem(sys.modules, "pycuda", None)          # `import pycuda.driver` now raises ImportError
  monkeypatch.setitem(sys.modules, "pycuda.driver", None)

# ---------------------------------------------------------------- error paths (no GPU needed)
def test_no_pycuda_no_driver(fresh_driver):
  _no_pycuda(fresh_driver)
  fresh_driver.setattr(rt, "_find_libcuda", lambda: None)
  with pytest.raises(RuntimeError, match=r"CUDA: no NVIDIA driver \(libcuda.so\) found \(and pycuda is not installed: pip install \.\[cuda\]\)"):
    CUDADevice("CUDA")

def test_pycuda_forced_but_missing(fresh_driver):
  _no_pycuda(fresh_driver)
  fresh_driver.setenv("CUDA_DRIVER", "pycuda")
  with pytest.raises(RuntimeError, match=r"^CUDA: pycuda is not installed \(pip install \.\[cuda\]\)$"):
    CUDADevice("CUDA")

def test_pycuda_without_driver(fresh_driver):
  """pycuda installed, libcuda missing: pycuda's extension fails to load with a libcuda message."""
  class Finder:
    def find_spec(self, name, path=None, target=None):
      if name == "pycuda" or name.startswith("pycuda."): raise ImportError("libcuda.so.1: cannot open shared object file: No such file or directory")
  fresh_driver.delitem(sys.modules, "pycuda", raising=False)
  fresh_driver.delitem(sys.modules, "pycuda.driver", raising=False)
  fresh_driver.setattr(sys, "meta_path", [Finder()] + sys.meta_path)
  with pytest.raises(RuntimeError, match=r"CUDA: no NVIDIA driver \(libcuda.so\) found"):
    CUDADevice("CUDA")

def _fake_pycuda(count: int, init_error: bool = False):
  drv = types.ModuleType("pycuda.driver")
  class Error(Exception): pass
  drv.Error = Error
  def init():
    if init_error: raise Error("cuInit failed: no CUDA-capable device is detected")
  drv.init = init
  drv.Device = type("Device", (), {"count": staticmethod(lambda: count)})
  pkg = types.ModuleType("pycuda")
  pkg.driver = drv
  return pkg, drv

@pytest.mark.parametrize("count,init_error", [(0, False), (1, True)])
def test_no_gpu(fresh_driver, count, init_error):
  pkg, drv = _fake_pycuda(count, init_error)
  fresh_driver.setitem(sys.modules, "pycuda", pkg)
  fresh_driver.setitem(sys.modules, "pycuda.driver", drv)
  with pytest.raises(RuntimeError, match=r"^CUDA: no GPU found"):
    CUDADevice("CUDA")

def test_unloadable_libcuda(fresh_driver, tmp_path):
  _no_pycuda(fresh_driver)
  fresh_driver.setenv("CUDA_LIBCUDA", str(tmp_path / "libcuda.so.1"))
  with pytest.raises(RuntimeError, match=r"CUDA: no NVIDIA driver \(libcuda.so\) found"):
    CUDADevice("CUDA")

def test_bad_driver_choice(fresh_driver):
  fresh_driver.setenv("CUDA_DRIVER", "opencl")
  with pytest.raises(RuntimeError, match="CUDA_DRIVER"):
    CUDADevice("CUDA")

def test_device_registry_gives_the_same_error(fresh_driver):
  from tinygrad.device import Device
  _no_pycuda(fresh_driver)
  fresh_driver.setattr(rt, "_find_libcuda", lambda: None)
  fresh_driver.setattr(Device, "_opened", {})
  with pytest.raises(RuntimeError, match="CUDA: no NVIDIA driver"):
    Device["CUDA"]

# ---------------------------------------------------------------- argument packing
def test_param_buffer_layout():
  ptrs = [0x7F0000001000, 0, 2 ** 64 - 1, 0x1234]
  buf = pack_params(ptrs)
  assert len(buf) == 8 * len(ptrs)
  assert buf[:8] == (0x7F0000001000).to_bytes(8, "little")
  assert list(struct.unpack("<4Q", buf)) == ptrs
  assert pack_params([]) == b""

# ---------------------------------------------------------------- the device against a fake driver
class FakeDriver:
  """Host memory standing in for device memory; records what the device asks of the driver."""
  name = "fake"
  def __init__(self, oom_after: int | None = None):
    self.mem: dict[int, ctypes.Array] = {}
    self.allocs = self.frees = self.loads = 0
    self.launches: list[tuple] = []
    self.oom_after = oom_after
  def device_count(self): return 2
  def open(self, ordinal): return ordinal, object()
  def compute_capability(self, dev): return (9, 0)
  def device_name(self, dev): return "Fake H100"
  def close(self, ctx): pass
  def alloc(self, nbytes):
    if self.oom_after is not None and len(self.mem) >= self.oom_after: raise MemoryError("out of memory")
    self.allocs += 1
    b = ctypes.create_string_buffer(nbytes)
    self.mem[ctypes.addressof(b)] = b
    return ctypes.addressof(b), ctypes.addressof(b)
  def free(self, h):
    self.frees += 1
    del self.mem[h]
  def is_oom(self, e): return isinstance(e, MemoryError)
  def htod(self, dst, src, n): ctypes.memmove(dst, src, n)
  def dtoh(self, dst, src, n): ctypes.memmove(dst, src, n)
  def load_module(self, ptx):
    self.loads += 1
    return ("module", ptx)
  def get_function(self, module, name): return ("fn", name)
  def launch(self, fn, grid, block, params): self.launches.append((fn, grid, block, params))
  def synchronize(self): pass
  def event(self): return [0.0]
  def record(self, ev): pass
  def elapsed_s(self, a, b): return 1e-6

@pytest.fixture
def fake(fresh_driver):
  drv = FakeDriver()
  fresh_driver.setattr(rt, "_driver_singleton", drv)
  return drv

def test_fake_device_basics(fake):
  dev = CUDADevice("CUDA:1")
  assert dev.ordinal == 1 and dev.arch == "sm_90" and dev.compute_capability == (9, 0)
  with pytest.raises(RuntimeError, match="no GPU CUDA:2"): CUDADevice("CUDA:2")

def test_fake_copy_roundtrip_and_cache(fake):
  dev = CUDADevice("CUDA")
  a = np.arange(100, dtype=np.float32)
  buf = dev.alloc(a.nbytes)
  buf.copyin(a.ctypes.data, a.nbytes)
  out = np.empty_like(a)
  buf.copyout(out.ctypes.data, out.nbytes)
  np.testing.assert_array_equal(out, a)
  ptr = buf.ptr
  del buf                                   # deterministic: back to the cache at once
  assert fake.allocs == 1 and dev.cached == 512
  again = dev.alloc(a.nbytes)
  assert again.ptr == ptr and fake.allocs == 1, "a freed block of the same size is reused"
  again.free()
  again.free()                              # idempotent
  dev.release_cache()
  assert fake.frees == 1 and dev.cached == 0
  assert dev.alloc(0).ptr == 0 and fake.allocs == 1, "empty buffers allocate nothing"

def test_fake_oom_releases_cache(fresh_driver):
  drv = FakeDriver(oom_after=1)
  fresh_driver.setattr(rt, "_driver_singleton", drv)
  dev = CUDADevice("CUDA")
  a = dev.alloc(1000)
  a.free()                                  # cached, still counted by the driver
  b = dev.alloc(5000)                       # the driver is "full": the cache is released and the alloc retried
  assert b.ptr and drv.frees == 1

def test_fake_load_is_cached_by_ptx_hash(fake):
  dev = CUDADevice("CUDA")
  p1 = dev.load("k", ".entry k", 2)
  p2 = dev.load("k", ".entry k", 2)
  dev.load("k", ".entry k ", 2)
  assert fake.loads == 2 and p1.fn is p2.fn

def test_fake_launch_arguments(fake):
  dev = CUDADevice("CUDA")
  prog = dev.load("E_4", "ptx", 2)
  dev.run(prog, [0x1000, 0x2000], (3,), (256, 1, 1))
  fn, grid, block, params = fake.launches[-1]
  assert fn == ("fn", "E_4") and grid == (3, 1, 1) and block == (256, 1, 1) and params == pack_params([0x1000, 0x2000])
  assert dev.run(prog, [1, 2], (1, 1, 1), (1, 1, 1), wait=True) == pytest.approx(1e-6)
  with pytest.raises(ValueError, match="takes 2 buffers"): dev.run(prog, [1], (1,), (1,))
  with pytest.raises(ValueError, match="bad block"): dev.run(prog, [1, 2], (1,), (2048,))
  with pytest.raises(ValueError, match="bad grid"): dev.run(prog, [1, 2], (0,), (32,))

# ---------------------------------------------------------------- a real GPU
def cuda_device() -> CUDADevice:
  try: return CUDADevice("CUDA")
  except RuntimeError as e: pytest.skip(f"no CUDA device ({e})")

def run_on_cuda(t, dev: CUDADevice) -> np.ndarray:
  """Schedule t, render each kernel for this GPU's arch, run them in order, return the result."""
  from tinygrad.uop import Ops
  from tinygrad.dtype import to_np_dtype
  from tinygrad.engine.realize import normalize
  from tinygrad.engine.schedule import create_schedule
  from codegen.ptx import render_ptx
  norm, bufs, _, _ = normalize([t.uop])
  data, keep = {}, []
  for it in create_schedule(list(norm), multi_output=False):
    k = render_ptx(it.ast, dev.arch)
    prog = dev.load(k.name, k.src, k.n_params)
    out = dev.alloc(it.outs[0].size * it.outs[0].dtype.itemsize)
    ins = []
    for i in it.inputs:
      if i.op is Ops.BUFFER:
        host = np.ascontiguousarray(bufs[i.arg.k].numpy())
        b = dev.alloc(host.nbytes)
        b.copyin(host.ctypes.data, host.nbytes)
        ins.append(b)
      else: ins.append(data[i])
    dev.run(prog, [out.ptr] + [b.ptr for b in ins], k.global_size, k.local_size)
    keep += ins
    data[it.outs[0]] = out
  dev.synchronize()
  res = np.empty(norm[0].size, dtype=to_np_dtype(norm[0].dtype))
  data[norm[0]].copyout(res.ctypes.data, res.nbytes)
  return res.reshape(t.shape)

@pytest.mark.cuda
def test_gpu_copy_roundtrip():
  dev = cuda_device()
  a = np.random.default_rng(0).standard_normal(1 << 20).astype(np.float32)
  buf = dev.alloc(a.nbytes)
  buf.copyin(a.ctypes.data, a.nbytes)
  out = np.empty_like(a)
  buf.copyout(out.ctypes.data, out.nbytes)
  np.testing.assert_array_equal(out, a)

@pytest.mark.cuda
def test_gpu_elementwise_timed():
  from tinygrad import Tensor
  from codegen.ptx import render_ptx
  from tinygrad.engine.realize import normalize
  from tinygrad.engine.schedule import create_schedule
  dev = cuda_device()
  n = 1 << 20
  a = np.random.default_rng(1).standard_normal(n).astype(np.float32)
  t = Tensor(a) * 2 + 1
  np.testing.assert_allclose(run_on_cuda(t, dev), a * 2 + 1, rtol=1e-6)
  norm, _, _, _ = normalize([t.uop])
  (it,) = create_schedule(list(norm), multi_output=False)
  k = render_ptx(it.ast, dev.arch)
  prog = dev.load(k.name, k.src, k.n_params)
  bufs = [dev.alloc(n * 4) for _ in range(2)]
  secs = dev.run(prog, [b.ptr for b in bufs], k.global_size, k.local_size, wait=True)
  assert secs is not None and 0 < secs < 1

def _gpu_programs():
  try:
    from ptx.test_ptxas import PROGRAMS, EXPECTED, GROUP_PROGRAMS
  except ImportError:  # imported under another package name
    from tests.ptx.test_ptxas import PROGRAMS, EXPECTED, GROUP_PROGRAMS
  return {**PROGRAMS, **{f"group_{n}": (fn, True) for n, fn in GROUP_PROGRAMS.items()}}, EXPECTED

@pytest.mark.cuda
@pytest.mark.parametrize("name", [n for n in _gpu_programs()[0] if not n.startswith(("huge_", "big_softmax"))])
def test_gpu_matches_cpu(name):
  dev = cuda_device()
  programs, expected = _gpu_programs()
  t = programs[name][0]()
  if any(u.op.name == "BUFFER" and u.arg.buf is not None and u.arg.buf._mem is None for u in t.uop.toposort()):
    pytest.skip("reads uninitialised memory (Tensor.empty)")
  got = run_on_cuda(t, dev)
  exp = expected[name] if name in expected else t.numpy()
  assert got.shape == exp.shape and got.dtype == exp.dtype
  if got.dtype.kind in "biu": np.testing.assert_array_equal(got, exp, err_msg=name)
  else:
    rtol = {2: 1e-2, 4: 2e-5, 8: 1e-10}[got.dtype.itemsize]
    np.testing.assert_allclose(got.astype(np.float64), exp.astype(np.float64), rtol=rtol, atol=rtol, equal_nan=True, err_msg=name)
