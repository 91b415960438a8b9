"""The CPU device: memory, an in-process LLVM compiler (llvmlite, O3, host CPU features), ctypes calls, and a thread
pool that splits a kernel's outermost loop. Knows nothing of UOps: it is handed LLVM IR text and raw buffers."""
from __future__ import annotations
import ctypes, os, threading
from runtime.diskcache import cache_get, cache_put, cache_key

_libc = ctypes.CDLL(None)
_libc.posix_memalign.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t, ctypes.c_size_t]
_libc.free.argtypes = [ctypes.c_void_p]
_libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
HUGE, MADV_HUGEPAGE = 2 << 20, 14
POISON = os.environ.get("POISON", "0") == "1"  # testing aid: fill new allocations with 0xFF bytes

class CPUAllocator:
  """Aligned host memory with a cache of freed blocks by size: a training step that frees and re-allocates the same
  sizes reuses warm pages instead of page-faulting fresh ones. Blocks of 2 MiB and more ask for transparent huge pages."""
  def __init__(self, cache_limit: int = 1 << 30):
    self.free_blocks: dict[int, list[int]] = {}
    self.cached, self.cache_limit = 0, cache_limit
  def alloc(self, nbytes: int) -> int:
    size = self._round(nbytes)
    if (blocks := self.free_blocks.get(size)):
      self.cached -= size
      p = blocks.pop()
      if POISON: ctypes.memset(p, 0xFF, size)
      return p
    p = ctypes.c_void_p()
    if _libc.posix_memalign(ctypes.byref(p), HUGE if size >= HUGE else 64, size) != 0:
      self.release_cache()
      if _libc.posix_memalign(ctypes.byref(p), HUGE if size >= HUGE else 64, size) != 0: raise MemoryError(f"CPU: cannot allocate {nbytes} bytes")
    if size >= HUGE: _libc.madvise(p.value, size, MADV_HUGEPAGE)
    if POISON: ctypes.memset(p.value, 0xFF, size)  # NaN / -1 everywhere: a read of memory no kernel wrote shows up
    return p.value
  def free(self, ptr: int, nbytes: int) -> None:
    size = self._round(nbytes)
    if self.cached + size > self.cache_limit: self.release_cache()
    if size > self.cache_limit: _libc.free(ptr); return
    self.free_blocks.setdefault(size, []).append(ptr)
    self.cached += size
  def release_cache(self) -> None:
    for blocks in self.free_blocks.values():
      for p in blocks: _libc.free(p)
    self.free_blocks.clear()
    self.cached = 0
  @staticmethod
  def _round(nbytes: int) -> int: return max(64, (nbytes + 63) // 64 * 64) if nbytes < HUGE else (nbytes + HUGE - 1) // HUGE * HUGE

ALLOCATOR = CPUAllocator()

class CPUBuffer:
  """`nbytes` of 64-byte-aligned host memory, returned to the allocator when the last reference goes."""
  __slots__ = ("nbytes", "ptr", "__weakref__")
  def __init__(self, nbytes: int):
    self.nbytes = nbytes
    self.ptr: int = ALLOCATOR.alloc(nbytes)
  def __del__(self):
    if self.ptr:
      try: ALLOCATOR.free(self.ptr, self.nbytes)
      except Exception: pass  # interpreter shutdown: the process is returning all memory anyway
      self.ptr = 0
  def copyin(self, src_ptr: int, nbytes: int) -> None: ctypes.memmove(self.ptr, src_ptr, nbytes)
  def copyout(self, dst_ptr: int, nbytes: int) -> None: ctypes.memmove(dst_ptr, self.ptr, nbytes)

class LLVMCompiler:
  """LLVM IR text -> object code for the host CPU; object code is cached on disk by source hash and target."""
  def __init__(self):
    import llvmlite, llvmlite.binding as llvm
    self.llvm = llvm
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    self.cpu, self.features = llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()
    self.tm = llvm.Target.from_default_triple().create_target_machine(cpu=self.cpu, features=self.features, opt=3, reloc="pic", codemodel="default")
    self.target_id = f"{llvm.get_default_triple()}|{self.cpu}|{self.features}|llvmlite {llvmlite.__version__}|O3"
    self.vector_bits = 512 if "+avx512f" in self.features else 256 if "+avx" in self.features else 128
    self.llvm_compiles = self.disk_hits = 0
  def compile(self, src: str) -> bytes:
    key = cache_key(src, self.target_id)
    if (obj := cache_get("llvm", key)) is not None:
      self.disk_hits += 1
      return obj
    self.llvm_compiles += 1
    mod = self.llvm.parse_assembly(src)
    mod.verify()
    pb = self.llvm.create_pass_builder(self.tm, self.llvm.PipelineTuningOptions(speed_level=3))
    pb.getModulePassManager().run(mod, pb)
    obj = self.tm.emit_object(mod)
    cache_put("llvm", key, obj)
    return obj
  def disassemble(self, src: str) -> str:
    mod = self.llvm.parse_assembly(src)
    pb = self.llvm.create_pass_builder(self.tm, self.llvm.PipelineTuningOptions(speed_level=3))
    pb.getModulePassManager().run(mod, pb)
    return self.tm.emit_assembly(mod)

class CPUProgram:
  """A loaded kernel: fn(buf0, buf1, ..., var0, ..., start, end) over the outermost loop's [start, end); the int64
  vars are the values of the kernel's symbolic dimensions."""
  def __init__(self, compiler: LLVMCompiler, name: str, obj: bytes, nbufs: int, nvars: int = 0):
    llvm = compiler.llvm
    self.engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), compiler.tm)
    self.objfile = llvm.ObjectFileRef.from_data(obj)  # must outlive the engine that links it
    self.engine.add_object_file(self.objfile)
    self.engine.finalize_object()
    addr = self.engine.get_function_address(name)
    if not addr: raise RuntimeError(f"CPU: kernel {name} not found in its object code")
    self.fn = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * nbufs), *([ctypes.c_int64] * nvars), ctypes.c_int64, ctypes.c_int64)(addr)
    self.name = name

class ThreadPool:
  """Persistent workers; run(fn, chunks) calls fn(*chunk) for every chunk, the caller taking the first."""
  def __init__(self, n: int):
    import queue  # only threaded kernels need it (fresh-process start)
    self.n = n
    self.tasks: list[queue.SimpleQueue] = [queue.SimpleQueue() for _ in range(n - 1)]
    self.done: queue.SimpleQueue = queue.SimpleQueue()
    for q in self.tasks: threading.Thread(target=self._worker, args=(q,), daemon=True).start()
  def _worker(self, q) -> None:  # q: a queue.SimpleQueue of (fn, args)
    while True:
      fn, args = q.get()
      try: fn(*args); self.done.put(None)
      except BaseException as e: self.done.put(e)
  def run(self, fn, arglists: list[tuple]) -> None:
    for q, args in zip(self.tasks, arglists[1:]): q.put((fn, args))
    fn(*arglists[0])
    errs = [self.done.get() for _ in arglists[1:]]
    if (e := next((e for e in errs if e is not None), None)) is not None: raise e

class CPUDevice:
  name = "CPU"
  PARALLEL_WORK = 1 << 17   # loop iterations (times lanes) below which a kernel runs inline on the calling thread
  def __init__(self, device: str = "CPU"):
    self.device = device
    self._compiler: LLVMCompiler | None = None
    self.threads = int(os.environ.get("THREADS", "0")) or os.cpu_count() or 1
    self._pool: ThreadPool | None = None
  @property
  def compiler(self) -> LLVMCompiler:
    if self._compiler is None: self._compiler = _shared_compiler()
    return self._compiler
  def alloc(self, nbytes: int) -> CPUBuffer: return CPUBuffer(nbytes)
  def load(self, name: str, obj: bytes, nbufs: int, nvars: int = 0) -> CPUProgram: return CPUProgram(self.compiler, name, obj, nbufs, nvars)
  def run(self, prog: CPUProgram, ptrs: list[int], outer: int, work: int, threaded: bool) -> None:
    if not threaded or self.threads == 1 or work < self.PARALLEL_WORK or outer < 2:
      prog.fn(*ptrs, 0, outer)
      return
    if self._pool is None: self._pool = ThreadPool(self.threads)
    n = min(self.threads, outer)
    bounds = [outer * i // n for i in range(n + 1)]
    self._pool.run(prog.fn, [(*ptrs, bounds[i], bounds[i + 1]) for i in range(n)])
  def synchronize(self) -> None: pass

_compiler_singleton: LLVMCompiler | None = None
def _shared_compiler() -> LLVMCompiler:
  global _compiler_singleton
  if _compiler_singleton is None: _compiler_singleton = LLVMCompiler()
  return _compiler_singleton
