"""Native worker threads for the chunks of a threaded CPU kernel, written in LLVM IR and started with pthread_create.

They replaced splitting kernels over the Python thread pool, where a worker takes each chunk from a queue and reports
it done through a lock, both under the GIL: alternating the two in one process on this 2-vCPU VM (bench/threads_ab.py),
matmul 512 took 1.7-1.9 against 3.5 ms and a jitted MLP Adam step 5.0-5.2 against 7.7-8.8 ms. Workers that park after
every job instead of spinning first had twice the p90 step time (docs/performance.md, session 6).
The caller publishes a job (a generation counter), wakes parked workers, runs chunk 0 itself and waits until every
worker has taken the job. A worker spins on the counter for a while after each job, yielding its core every turn
(so a worker the scheduler put beside the caller does not keep it from running Python), and then parks in futex(2).

Linux on x86-64 and 64-bit ARM only (futex and sched_yield system calls); elsewhere `start_workers` returns None and
the device splits kernels over its Python thread pool."""
from __future__ import annotations
import ctypes, os, signal, sys, threading
from typing import TYPE_CHECKING
from runtime import llvm
if TYPE_CHECKING: from runtime.cpu import LLVMCompiler

# word offsets (int64) into the shared state; the three written words live on separate cache lines
GEN, SLEEPERS, DONE, FN, ARGS, OUTER, CHUNKS, SPIN, SYSCALL, WORKER_ARGS = 0, 8, 16, 24, 25, 26, 27, 28, 29, 32
# sched_yield calls a worker makes after its last job before it parks: ~0.6 us each when it has its core to itself
# (~1.5 ms in all); longer while another thread wants that core, which then gets it. Counted, not timed: the
# cycle counter is not readable by user programs everywhere (AArch64's PMCCNTR_EL0 traps under Linux)
SPIN_YIELDS = 2500
_ARCH = {"x86_64": (202, 24), "aarch64": (98, 124)}  # machine: (futex, sched_yield) system call numbers
FUTEX_WAIT_PRIVATE, FUTEX_WAKE_PRIVATE = 128, 129

def module_text(machine: str) -> str:
  """The worker loop and the caller's dispatch, as LLVM IR for `machine`."""
  futex, sched_yield = _ARCH[machine]
  def field(name: str, word: int) -> str: return f"  %{name} = getelementptr i64, ptr %state, i64 {word}"
  fields = "\n".join(field(n, w) for n, w in (("sleepers", SLEEPERS), ("done", DONE), ("fnp", FN), ("argsp", ARGS),
                                               ("outerp", OUTER), ("chunksp", CHUNKS), ("spinp", SPIN), ("sysp", SYSCALL)))
  return f"""
; one worker: arg -> (state, index); runs chunk `index` of every job, yields SPIN times between jobs, then parks
define ptr @tg_worker(ptr %arg) nounwind {{
entry:
  %state = load ptr, ptr %arg
  %ip = getelementptr i64, ptr %arg, i64 1
  %index = load i64, ptr %ip
{fields}
  br label %idle
idle:  ; %seen: the last job taken (0: none; the state starts at 0 before any worker does)
  %seen = phi i32 [0, %entry], [%seen, %awake], [%g, %finish]
  br label %spin
spin:
  %turns = phi i64 [0, %idle], [%turns1, %yield]
  %g = load atomic i32, ptr %state acquire, align 64
  %new = icmp ne i32 %g, %seen
  br i1 %new, label %work, label %yield
yield:  ; yield, not just pause: a worker sharing a core with the caller must not keep it from running Python
  %sysy = load ptr, ptr %sysp
  %ry = call i64 (i64, ...) %sysy(i64 {sched_yield})
  %turns1 = add i64 %turns, 1
  %limit = load atomic i64, ptr %spinp monotonic, align 8
  %more = icmp ult i64 %turns1, %limit
  br i1 %more, label %spin, label %park
park:
  %s0 = atomicrmw add ptr %sleepers, i32 1 seq_cst
  %g2 = load atomic i32, ptr %state seq_cst, align 64
  %same = icmp eq i32 %g2, %seen
  br i1 %same, label %sleep, label %awake
sleep:
  %sys = load ptr, ptr %sysp
  %seen64 = zext i32 %seen to i64
  %r = call i64 (i64, ...) %sys(i64 {futex}, ptr %state, i64 {FUTEX_WAIT_PRIVATE}, i64 %seen64, ptr null)
  br label %awake
awake:
  %s1 = atomicrmw sub ptr %sleepers, i32 1 seq_cst
  br label %idle
work:
  %n = load i64, ptr %chunksp
  %mine = icmp slt i64 %index, %n
  br i1 %mine, label %run, label %finish
run:
  %outer = load i64, ptr %outerp
  %a = mul i64 %outer, %index
  %lo = sdiv i64 %a, %n
  %index1 = add i64 %index, 1
  %b = mul i64 %outer, %index1
  %hi = sdiv i64 %b, %n
  %fn = load ptr, ptr %fnp
  %args = load ptr, ptr %argsp
  call void %fn(ptr %args, i64 %lo, i64 %hi)
  br label %finish
finish:
  %d = atomicrmw add ptr %done, i64 1 release
  br label %idle
}}

; the caller: publish fn(args, lo, hi) over [0, outer) in min(outer, workers + 1) pieces (at least one), run piece 0,
; wait for all `workers`
define void @tg_dispatch(ptr %state, ptr %fn, ptr %args, i64 %outer, i64 %workers) nounwind {{
entry:
{fields}
  %w1 = add i64 %workers, 1
  %few = icmp slt i64 %outer, %w1
  %pieces = select i1 %few, i64 %outer, i64 %w1
  %none = icmp slt i64 %pieces, 1
  %chunks = select i1 %none, i64 1, i64 %pieces
  store ptr %fn, ptr %fnp
  store ptr %args, ptr %argsp
  store i64 %outer, ptr %outerp
  store i64 %chunks, ptr %chunksp
  store atomic i64 0, ptr %done monotonic, align 8
  %g = atomicrmw add ptr %state, i32 1 seq_cst
  %s = load atomic i32, ptr %sleepers seq_cst, align 64
  %any = icmp ne i32 %s, 0
  br i1 %any, label %wake, label %own
wake:
  %sys = load ptr, ptr %sysp
  %r = call i64 (i64, ...) %sys(i64 {futex}, ptr %state, i64 {FUTEX_WAKE_PRIVATE}, i64 2147483647)
  br label %own
own:
  %hi = sdiv i64 %outer, %chunks
  call void %fn(ptr %args, i64 0, i64 %hi)
  br label %wait
wait:
  %d = load atomic i64, ptr %done acquire, align 8
  %all = icmp eq i64 %d, %workers
  br i1 %all, label %exit, label %yield
yield:  ; a worker may be waiting for this core (more threads than cores, or the scheduler put both on one)
  %sys2 = load ptr, ptr %sysp
  %r2 = call i64 (i64, ...) %sys2(i64 {sched_yield})
  br label %wait
exit:
  ret void
}}

; kernels in order: descs holds (fn, first arg word, outer, split) per kernel; split ones go through tg_dispatch
define void @tg_run_list(ptr %state, ptr %descs, ptr %args, i64 %n, i64 %workers) nounwind {{
entry:
  br label %next
next:
  %i = phi i64 [0, %entry], [%i1, %ran]
  %more = icmp slt i64 %i, %n
  br i1 %more, label %kernel, label %done
kernel:
  %d = mul i64 %i, 4
  %fnp = getelementptr i64, ptr %descs, i64 %d
  %fn = load ptr, ptr %fnp
  %offp = getelementptr i64, ptr %fnp, i64 1
  %off = load i64, ptr %offp
  %a = getelementptr i64, ptr %args, i64 %off
  %outerp = getelementptr i64, ptr %fnp, i64 2
  %outer = load i64, ptr %outerp
  %splitp = getelementptr i64, ptr %fnp, i64 3
  %split = load i64, ptr %splitp
  %threaded = icmp ne i64 %split, 0
  br i1 %threaded, label %dispatch, label %inline
dispatch:
  call void @tg_dispatch(ptr %state, ptr %fn, ptr %a, i64 %outer, i64 %workers)
  br label %ran
inline:
  call void %fn(ptr %a, i64 0, i64 %outer)
  br label %ran
ran:
  %i1 = add i64 %i, 1
  br label %next
done:
  ret void
}}
"""

class Workers:
  """`n` native worker threads; `run` splits a kernel's outer loop over them and the calling thread."""
  def __init__(self, compiler: LLVMCompiler, n: int):
    libc = ctypes.CDLL(None)
    # O0: loops around system calls gain nothing from optimisation, and O0 compiles in ~3 ms against ~16 at O3
    tm = llvm.TargetMachine(compiler.triple, compiler.cpu, compiler.features, opt=0, passes=None)
    (worker, dispatch, run_list), self._keep = tm.load(tm.emit(module_text(os.uname().machine)), ("tg_worker", "tg_dispatch", "tg_run_list"))
    words = WORKER_ARGS + 2 * n
    # never freed: a worker may still be spinning on it while the interpreter shuts down
    block = ctypes.c_void_p()
    libc.posix_memalign.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t, ctypes.c_size_t]
    if libc.posix_memalign(ctypes.byref(block), 64, words * 8) != 0: raise MemoryError("CPU workers: cannot allocate their state")
    self.state: int = block.value
    ctypes.memset(self.state, 0, words * 8)
    s = (ctypes.c_int64 * words).from_address(self.state)
    s[SPIN], s[SYSCALL] = SPIN_YIELDS, ctypes.cast(libc.syscall, ctypes.c_void_p).value
    self.words, self.n = s, 0
    libc.pthread_create.argtypes = [ctypes.POINTER(ctypes.c_ulong), ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    # the workers inherit a mask blocking every signal but a fault's (a crash in a kernel still reports): Ctrl-C and
    # friends go to threads that run Python
    faults = {signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGTRAP, signal.SIGSYS, signal.SIGABRT}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals() - faults)
    try:
      for i in range(n):
        s[WORKER_ARGS + 2 * i], s[WORKER_ARGS + 2 * i + 1] = self.state, i + 1
        if libc.pthread_create(ctypes.byref(ctypes.c_ulong()), None, worker, self.state + (WORKER_ARGS + 2 * i) * 8) != 0: break
        self.n += 1
    finally: signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    # both: (state, function or descriptors, int64 args, outer or number of kernels, workers)
    self._dispatch, self._run_list = (ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * 3, ctypes.c_int64, ctypes.c_int64)(f) for f in (dispatch, run_list))
    self._lock, self.pid = threading.Lock(), os.getpid()

  def set_spin(self, yields: int) -> None:
    """How many times a worker yields after a job before parking (tests use 0: every job wakes a parked worker)."""
    self.words[SPIN] = yields

  def _call(self, native, what, args: list[int], count: int) -> bool:
    """native(state, what, args as int64s, count, workers), holding the workers; False (nothing run) while another
    thread has them, and always in a forked child (whose copy of this object has no threads behind it: a TinyJit
    recording made before the fork still holds it)."""
    if self.pid != os.getpid() or not self._lock.acquire(blocking=False): return False
    try: native(self.state, what, (ctypes.c_int64 * len(args))(*args), count, self.n)
    finally: self._lock.release()
    return True

  def run(self, chunks_fn: int, args: list[int], outer: int) -> bool:
    """chunks_fn(args, lo, hi) over [0, outer) split across the workers and the caller; False when the caller must
    run the kernel itself."""
    return self._call(self._dispatch, chunks_fn, args, outer)

  def run_list(self, descs: ctypes.Array, args: list[int]) -> bool:
    """Kernels in order in one call: descs holds (chunks entry, first word in args, outer, split 0/1) per kernel;
    False when nothing ran."""
    return self._call(self._run_list, descs, args, len(descs) // 4)

_workers: Workers | None = None
_workers_lock = threading.Lock()

def start_workers(compiler: LLVMCompiler, n: int) -> Workers | None:
  """The process's native workers (started on first use), or None where they cannot run (not Linux x86-64/ARM64)."""
  global _workers
  if n < 1: return None
  if _workers is not None: return _workers if _workers.n else None
  if not sys.platform.startswith("linux") or os.uname().machine not in _ARCH: return None
  with _workers_lock:
    if _workers is None: _workers = Workers(compiler, n)
  return _workers if _workers.n else None  # no thread could be started: the device splits over its Python pool

def _forget_workers() -> None:
  global _workers, _workers_lock
  _workers, _workers_lock = None, threading.Lock()  # a forked child has none of its parent's threads: it starts its own

os.register_at_fork(after_in_child=_forget_workers)
