"""The native workers that run a threaded kernel's chunks (runtime/workers.py): every index of the outer loop runs
exactly once per job, parked workers wake, a second calling thread is turned away instead of waiting, and platforms
without them split kernels over the Python pool (a forked child starting its own: test_llvm_binding.py)."""
import os, subprocess, sys, textwrap, threading
import numpy as np
import pytest
from tinygrad import Tensor
from tinygrad.device import Device
from tinygrad.uop import UOp, Ops
import runtime.cpu
from runtime import workers as W

if not sys.platform.startswith("linux") or os.uname().machine not in W._ARCH:
  pytest.skip(f"native workers run on Linux x86-64/aarch64 only, not {sys.platform} {os.uname().machine}", allow_module_level=True)

COUNT = """
define void @count(ptr %args, i64 %lo, i64 %hi) {
entry:
  %arr = load ptr, ptr %args
  %any = icmp slt i64 %lo, %hi
  br i1 %any, label %loop, label %exit
loop:
  %i = phi i64 [%lo, %entry], [%i1, %loop]
  %p = getelementptr i64, ptr %arr, i64 %i
  %v = load i64, ptr %p
  %v1 = add i64 %v, 1
  store i64 %v1, ptr %p
  %i1 = add i64 %i, 1
  %more = icmp slt i64 %i1, %hi
  br i1 %more, label %loop, label %exit
exit:
  ret void
}
"""

@pytest.fixture(scope="module")
def three():
  """Three workers (more threads than this machine's cores, so waiting callers must yield) and a chunk function
  that adds 1 to args[0][lo:hi]."""
  compiler = Device["CPU"].compiler
  w = W.Workers(compiler, 3)
  (count,), keep = compiler.tm.load(compiler.compile(COUNT), ("count",))
  yield w, count
  w.set_spin(W.SPIN_YIELDS)

@pytest.mark.parametrize("spin", [W.SPIN_YIELDS, 0], ids=["spinning", "parking"])
def test_every_index_runs_once_per_job(three, spin):
  w, count = three
  w.set_spin(spin)  # 0: every worker parks after each job, so every job has to wake them through the futex
  for outer in [1, 2, 3, 4, 5, 7, 64, 1001]:
    arr = np.zeros(outer, np.int64)
    for _ in range(50): assert w.run(count, [arr.ctypes.data], outer)
    np.testing.assert_array_equal(arr, np.full(outer, 50))

def test_workers_block_signals_but_faults(three):
  w, _ = three
  masks = [int(line.split()[1], 16) for t in os.listdir("/proc/self/task")
           for line in open(f"/proc/self/task/{t}/status") if line.startswith("SigBlk:")]
  workers = [m for m in masks if m & (1 << 1)]  # bit 1: SIGINT (signal 2), blocked in no thread that runs Python
  assert len(workers) >= w.n and not any(m & (1 << 10) for m in workers), masks  # bit 10: SIGSEGV, never blocked

def test_a_forked_child_does_not_use_its_parents_workers():
  """A TinyJit recording made before a fork holds the parent's workers; in the child they have no threads, so the
  replay must not wait for them (it runs kernel by kernel, on the child's own workers)."""
  code = textwrap.dedent("""
    import os, numpy as np
    from tinygrad import Tensor, TinyJit
    @TinyJit
    def f(x): return (x * 2 + 1).exp().realize()
    xs = [Tensor(np.full(1 << 19, k, np.float32) / 8).realize() for k in range(4)]
    for x in xs[:3]: f(x)  # run, record, replay: the recording's batch holds the parent's workers
    pid = os.fork()
    if pid == 0:
      os._exit(0 if np.allclose(f(xs[3]).numpy(), np.exp(xs[3].numpy() * 2 + 1)) else 1)
    print("child", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
  """)
  r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": os.getcwd()})
  assert r.returncode == 0 and "child 0" in r.stdout, r.stdout + r.stderr

def test_a_second_caller_is_turned_away_not_blocked(three):
  w, count = three
  arr = np.zeros(8, np.int64)
  with w._lock: assert not w.run(count, [arr.ctypes.data], 8)  # what CPUDevice.run does then: the kernel inline
  assert not arr.any()

def test_threaded_kernels_from_two_threads_agree_with_numpy():
  a = np.random.default_rng(0).standard_normal((512, 1024)).astype(np.float32)
  ta = Tensor(a).realize()
  results, errors = {}, []
  def go(k):
    try:
      for i in range(20): results[(k, i)] = ((ta * (k + 1)).exp() + i).numpy()  # 512K elements: split over threads
    except Exception as e: errors.append(e)
  ts = [threading.Thread(target=go, args=(k,)) for k in range(3)]
  for t in ts: t.start()
  for t in ts: t.join()
  assert not errors, errors
  for (k, i), r in results.items(): np.testing.assert_allclose(r, np.exp(a * (k + 1)) + i, rtol=1e-5)

def test_no_native_workers_off_linux(monkeypatch):
  monkeypatch.setattr(W, "_workers", None)  # not started yet in this process
  monkeypatch.setattr(sys, "platform", "darwin")
  assert W.start_workers(Device["CPU"].compiler, 1) is None

def test_without_native_workers_kernels_split_over_the_python_pool(monkeypatch):
  dev = Device["CPU"]
  monkeypatch.setattr(runtime.cpu, "start_workers", lambda compiler, n: None)  # what a platform without them gets
  calls, run_on_pool = [], dev.pool.run
  monkeypatch.setattr(dev.pool, "run", lambda fn, arglists: (calls.append(len(arglists)), run_on_pool(fn, arglists)))
  a = np.arange(1 << 20, dtype=np.float32)
  np.testing.assert_array_equal((Tensor(a) * 2 + 1).numpy(), a * 2 + 1)
  assert calls == [min(dev.threads, 1 << 20)] if dev.threads > 1 else calls == []

def test_a_threaded_kernel_gets_its_variables_through_the_chunks_entry(monkeypatch):
  from tinygrad import Variable
  if Device["CPU"].threads == 1: pytest.skip("THREADS=1: no kernel is split over threads")
  a = np.random.default_rng(1).standard_normal((512, 1024)).astype(np.float32)
  ta = Tensor(a).realize()
  workers = W.start_workers(Device["CPU"].compiler, max(Device["CPU"].threads - 1, 1))
  calls, run = [], workers.run
  monkeypatch.setattr(workers, "run", lambda fn, args, outer: (calls.append(len(args)), run(fn, args, outer))[1])
  for n in (300, 1000):  # 512*n elements: split over threads; the kernel's bound on the row is the Variable
    out = (ta.shrink(((0, 512), (0, Variable("n", 1, 1024).bind(n)))) * 3 - 1).realize()
    np.testing.assert_allclose(out.numpy(), a[:, :n] * 3 - 1, rtol=1e-6, atol=1e-6)  # x*3-1 is one fma
  assert calls == [3, 3], calls  # output, input, and the value of n

def test_a_realize_of_several_kernels_is_one_native_call(monkeypatch):
  """An eager realize whose plan has two kernels or more (a large sum: per-thread partials, then their sum; a softmax
  and its row statistics) runs them by one native call (tinygrad.engine.realize.NativeBatch), with no Python between
  them; with the workers busy it runs them one by one. Both agree with numpy and count the same kernels."""
  from runtime.cpu import KernelBatch
  from tinygrad.engine import realize
  from tinygrad.helpers import GlobalCounters
  if Device["CPU"].threads == 1: pytest.skip("THREADS=1: no native workers, so no one-call plans")
  rng = np.random.default_rng(2)
  a, b = rng.standard_normal(1 << 22).astype(np.float32), rng.standard_normal((300, 257)).astype(np.float32)
  ta, tb = Tensor(a).realize(), Tensor(b).realize()
  cases = [(lambda: ta.sum(), a.astype(np.float64).sum(), 1e-5), (lambda: (tb.softmax(-1) * 2).sum(0), (np.exp(b) / np.exp(b).sum(-1, keepdims=True) * 2).sum(0), 1e-5)]
  calls, run = [], KernelBatch.run
  monkeypatch.setattr(KernelBatch, "run", lambda self, ptrs: (calls.append(len(ptrs)), run(self, ptrs))[1])
  counts = []
  for make, want, rtol in cases:
    for busy in (False, True):
      if busy: monkeypatch.setattr(KernelBatch, "run", lambda self, ptrs: False)
      out, c0 = make(), GlobalCounters.kernel_count
      plan, _, _ = realize.plan_for([out.uop], out.device)
      assert len(plan.kernels) > 1 and plan.batch is not None
      np.testing.assert_allclose(out.numpy(), want, rtol=rtol, atol=1e-4)
      counts.append(GlobalCounters.kernel_count - c0)
    monkeypatch.setattr(KernelBatch, "run", lambda self, ptrs: (calls.append(len(ptrs)), run(self, ptrs))[1])
  assert counts[0] == counts[1] >= 2 and counts[2] == counts[3] >= 2, counts
  assert len(calls) == 2, calls  # one call per batched realize; none while busy

def test_a_plan_of_one_inline_kernel_calls_its_entry_point():
  """A plan of one kernel too small to split over threads runs through runtime.cpu.InlineCall (its own ctypes entry,
  none of run_kernel's per-kernel work), counted in GlobalCounters like any kernel."""
  from runtime.cpu import InlineCall
  from tinygrad.engine import realize
  from tinygrad.helpers import GlobalCounters
  a = np.arange(16, dtype=np.float32)
  ta = Tensor(a).realize()
  out = ta * 3 + 1
  plan, _, _ = realize.plan_for([out.uop], out.device)
  assert len(plan.kernels) == 1 and isinstance(plan.batch.native, InlineCall)
  c0 = GlobalCounters.kernel_count
  np.testing.assert_array_equal(out.numpy(), a * 3 + 1)
  assert GlobalCounters.kernel_count - c0 == 1

def test_realized_buffer_node_is_made_without_the_cache():
  # a realized result's BUFFER (engine/realize.py buffer_uop) has an arg no other node can equal: UOp.unique makes it
  # without a cache entry, and graphs built on it still share it
  t = (Tensor(np.arange(4, dtype=np.float32)) + 1).realize()
  b = t.uop
  assert b.op is Ops.BUFFER and not any(r() is b for r in UOp._cache.values())
  assert (t * 2).uop.src[0] is b and (t * 2).uop is (t * 2).uop
  np.testing.assert_array_equal((t * 2).numpy(), [2, 4, 6, 8])
