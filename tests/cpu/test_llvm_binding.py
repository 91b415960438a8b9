"""runtime.llvm (our ctypes binding of libllvmlite) and the CPU thread pool that compiles kernels in the background."""
import ctypes, json, os, pathlib, subprocess, sys, threading, time
import numpy as np
import pytest
from runtime import llvm
from runtime.cpu import ThreadPool, _ShortSwitchInterval
from tinygrad.device import Device
from tinygrad import Tensor

ROOT = pathlib.Path(__file__).resolve().parents[2]
ADD_ONE = """define void @add_one(ptr noalias %out, ptr noalias %x, i64 %start, i64 %end) {
entry:
  br label %loop
loop:
  %i = phi i64 [%start, %entry], [%next, %loop]
  %src = getelementptr inbounds float, ptr %x, i64 %i
  %v = load float, ptr %src
  %w = fadd float %v, 1.0
  %dst = getelementptr inbounds float, ptr %out, i64 %i
  store float %w, ptr %dst
  %next = add i64 %i, 1
  %more = icmp slt i64 %next, %end
  br i1 %more, label %loop, label %exit
exit:
  ret void
}
"""

def fresh_python(prog: str, **env: str) -> subprocess.CompletedProcess:
  """prog run by a new interpreter that imports the library from this checkout, with extra environment variables."""
  return subprocess.run([sys.executable, "-c", prog], env={**os.environ, "PYTHONPATH": str(ROOT), **env}, capture_output=True, text=True, timeout=120)

def test_host_description_and_version():
  triple, cpu, features = llvm.host()
  assert triple and cpu and "+" in features, (triple, cpu, features)
  assert llvm.lib().version.count(".") == 2 and int(llvm.lib().version.split(".")[0]) >= 15

def test_compile_load_and_call():
  tm = llvm.TargetMachine(*llvm.host())
  obj = tm.emit(ADD_ONE)
  assert obj[:4] == b"\x7fELF" or sys.platform != "linux"
  assert "add_one" in tm.emit(ADD_ONE, assembly=True).decode()
  (addr,), keep = tm.load(obj, ("add_one",))
  fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)(addr)
  x, out = np.arange(7, dtype=np.float32), np.zeros(7, np.float32)
  fn(out.ctypes.data, x.ctypes.data, 2, 6)
  np.testing.assert_array_equal(out, [0, 0, 3, 4, 5, 6, 0])

def test_errors_carry_llvm_messages():
  tm = llvm.TargetMachine(*llvm.host())
  with pytest.raises(llvm.LLVMError, match="LLVM IR parsing error(.|\n)*expected"): tm.emit("define void @f( {")
  not_dominating = "define i32 @f(i1 %c) {\nentry:\n  br i1 %c, label %a, label %b\na:\n  %x = add i32 1, 2\n  br label %b\nb:\n  ret i32 %x\n}\n"
  with pytest.raises(llvm.LLVMError, match="verification error(.|\n)*does not dominate"): tm.emit(not_dominating)
  with pytest.raises(llvm.LLVMError, match="function nope not found"): tm.load(tm.emit(ADD_ONE), ("add_one", "nope"))

def test_kernel_passes_compute_what_the_o3_pipeline_computes():
  """Kernels go through llvm.KERNEL_PASSES instead of LLVM's O3 pipeline: built with O3's pipeline, the same kernels
  (a matmul with odd tails, softmax, transcendentals, a 3x3 convolution) give the same bits."""
  from types import SimpleNamespace
  from runtime.cpu import CPUProgram
  rng = np.random.default_rng(0)
  a, b = Tensor(rng.standard_normal((37, 70), dtype=np.float32)), Tensor(rng.standard_normal((70, 19), dtype=np.float32))
  x, w = Tensor(rng.standard_normal((2, 5, 11, 11), dtype=np.float32)), Tensor(rng.standard_normal((4, 5, 3, 3), dtype=np.float32))
  dev, o3 = Device["CPU"], llvm.TargetMachine(*llvm.host(), passes=None)
  for out in ((a @ b).relu(), a.softmax(-1), (a.exp() + a.abs().log() + a.sin()).sum(0), x.conv2d(w, padding=1)):
    kernels = out.schedule_linear()
    assert kernels
    for ck, bufs in kernels:
      dev.run(ck.program, [buf.ptr for buf in bufs], *ck.launch)
      ours = bufs[0].numpy()
      dev.run(CPUProgram(SimpleNamespace(tm=o3), ck.name, o3.emit(ck.src), len(bufs)), [buf.ptr for buf in bufs], *ck.launch)
      np.testing.assert_array_equal(bufs[0].numpy(), ours, err_msg=ck.name)

def test_threads_compile_at_once_and_agree():
  """Every thread has its own context and target machine: four threads compiling the same modules at the same time
  produce the object code one thread does (no global lock serialises them, so this would crash if they shared)."""
  srcs = [ADD_ONE.replace("1.0", f"{k}.0").replace("add_one", f"add_{k}") for k in range(6)]
  expect = [llvm.TargetMachine(*llvm.host()).emit(s) for s in srcs]
  results: dict[int, list[bytes]] = {}
  def work(t: int) -> None:
    tm = llvm.TargetMachine(*llvm.host())
    results[t] = [tm.emit(s) for s in srcs * 3]
  threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
  for t in threads: t.start()
  for t in threads: t.join()
  assert all(results[t] == expect * 3 for t in range(4))

def test_optimisation_and_codegen_release_the_gil():
  """The main thread runs Python while another thread compiles: the two long LLVM calls (~0.15 and ~0.2 s for this
  module) do not hold the GIL, so the main thread is never kept waiting for as long as one of them."""
  src = "\n".join(ADD_ONE.replace("add_one", f"add_{k}") for k in range(40))
  tm = llvm.TargetMachine(*llvm.host())
  started, done, turns = threading.Event(), threading.Event(), []
  def work():
    started.set()
    tm.emit(src)
    done.set()
  t = threading.Thread(target=work)
  t.start()
  started.wait(10)
  while not done.is_set(): turns.append(time.perf_counter())
  t.join()
  assert max(np.diff(turns)) < 0.08, max(np.diff(turns))

def test_switch_interval_is_short_while_kernels_compile_and_restored_after():
  saved = sys.getswitchinterval()
  sys.setswitchinterval(0.003)  # the user's own interval
  try:
    s = _ShortSwitchInterval()
    s.enter(); s.enter()
    assert sys.getswitchinterval() == pytest.approx(s.SECONDS)
    s.leave()
    assert sys.getswitchinterval() == pytest.approx(s.SECONDS)  # one compile still in flight
    s.leave()
    assert sys.getswitchinterval() == pytest.approx(0.003)
    s.leave()  # a job queued before a fork ends in the child after forget(): no effect
    assert sys.getswitchinterval() == pytest.approx(0.003) and s.count == 0
    dev = Device["CPU"]
    chunks = "define void @add_one_chunks(ptr %args, i64 %start, i64 %end) {\n  ret void\n}\n"  # CPUProgram loads both
    prog = dev.build("add_one", ADD_ONE.replace("1.0", "3.0") + chunks, 2).get()
    assert prog.fn is not None and sys.getswitchinterval() == pytest.approx(0.003)
  finally: sys.setswitchinterval(saved)

def test_later_jobs_wait_until_no_other_job_is_queued():
  # the workers' module is submitted beside the first threaded kernel, but must not delay the kernels' compiles
  pool, order = ThreadPool(0), []
  late = pool.submit(order.append, "workers", later=True)
  first, second = pool.submit(order.append, "kernel 1"), pool.submit(order.append, "kernel 2")
  late.get()
  assert order == ["kernel 1", "kernel 2", "workers"] and first.get() is None and second.get() is None

def test_libllvmlite_loads_in_the_background_once_a_cpu_device_exists():
  prog = """
import time
from runtime import llvm
from tinygrad.device import Device
assert llvm._lib is None
Device["CPU"]
for _ in range(1000):
  if llvm._lib is not None: break
  time.sleep(0.01)
print(llvm._lib is not None and llvm.lib() is llvm._lib)
"""
  p = fresh_python(prog)
  assert p.returncode == 0 and p.stdout.strip() == "True", p.stderr

def test_a_fork_right_after_the_first_tensor_compiles_in_both_processes():
  # the fork lands while the preload thread may still be loading LLVM (holding runtime.llvm's lock): the child gets a
  # fresh lock and loads its own; neither process hangs
  if not hasattr(os, "fork"): pytest.skip("no os.fork on this platform")
  prog = """
import os
from tinygrad import Tensor
x = Tensor([1., 2., 3.])
pid = os.fork()
if pid == 0: os._exit(0 if (x + 1).numpy().tolist() == [2., 3., 4.] else 3)
_, st = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(st), (x * 2).numpy().tolist())
"""
  for _ in range(3):
    p = fresh_python(prog)
    assert p.returncode == 0 and p.stdout.strip() == "0 [2.0, 4.0, 6.0]", (p.stdout, p.stderr)

def test_a_failed_preload_is_reported_by_the_first_real_use(monkeypatch, capsys):
  def missing(): raise ImportError("the CPU backend needs llvmlite (pip install llvmlite): it was not found")
  monkeypatch.setattr(llvm, "_lib", None)
  monkeypatch.setattr(llvm, "library_path", missing)
  llvm.preload()
  for t in threading.enumerate():
    if t.name == "llvm-preload": t.join(10)
  assert "Traceback" not in capsys.readouterr().err  # the background thread stays quiet
  with pytest.raises(ImportError, match="pip install llvmlite"): llvm.lib()

def test_pending_get_runs_queued_jobs_itself():
  """A thread waiting on a result works through the queue: with the only worker blocked by a job that waits for a
  later job, get() on that later job must run it on the caller (otherwise this deadlocks)."""
  pool = ThreadPool(1)
  gate = threading.Event()
  blocked = pool.submit(lambda: gate.wait(10) and "released")
  opener = pool.submit(lambda: gate.set() or "opened")
  assert opener.get() == "opened"
  assert blocked.get() == "released"

def test_pool_without_workers_runs_jobs_on_the_caller():
  # THREADS=1: no worker threads; a job (a kernel compile) runs when its result is asked for, on the asking thread
  pool = ThreadPool(0)
  p = pool.submit(threading.get_ident)
  assert p.get() == threading.get_ident()

def test_job_errors_reach_the_caller():
  pool = ThreadPool(1)
  p = pool.submit(lambda: 1 / 0)
  with pytest.raises(ZeroDivisionError): p.get()
  seen: list[int] = []
  pool.run(lambda a, b: seen.extend(range(a, b)), [(0, 3), (3, 5), (5, 9)])
  assert sorted(seen) == list(range(9))

def test_kernels_of_one_plan_compile_in_the_background(tmp_path):
  """Fresh process: a plan with several kernels compiles them on the pool (the counters count every compile once),
  and neither llvmlite's Python package nor its lock is imported on the way to a result."""
  prog = """
import json, sys
from tinygrad import Tensor
from tinygrad.device import Device
a = Tensor.arange(12).reshape(3, 4).float()
out = [(a.exp() + 1).sum(1).numpy().tolist(), (a @ a.T).max().item(), a.softmax(1).sum().item()]
c = Device["CPU"].compiler
print(json.dumps({"out": out, "compiles": c.llvm_compiles, "llvmlite": sorted(m for m in sys.modules if m.startswith("llvmlite"))}))
"""
  p = fresh_python(prog, CACHEDB=str(tmp_path))
  assert p.returncode == 0, p.stderr
  res = json.loads(p.stdout.strip().splitlines()[-1])
  a = np.arange(12, dtype=np.float64).reshape(3, 4)
  np.testing.assert_allclose(res["out"][0], (np.exp(a) + 1).sum(1), rtol=1e-5)
  assert res["out"][1] == (a @ a.T).max() and abs(res["out"][2] - 3) < 1e-5
  assert res["compiles"] >= 3 and res["llvmlite"] == []

def test_results_are_right_when_many_kernels_compile_together():
  xs = [Tensor(np.full((5, 7), k, np.float32)) for k in range(8)]
  outs = [(x * (k + 1) + x.sum(1, keepdim=True)).max(1) for k, x in enumerate(xs)]
  Tensor.realize(*outs)
  for k, o in enumerate(outs): np.testing.assert_allclose(o.numpy(), np.full(5, k * (k + 1) + 7 * k, np.float32))

def test_forked_child_compiles_and_runs_threaded_kernels():
  # a fork keeps only the forking thread: the child's pool has no live workers, so whoever waits on a job runs it
  # (kernel chunks and compiles alike) instead of waiting forever
  if not hasattr(os, "fork"): pytest.skip("no os.fork on this platform")
  prog = """
import os, numpy as np
from tinygrad import Tensor
a = Tensor(np.ones((600, 600), np.float32)).realize()
assert (a @ a).sum().item() == 600 ** 3
pid = os.fork()
if pid == 0:
  b = Tensor(np.full((700, 700), 2, np.float32))
  ok = (b @ b).sum().item() == 4 * 700 ** 3 and abs((b.exp() + 1).max().item() - 8.389056) < 1e-4
  os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
print("child exit", os.waitstatus_to_exitcode(status))
"""
  p = fresh_python(prog)
  assert p.returncode == 0 and "child exit 0" in p.stdout, p.stdout + p.stderr

def test_failed_compile_is_not_cached(monkeypatch):
  # a compile that fails once (here: injected) raises, and the next realize of the same kernel compiles it again
  import runtime.cpu as cpu
  calls, orig = [], cpu.LLVMCompiler.compile
  def flaky(self, src):
    calls.append(1)
    if len(calls) == 1: raise RuntimeError("injected compile failure")
    return orig(self, src)
  monkeypatch.setattr(cpu.LLVMCompiler, "compile", flaky)
  a = Tensor(np.arange(5, dtype=np.float32) * 1.25 + 0.5)
  with pytest.raises(RuntimeError, match="injected"): (a * 3.75 + 11).numpy()
  np.testing.assert_allclose((a * 3.75 + 11).numpy(), (np.arange(5, dtype=np.float32) * 1.25 + 0.5) * 3.75 + 11)

def test_numpy_negative_zero_constant_keeps_its_sign():
  from tinygrad import dtypes
  Tensor.full((3,), np.float32(0.0), dtype=dtypes.float32).numpy()
  assert (1 / Tensor.full((3,), np.float32(-0.0), dtype=dtypes.float32)).numpy().tolist() == [-np.inf] * 3
