"""The DEBUG ladder: what each level prints."""
import numpy as np
from tinygrad import Tensor, Context

def test_debug4_prints_the_llvm_ir_of_a_new_kernel(capsys):
  x = Tensor(np.arange(23 * 7, dtype=np.float32).reshape(23, 7))
  with Context(DEBUG=4): (x * 5.5 - 1).realize()
  out = capsys.readouterr().out
  assert "// E_23_7" in out and "define void @E_23_7(" in out and "fmul" in out

def test_debug2_prints_one_line_per_kernel_with_rates(capsys):
  x = Tensor(np.ones((19, 3), dtype=np.float32))
  with Context(DEBUG=2): (x + 1).sum().realize()
  out = capsys.readouterr().out
  lines = [l for l in out.splitlines() if "GFLOP/s" in l]
  assert len(lines) == 1 and "r_19_3" in lines[0] and "ms" in lines[0] and "GB/s" in lines[0]

def test_debug1_prints_kernel_count_and_plan_cache_hits(capsys):
  x = Tensor(np.ones(29, dtype=np.float32))
  with Context(DEBUG=1):
    (x * 2).realize()
    (x * 2).realize()
  out = capsys.readouterr().out
  assert "realize on CPU: 1 kernel" in out and "plan cache hit" in out

def test_debug6_prints_the_linearized_loops(capsys):
  x = Tensor(np.ones((31, 5), dtype=np.float32))
  with Context(DEBUG=6): x.sum(1).realize()
  out = capsys.readouterr().out
  assert "RANGE" in out and "ENDRANGE" in out and "ACCUMULATE" in out
