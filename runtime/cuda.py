"""The CUDA device: device memory, PTX modules loaded by the driver's JIT, kernel launches, events.

Knows nothing of UOps: it is handed PTX text, a kernel name, raw device pointers and launch dimensions.

Two driver bindings sit behind one small interface:
  * pycuda (`pip install .[cuda]`): `pycuda.driver`, `module_from_buffer`, `get_function`, launches with a packed
    parameter buffer;
  * a ctypes binding of libcuda.so itself, used when pycuda is not installed (pycuda builds from source and needs the
    CUDA headers; the driver library is all this backend really needs). `CUDA_DRIVER=pycuda` or `CUDA_DRIVER=ctypes`
    forces one.
Both are imported lazily, when a CUDADevice is first made; asking for CUDA without a driver or a GPU raises one
RuntimeError saying what is missing.

Kernel parameters are 64-bit device pointers, one per buffer, in order (data0 = the output): the parameter buffer is
`struct.pack("<%dQ" % n, *ptrs)`, passed to cuLaunchKernel through CU_LAUNCH_PARAM_BUFFER_POINTER/SIZE.
Freed device memory goes back to a size-bucketed cache (cuMemFree synchronises the device, and a training step
frees and re-allocates the same sizes every time); the cache is released when an allocation fails.
"""
from __future__ import annotations
import ctypes, ctypes.util, hashlib, os, struct, weakref

def pack_params(ptrs: list[int]) -> bytes:
  """The kernel parameter buffer: each buffer parameter is a .u64 device address, 8-byte aligned, in order."""
  return struct.pack(f"<{len(ptrs)}Q", *ptrs)

def arch_of(major: int, minor: int) -> str: return f"sm_{major}{minor}"

# ------------------------------------------------------------------------------------------- driver bindings
class _PyCUDADriver:
  name = "pycuda"
  def __init__(self, cuda):
    self.cuda = cuda
    try: cuda.init()
    except cuda.Error as e: raise RuntimeError(f"CUDA: no GPU found (driver init failed: {e})") from None
    if cuda.Device.count() == 0: raise RuntimeError("CUDA: no GPU found")
  def device_count(self) -> int: return self.cuda.Device.count()
  def open(self, ordinal: int):
    dev = self.cuda.Device(ordinal)
    ctx = dev.retain_primary_context()
    ctx.push()
    return dev, ctx
  def compute_capability(self, dev) -> tuple[int, int]: return dev.compute_capability()
  def device_name(self, dev) -> str: return dev.name()
  def set_current(self, ctx) -> None: pass   # pushed once in open()
  def close(self, ctx) -> None:
    try: ctx.pop()
    except Exception: pass
  def alloc(self, nbytes: int):
    a = self.cuda.mem_alloc(nbytes)
    return int(a), a
  def free(self, handle) -> None: handle.free()
  def is_oom(self, e: Exception) -> bool: return isinstance(e, self.cuda.MemoryError)
  def htod(self, dst: int, src_ptr: int, nbytes: int) -> None:
    self.cuda.memcpy_htod(dst, (ctypes.c_char * nbytes).from_address(src_ptr))
  def dtoh(self, dst_ptr: int, src: int, nbytes: int) -> None:
    self.cuda.memcpy_dtoh((ctypes.c_char * nbytes).from_address(dst_ptr), src)
  def load_module(self, ptx: str):
    try: return self.cuda.module_from_buffer(ptx.encode())
    except self.cuda.Error as e: raise RuntimeError(f"CUDA: the driver rejected the PTX module: {e}") from None
  def get_function(self, module, name: str): return module.get_function(name)
  def launch(self, fn, grid, block, params: bytes) -> None:
    if hasattr(fn, "_launch_kernel"): fn._launch_kernel(tuple(grid), tuple(block), params, 0, None)
    else:  # the public call packs a uint8 array as raw bytes: the same parameter buffer
      import numpy as np
      fn(np.frombuffer(params, np.uint8), grid=tuple(grid), block=tuple(block))
  def synchronize(self) -> None: self.cuda.Context.synchronize()
  def event(self): return self.cuda.Event()
  def record(self, ev) -> None: ev.record()
  def elapsed_s(self, start, end) -> float:
    end.synchronize()
    return start.time_till(end) * 1e-3

CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 75, 76
CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 5, 6
CU_LAUNCH_PARAM_END, CU_LAUNCH_PARAM_BUFFER_POINTER, CU_LAUNCH_PARAM_BUFFER_SIZE = 0, 1, 2
CUDA_ERROR_OUT_OF_MEMORY, CUDA_ERROR_NO_DEVICE = 2, 100

class _CUError(RuntimeError):
  def __init__(self, msg: str, code: int):
    super().__init__(msg)
    self.code = code

class _CtypesDriver:
  """The handful of CUDA driver API calls this backend needs, through ctypes."""
  name = "ctypes"
  def __init__(self, path: str):
    try: self.lib = ctypes.CDLL(path)
    except OSError as e: raise RuntimeError(f"CUDA: no NVIDIA driver (libcuda.so) found: {e}") from None
    c = self.lib
    vp, u, i, sz = ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_size_t
    sigs = {"cuInit": [u], "cuDeviceGetCount": [ctypes.POINTER(i)], "cuDeviceGet": [ctypes.POINTER(i), i],
            "cuDeviceGetAttribute": [ctypes.POINTER(i), i, i], "cuDeviceGetName": [ctypes.c_char_p, i, i],
            "cuDevicePrimaryCtxRetain": [ctypes.POINTER(vp), i], "cuCtxSetCurrent": [vp],
            "cuMemAlloc_v2": [ctypes.POINTER(ctypes.c_uint64), sz], "cuMemFree_v2": [ctypes.c_uint64],
            "cuMemcpyHtoD_v2": [ctypes.c_uint64, vp, sz], "cuMemcpyDtoH_v2": [vp, ctypes.c_uint64, sz],
            "cuModuleLoadDataEx": [ctypes.POINTER(vp), ctypes.c_char_p, u, ctypes.POINTER(i), ctypes.POINTER(vp)],
            "cuModuleGetFunction": [ctypes.POINTER(vp), vp, ctypes.c_char_p],
            "cuLaunchKernel": [vp, u, u, u, u, u, u, u, vp, ctypes.POINTER(vp), ctypes.POINTER(vp)],
            "cuCtxSynchronize": [], "cuEventCreate": [ctypes.POINTER(vp), u], "cuEventRecord": [vp, vp],
            "cuEventSynchronize": [vp], "cuEventElapsedTime": [ctypes.POINTER(ctypes.c_float), vp, vp],
            "cuEventDestroy_v2": [vp], "cuGetErrorString": [i, ctypes.POINTER(ctypes.c_char_p)]}
    for fn, args in sigs.items():
      try: f = getattr(c, fn)
      except AttributeError: raise RuntimeError(f"CUDA: the NVIDIA driver at {path} has no {fn} (too old?)") from None
      f.argtypes, f.restype = args, ctypes.c_int
    err = c.cuInit(0)
    if err == CUDA_ERROR_NO_DEVICE: raise RuntimeError("CUDA: no GPU found")
    if err: raise RuntimeError(f"CUDA: no GPU found (cuInit failed: {self.errstr(err)})")
    if self.device_count() == 0: raise RuntimeError("CUDA: no GPU found")

  def errstr(self, err: int) -> str:
    s = ctypes.c_char_p()
    self.lib.cuGetErrorString(err, ctypes.byref(s))
    return f"{s.value.decode() if s.value else 'unknown error'} ({err})"
  def check(self, err: int, what: str) -> None:
    if err: raise _CUError(f"CUDA: {what} failed: {self.errstr(err)}", err)
  def device_count(self) -> int:
    n = ctypes.c_int()
    self.check(self.lib.cuDeviceGetCount(ctypes.byref(n)), "cuDeviceGetCount")
    return n.value
  def open(self, ordinal: int):
    dev, ctx = ctypes.c_int(), ctypes.c_void_p()
    self.check(self.lib.cuDeviceGet(ctypes.byref(dev), ordinal), "cuDeviceGet")
    self.check(self.lib.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev.value), "cuDevicePrimaryCtxRetain")
    self.check(self.lib.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
    return dev.value, ctx
  def compute_capability(self, dev) -> tuple[int, int]:
    ma, mi = ctypes.c_int(), ctypes.c_int()
    self.check(self.lib.cuDeviceGetAttribute(ctypes.byref(ma), CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev), "cuDeviceGetAttribute")
    self.check(self.lib.cuDeviceGetAttribute(ctypes.byref(mi), CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev), "cuDeviceGetAttribute")
    return ma.value, mi.value
  def device_name(self, dev) -> str:
    buf = ctypes.create_string_buffer(256)
    self.check(self.lib.cuDeviceGetName(buf, 256, dev), "cuDeviceGetName")
    return buf.value.decode()
  def set_current(self, ctx) -> None: self.check(self.lib.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
  def close(self, ctx) -> None: pass   # the primary context lives as long as the process
  def alloc(self, nbytes: int):
    p = ctypes.c_uint64()
    self.check(self.lib.cuMemAlloc_v2(ctypes.byref(p), nbytes), f"cuMemAlloc({nbytes})")
    return p.value, p.value
  def free(self, handle) -> None: self.check(self.lib.cuMemFree_v2(handle), "cuMemFree")
  def is_oom(self, e: Exception) -> bool: return isinstance(e, _CUError) and e.code == CUDA_ERROR_OUT_OF_MEMORY
  def htod(self, dst: int, src_ptr: int, nbytes: int) -> None: self.check(self.lib.cuMemcpyHtoD_v2(dst, src_ptr, nbytes), "cuMemcpyHtoD")
  def dtoh(self, dst_ptr: int, src: int, nbytes: int) -> None: self.check(self.lib.cuMemcpyDtoH_v2(dst_ptr, src, nbytes), "cuMemcpyDtoH")
  def load_module(self, ptx: str):
    mod, log = ctypes.c_void_p(), ctypes.create_string_buffer(16384)
    opts = (ctypes.c_int * 2)(CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES)
    vals = (ctypes.c_void_p * 2)(ctypes.cast(log, ctypes.c_void_p), ctypes.c_void_p(len(log)))
    err = self.lib.cuModuleLoadDataEx(ctypes.byref(mod), ptx.encode() + b"\0", 2, opts, vals)
    if err: raise RuntimeError(f"CUDA: the driver rejected the PTX module: {self.errstr(err)}\n{log.value.decode(errors='replace')}")
    return mod
  def get_function(self, module, name: str):
    fn = ctypes.c_void_p()
    self.check(self.lib.cuModuleGetFunction(ctypes.byref(fn), module, name.encode()), f"cuModuleGetFunction({name})")
    return fn
  def launch(self, fn, grid, block, params: bytes) -> None:
    buf = ctypes.create_string_buffer(params, len(params))
    size = ctypes.c_size_t(len(params))
    extra = (ctypes.c_void_p * 5)(CU_LAUNCH_PARAM_BUFFER_POINTER, ctypes.cast(buf, ctypes.c_void_p),
                                  CU_LAUNCH_PARAM_BUFFER_SIZE, ctypes.cast(ctypes.byref(size), ctypes.c_void_p), CU_LAUNCH_PARAM_END)
    self.check(self.lib.cuLaunchKernel(fn, *grid, *block, 0, None, None, extra), "cuLaunchKernel")
  def synchronize(self) -> None: self.check(self.lib.cuCtxSynchronize(), "cuCtxSynchronize")
  def event(self):
    ev = ctypes.c_void_p()
    self.check(self.lib.cuEventCreate(ctypes.byref(ev), 0), "cuEventCreate")
    return ev
  def record(self, ev) -> None: self.check(self.lib.cuEventRecord(ev, None), "cuEventRecord")
  def elapsed_s(self, start, end) -> float:
    self.check(self.lib.cuEventSynchronize(end), "cuEventSynchronize")
    ms = ctypes.c_float()
    self.check(self.lib.cuEventElapsedTime(ctypes.byref(ms), start, end), "cuEventElapsedTime")
    return ms.value * 1e-3

def _find_libcuda() -> str | None:
  if (p := os.environ.get("CUDA_LIBCUDA")): return p
  for name in ("libcuda.so.1", "libcuda.so"):
    try:
      ctypes.CDLL(name)
      return name
    except OSError: pass
  return ctypes.util.find_library("cuda")

_driver_singleton = None
def load_driver():
  """The driver binding: pycuda when installed (or CUDA_DRIVER=pycuda), else ctypes over libcuda. One clear
  RuntimeError when no binding, no driver, or no GPU is there."""
  global _driver_singleton
  if _driver_singleton is not None: return _driver_singleton
  want = os.environ.get("CUDA_DRIVER", "").lower()
  if want not in ("", "pycuda", "ctypes"): raise RuntimeError(f"CUDA: CUDA_DRIVER={want!r} (expected 'pycuda' or 'ctypes')")
  pycuda_err = None
  if want in ("", "pycuda"):
    try:
      import pycuda.driver as cuda
    except ImportError as e:
      msg = str(e)
      if "libcuda" in msg or "libnvidia" in msg:
        raise RuntimeError(f"CUDA: no NVIDIA driver (libcuda.so) found (pycuda: {msg})") from None
      pycuda_err = e
    else:
      _driver_singleton = _PyCUDADriver(cuda)
      return _driver_singleton
    if want == "pycuda": raise RuntimeError("CUDA: pycuda is not installed (pip install .[cuda])") from None
  path = _find_libcuda()
  if path is None:
    hint = " (and pycuda is not installed: pip install .[cuda])" if pycuda_err is not None else ""
    raise RuntimeError(f"CUDA: no NVIDIA driver (libcuda.so) found{hint}")
  _driver_singleton = _CtypesDriver(path)
  return _driver_singleton

# ------------------------------------------------------------------------------------------- device objects
class CUDABuffer:
  """`nbytes` of device memory; returned to the device's cache when the last reference goes (or on free())."""
  __slots__ = ("dev", "nbytes", "ptr", "_handle", "__weakref__")
  def __init__(self, dev: CUDADevice, nbytes: int):
    self.dev, self.nbytes = dev, nbytes
    self.ptr, self._handle = dev._alloc(nbytes) if nbytes else (0, None)
  def free(self) -> None:
    if self.ptr:
      try: self.dev._free(self.ptr, self._handle, self.nbytes)
      except Exception: pass  # interpreter shutdown or a lost context: the driver reclaims the memory
      self.ptr, self._handle = 0, None
  def __del__(self): self.free()
  def copyin(self, src_ptr: int, nbytes: int) -> None:
    assert nbytes <= self.nbytes, f"CUDA copyin: {nbytes} bytes into a buffer of {self.nbytes}"
    if nbytes: self.dev.driver.htod(self.ptr, src_ptr, nbytes)
  def copyout(self, dst_ptr: int, nbytes: int) -> None:
    assert nbytes <= self.nbytes, f"CUDA copyout: {nbytes} bytes from a buffer of {self.nbytes}"
    if nbytes: self.dev.driver.dtoh(dst_ptr, self.ptr, nbytes)

class CUDAProgram:
  """A loaded kernel: launched with one 64-bit device pointer per buffer parameter."""
  def __init__(self, dev: CUDADevice, name: str, module, fn, nbufs: int):
    self.dev, self.name, self.module, self.fn, self.nbufs = dev, name, module, fn, nbufs
  def params(self, ptrs: list[int]) -> bytes:
    if len(ptrs) != self.nbufs: raise ValueError(f"CUDA: {self.name} takes {self.nbufs} buffers, got {len(ptrs)}")
    return pack_params(ptrs)

MAX_BLOCK_THREADS = 1024
MAX_GRID = (2 ** 31 - 1, 65535, 65535)

class CUDADevice:
  name = "CUDA"
  threads = 1
  def __init__(self, device: str = "CUDA", cache_limit: int = 1 << 30):
    self.device = device
    kind, _, num = device.upper().partition(":")
    self.ordinal = int(num) if num else 0
    self.driver = load_driver()
    n = self.driver.device_count()
    if self.ordinal >= n: raise RuntimeError(f"CUDA: no GPU {device} (found {n} GPU{'s' if n != 1 else ''})")
    self.dev, self.ctx = self.driver.open(self.ordinal)
    self.compute_capability = self.driver.compute_capability(self.dev)
    self.arch = arch_of(*self.compute_capability)       # the target to render PTX for, e.g. "sm_90"
    self.device_name = self.driver.device_name(self.dev)
    self.modules: dict[str, tuple] = {}                   # sha256(PTX) -> (module, {name: function})
    self.free_blocks: dict[int, list] = {}
    self.cached, self.cache_limit = 0, cache_limit
    weakref.finalize(self, CUDADevice._shutdown, self.driver, self.ctx)
  @staticmethod
  def _shutdown(driver, ctx) -> None: driver.close(ctx)
  def __repr__(self): return f"<CUDADevice {self.device} {self.device_name} {self.arch}>"

  # ---- memory
  @staticmethod
  def _round(nbytes: int) -> int: return (nbytes + 255) // 256 * 256
  def _alloc(self, nbytes: int):
    size = self._round(nbytes)
    if (blocks := self.free_blocks.get(size)):
      self.cached -= size
      return blocks.pop()
    try: return self.driver.alloc(size)
    except Exception as e:
      if not self.driver.is_oom(e) or not self.cached: raise
      self.release_cache()
      return self.driver.alloc(size)
  def _free(self, ptr: int, handle, nbytes: int) -> None:
    size = self._round(nbytes)
    if size > self.cache_limit: self.driver.free(handle); return
    if self.cached + size > self.cache_limit: self.release_cache()
    self.free_blocks.setdefault(size, []).append((ptr, handle))
    self.cached += size
  def release_cache(self) -> None:
    for blocks in self.free_blocks.values():
      for _, h in blocks: self.driver.free(h)
    self.free_blocks.clear()
    self.cached = 0
  def alloc(self, nbytes: int) -> CUDABuffer: return CUDABuffer(self, nbytes)

  # ---- programs
  def load(self, name: str, ptx_src: str, nbufs: int) -> CUDAProgram:
    """Load PTX (the driver JIT-compiles it for this GPU); modules are cached by the hash of the PTX text."""
    key = hashlib.sha256(ptx_src.encode()).hexdigest()
    if (entry := self.modules.get(key)) is None:
      entry = self.modules[key] = (self.driver.load_module(ptx_src), {})
    module, fns = entry
    if (fn := fns.get(name)) is None: fn = fns[name] = self.driver.get_function(module, name)
    return CUDAProgram(self, name, module, fn, nbufs)

  def run(self, prog: CUDAProgram, ptrs: list[int], global_size: tuple[int, ...], local_size: tuple[int, ...],
          wait: bool = False) -> float | None:
    """Launch prog on a grid of global_size blocks of local_size threads. Asynchronous; with wait=True it waits and
    returns the kernel's time in seconds (measured with events)."""
    grid, block = _dims(global_size), _dims(local_size)
    if any(b < 1 for b in block) or block[0] * block[1] * block[2] > MAX_BLOCK_THREADS:
      raise ValueError(f"CUDA: bad block {block} for {prog.name} (at most {MAX_BLOCK_THREADS} threads)")
    if any(not 1 <= g <= m for g, m in zip(grid, MAX_GRID)): raise ValueError(f"CUDA: bad grid {grid} for {prog.name}")
    params = prog.params(ptrs)
    if not wait:
      self.driver.launch(prog.fn, grid, block, params)
      return None
    st, en = self.driver.event(), self.driver.event()
    self.driver.record(st)
    self.driver.launch(prog.fn, grid, block, params)
    self.driver.record(en)
    return self.driver.elapsed_s(st, en)

  def synchronize(self) -> None: self.driver.synchronize()
  def event(self):
    """A recorded event (for timing: device.elapsed(start, end))."""
    ev = self.driver.event()
    self.driver.record(ev)
    return ev
  def elapsed(self, start, end) -> float: return self.driver.elapsed_s(start, end)

def _dims(d: tuple[int, ...]) -> tuple[int, int, int]:
  d = tuple(int(x) for x in d)
  if len(d) > 3: raise ValueError(f"CUDA: launch dimensions {d} have more than 3 axes")
  return d + (1,) * (3 - len(d))  # type: ignore[return-value]
