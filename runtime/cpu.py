"""The CPU device: memory, an in-process LLVM compiler (libllvmlite through runtime.llvm, host CPU features),
ctypes calls, a thread pool that compiles kernels in the background, and runtime.workers' native threads that split a
threaded kernel's outermost loop.
Knows nothing of UOps: it is handed LLVM IR text and raw buffers."""
from __future__ import annotations
import ctypes, os, sys, threading, time
from runtime import llvm
from runtime.diskcache import cache_get, cache_put, cache_key
from runtime.workers import Workers, start_workers

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
  def alloc(self, size: int) -> int:
    """A block of `size` bytes, a size from block_size()."""
    if (blocks := self.free_blocks.get(size)):
      self.cached -= size
      p = blocks.pop()
      if POISON: ctypes.memset(p, 0xFF, size)
      return p
    p = ctypes.c_void_p()
    if _libc.posix_memalign(ctypes.byref(p), HUGE if size >= HUGE else 64, size) != 0:
      self.release_cache()
      if _libc.posix_memalign(ctypes.byref(p), HUGE if size >= HUGE else 64, size) != 0: raise MemoryError(f"CPU: cannot allocate {size} bytes")
    if size >= HUGE: _libc.madvise(p.value, size, MADV_HUGEPAGE)
    if POISON: ctypes.memset(p.value, 0xFF, size)  # NaN / -1 everywhere: a read of memory no kernel wrote shows up
    return p.value
  def free(self, ptr: int, size: int) -> None:
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
  def block_size(nbytes: int) -> int:
    """The size of the block holding nbytes: whole 64-byte lines (at least one), whole 2 MiB pages from 2 MiB on."""
    return ((nbytes + 63) & -64 or 64) if nbytes < HUGE else (nbytes + HUGE - 1) & -HUGE

ALLOCATOR = CPUAllocator()

class CPUBuffer:
  """`nbytes` of 64-byte-aligned host memory, returned to the allocator when the last reference goes."""
  __slots__ = ("nbytes", "block", "ptr", "__weakref__")
  def __init__(self, nbytes: int):
    self.nbytes, self.block = nbytes, CPUAllocator.block_size(nbytes)
    self.ptr: int = ALLOCATOR.alloc(self.block)
  def __del__(self):
    if self.ptr:
      try: ALLOCATOR.free(self.ptr, self.block)
      except Exception: pass  # interpreter shutdown: the process is returning all memory anyway
      self.ptr = 0
  def copyin(self, src_ptr: int, nbytes: int) -> None: ctypes.memmove(self.ptr, src_ptr, nbytes)
  def copyout(self, dst_ptr: int, nbytes: int) -> None: ctypes.memmove(dst_ptr, self.ptr, nbytes)

class LLVMCompiler:
  """LLVM IR text -> object code for the host CPU (llvm.KERNEL_PASSES, code generation at O3, host features); object
  code is cached on disk by source hash and target. Thread-safe: every thread compiles with its own TargetMachine and
  LLVMContext."""
  def __init__(self):
    self.triple, self.cpu, self.features = llvm.host()
    self.target_id = f"{self.triple}|{self.cpu}|{self.features}|LLVM {llvm.lib().version}|{','.join(llvm.KERNEL_PASSES)}|O3"
    self.vector_bits = 512 if "+avx512f" in self.features else 256 if "+avx" in self.features else 128
    self.llvm_compiles = self.disk_hits = 0
    self._count_lock, self._local = threading.Lock(), threading.local()
  @property
  def tm(self) -> llvm.TargetMachine:
    if (tm := getattr(self._local, "tm", None)) is None: tm = self._local.tm = llvm.TargetMachine(self.triple, self.cpu, self.features)
    return tm
  def compile(self, src: str) -> bytes:
    key = cache_key(src, self.target_id)
    if (obj := cache_get("llvm", key)) is not None:
      with self._count_lock: self.disk_hits += 1
      return obj
    obj = self.tm.emit(src)
    with self._count_lock: self.llvm_compiles += 1
    cache_put("llvm", key, obj)
    return obj
  def disassemble(self, src: str) -> str: return self.tm.emit(src, assembly=True).decode()

class CPUProgram:
  """A loaded kernel: fn(buf0, buf1, ..., var0, ..., start, end) over the outermost loop's [start, end); the int64
  vars are the values of the kernel's symbolic dimensions. `chunks` is the address of `{name}_chunks(args, start,
  end)`, the same with its arguments in an int64 array, which runtime.workers calls."""
  def __init__(self, compiler: LLVMCompiler, name: str, obj: bytes, nbufs: int, nvars: int = 0):
    (fn, self.chunks), self._keep = compiler.tm.load(obj, (name, f"{name}_chunks"))
    self.fn = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * nbufs), *([ctypes.c_int64] * nvars), ctypes.c_int64, ctypes.c_int64)(fn)
    self.name, self.build_s = name, 0.0

class KernelBatch:
  """Kernels run in order by one native call (runtime.workers' tg_run_list), for a TinyJit replay: what each kernel
  needs but its buffers is fixed when the batch is made; run() takes their pointers, kernel after kernel."""
  def __init__(self, workers: Workers, descs: list[int]):
    self.workers, self.descs = workers, (ctypes.c_int64 * len(descs))(*descs)
  def run(self, ptrs: list[int]) -> bool:
    """False (nothing run) when another thread is using the workers."""
    return self.workers.run_list(self.descs, ptrs)

class InlineCall:
  """One kernel run on the calling thread, as KernelBatch runs several: run() takes its buffers' pointers. A plan of
  one small kernel (x + 1 on 16 elements) goes straight to its ctypes entry: 11.5 -> 10.8 us per op."""
  __slots__ = ("fn", "outer")
  def __init__(self, prog: CPUProgram, outer: int): self.fn, self.outer = prog.fn, outer
  def run(self, ptrs: list[int]) -> bool:
    self.fn(*ptrs, 0, self.outer)
    return True

class Pending:
  """The result of a job on the thread pool. get() waits for it, running queued jobs itself meanwhile (so the waiting
  thread is one more worker), and re-raises the job's error."""
  __slots__ = ("_done", "_pool", "value", "error")
  def __init__(self, pool: ThreadPool):
    self._done, self._pool = threading.Lock(), pool
    self._done.acquire()
    self.value = self.error = None
  def finish(self, value, error: BaseException | None) -> None:
    self.value, self.error = value, error
    self._done.release()
  def get(self):
    while not self._done.acquire(blocking=False):
      if not self._pool.run_one(): self._done.acquire(); break
    self._done.release()
    if self.error is not None: raise self.error
    return self.value

class ThreadPool:
  """Persistent workers on one queue of jobs: kernels compiling in the background while the caller generates the next
  one, and the chunks of a threaded kernel where runtime.workers has no native threads (not Linux x86-64/ARM64).
  Jobs run in the order submitted, except that `later` ones wait until no other job is queued."""
  def __init__(self, n: int):
    import itertools, queue  # only threaded kernels and compiles need them (fresh-process start)
    self.jobs: queue.PriorityQueue = queue.PriorityQueue()
    self._empty, self._order = queue.Empty, itertools.count()
    for _ in range(n): threading.Thread(target=self._worker, daemon=True).start()
  def submit(self, fn, *args, later: bool = False) -> Pending:
    p = Pending(self)
    self.jobs.put((later, next(self._order), fn, args, p))
    return p
  def run_one(self) -> bool:
    """Run a queued job on the calling thread; False when none is queued."""
    try: _, _, fn, args, p = self.jobs.get_nowait()
    except self._empty: return False
    self._do(fn, args, p)
    return True
  def _worker(self) -> None:
    while True:
      _, _, fn, args, p = self.jobs.get()
      self._do(fn, args, p)
  @staticmethod
  def _do(fn, args, p: Pending) -> None:
    try: value, error = fn(*args), None
    except Exception as e: value, error = None, e  # Ctrl-C on the caller's thread interrupts it, not the job's result
    p.finish(value, error)
  def run(self, fn, arglists: list[tuple]) -> None:
    """fn(*args) for every args, the caller taking the first; returns when all are done."""
    pending = [self.submit(fn, *args) for args in arglists[1:]]
    fn(*arglists[0])
    for p in pending: p.get()

class _ShortSwitchInterval:
  """While kernels compile on the pool, the interpreter's GIL switch interval is cut to 0.2 ms. A pool thread comes
  back from LLVM (a call that released the GIL) to a caller busy in Python generating the next kernel, and waited for
  the GIL the default 5 ms each time: the 24 kernels of an MLP Adam step took 0.77-0.86 s to compile beside a busy
  caller, 0.52-0.63 s beside an idle one, and 0.56-0.64 s busy with the interval cut (bench/compile_ab.py). The
  caller's own interval is restored when the last compile ends."""
  SECONDS = 0.0002
  def __init__(self): self.count, self.saved, self.lock = 0, 0.005, threading.Lock()
  def enter(self) -> None:
    with self.lock:
      if self.count == 0:
        self.saved = sys.getswitchinterval()
        sys.setswitchinterval(min(self.saved, self.SECONDS))
      self.count += 1
  def leave(self) -> None:
    with self.lock:
      if self.count == 0: return  # a job queued before a fork, run in the child after _SWITCH.forget()
      self.count -= 1
      if self.count == 0: sys.setswitchinterval(self.saved)
  def forget(self) -> None:
    """In a forked child: the parent's compiles in flight never end there."""
    if self.count: sys.setswitchinterval(self.saved)
    self.count, self.lock = 0, threading.Lock()

_SWITCH = _ShortSwitchInterval()
os.register_at_fork(after_in_child=_SWITCH.forget)

class CPUDevice:
  name = "CPU"
  PARALLEL_WORK = 1 << 17   # loop iterations (times lanes) below which a kernel runs inline on the calling thread
  def __init__(self, device: str = "CPU"):
    self.device = device
    self._compiler: LLVMCompiler | None = None
    self.threads = int(os.environ.get("THREADS", "0")) or os.cpu_count() or 1
    self._pool: ThreadPool | None = None
    llvm.preload()  # a device is made for the first tensor: LLVM loads while its graph is built
  @property
  def pool(self) -> ThreadPool:
    if self._pool is None: self._pool = ThreadPool(self.threads - 1)  # the caller is one more (THREADS=1: it does all)
    return self._pool
  @property
  def compiler(self) -> LLVMCompiler:
    if self._compiler is None: self._compiler = _shared_compiler()
    return self._compiler
  def alloc(self, nbytes: int) -> CPUBuffer: return CPUBuffer(nbytes)
  def build(self, name: str, src: str, nbufs: int, nvars: int = 0, threaded: bool = False) -> Pending:
    """Compile and load a kernel on the thread pool; the caller goes on and takes the CPUProgram with get()."""
    compiler = self.compiler
    def job() -> CPUProgram:
      try:
        st = time.perf_counter()
        prog = CPUProgram(compiler, name, compiler.compile(src), nbufs, nvars)
        prog.build_s = time.perf_counter() - st
        return prog
      finally: _SWITCH.leave()
    _SWITCH.enter()
    pending = self.pool.submit(job)
    # the workers' own module compiles beside the kernels, after them: the first matmul's kernel was queued behind it
    if threaded and self.threads > 1: self.pool.submit(start_workers, compiler, self.threads - 1, later=True)
    return pending
  def splits(self, outer: int, work: int, threaded: bool) -> bool:
    """Does a kernel with these launch arguments run split over threads (else inline on the caller)?"""
    return threaded and self.threads > 1 and work >= self.PARALLEL_WORK and outer >= 2
  def run(self, prog: CPUProgram, ptrs: list[int], outer: int, work: int, threaded: bool) -> None:
    if not self.splits(outer, work, threaded):
      prog.fn(*ptrs, 0, outer)
      return
    if (workers := start_workers(self.compiler, self.threads - 1)) is not None:
      if not workers.run(prog.chunks, ptrs, outer): prog.fn(*ptrs, 0, outer)  # another thread has the workers
      return
    n = min(self.threads, outer)
    bounds = [outer * i // n for i in range(n + 1)]
    self.pool.run(prog.fn, [(*ptrs, bounds[i], bounds[i + 1]) for i in range(n)])
  def batch(self, launches: list[tuple[CPUProgram, int, int, int, bool]]) -> KernelBatch | InlineCall | None:
    """One native call for kernels run in order, each (program, number of arguments, outer, work, threaded); None
    where there are no native workers (THREADS=1, or not Linux x86-64/ARM64). One kernel that runs inline is called
    through its own entry point."""
    if len(launches) == 1 and not self.splits(*launches[0][2:]): return InlineCall(launches[0][0], launches[0][2])
    if (workers := start_workers(self.compiler, self.threads - 1)) is None: return None
    descs, first = [], 0
    for prog, nargs, outer, work, threaded in launches:
      descs += [prog.chunks, first, outer, int(self.splits(outer, work, threaded))]
      first += nargs
    return KernelBatch(workers, descs)
  def synchronize(self) -> None: pass

_compiler_singleton: LLVMCompiler | None = None
def _shared_compiler() -> LLVMCompiler:
  global _compiler_singleton
  if _compiler_singleton is None: _compiler_singleton = LLVMCompiler()
  return _compiler_singleton
