"""The example programs run end to end: each as a subprocess with tiny settings, checking the exit status, that the
loss went down and that the final metric line parses. The full-length CNN run (>= 88% test accuracy, ~1.5 min on
2 cores) is marked slow. Examples that read Fashion-MNIST are skipped when the data set is not installed.
"""
import os, re, subprocess, sys
import pytest
from tinygrad.nn.datasets import FASHION_DIR

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "examples")
NUMBER = r"([-+]?\d+(?:\.\d+)?)"

needs_fashion = pytest.mark.skipif(not os.path.isdir(FASHION_DIR) and not os.environ.get("MNIST_DIR"),
                                   reason=f"Fashion-MNIST not found in {FASHION_DIR} (apt-get install dataset-fashion-mnist)")

def run_example(name: str, *args: str, timeout: int = 300) -> str:
  """Run examples/<name> with the repository importable; return its stdout (the progress bar goes to stderr)."""
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
  proc = subprocess.run([sys.executable, os.path.join(EXAMPLES, name), *args], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=timeout)
  assert proc.returncode == 0, f"{name} {' '.join(args)} exited with {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
  return proc.stdout

def metric(out: str, label: str) -> float:
  m = re.search(rf"^{re.escape(label)}: {NUMBER}\s*$", out, re.MULTILINE)
  assert m is not None, f"no line '{label}: <number>' in the output:\n{out}"
  return float(m.group(1))

def first_last(out: str, label: str) -> tuple[float, float]:
  m = re.search(rf"^{re.escape(label)}: {NUMBER} -> {NUMBER}\s*$", out, re.MULTILINE)
  assert m is not None, f"no line '{label}: <first> -> <last>' in the output:\n{out}"
  return float(m.group(1)), float(m.group(2))

def test_quickstart_runs():
  assert "1 kernel" in run_example("quickstart.py")

def test_xor_learns_all_four_cases():
  out = run_example("xor.py", "--steps", "150")
  preds = re.findall(rf"^x=\[(\d), (\d)\] target=(\d) prediction={NUMBER}$", out, re.MULTILINE)
  assert len(preds) == 4, out
  for a, b, target, p in preds:
    assert int(a) ^ int(b) == int(target)
    assert (float(p) > 0.5) == (target == "1"), f"XOR({a}, {b}) = {target} but the MLP predicts {p}\n{out}"
  assert metric(out, "xor accuracy") == 1.0
  first, last = first_last(out, "loss")
  assert last < first / 10

def test_xor_linear_demo_prints_a_readable_value():
  out = run_example("xor.py", "--steps", "1")
  lines = out.splitlines()
  i = next(i for i, line in enumerate(lines) if "model(Tensor([[0, 0]]))" in line)
  assert re.search(r"\[\[\s*[-+]?\d+\.\d+", lines[i + 1]), f"print(model(Tensor([[0, 0]]))) printed {lines[i + 1]!r}"

@needs_fashion
def test_mnist_mlp_tiny():
  out = run_example("mnist_mlp.py", "--steps", "20", "--batch", "64")
  first, last = first_last(out, "loss")
  assert last < first
  assert 0.3 < metric(out, "test accuracy") <= 1.0  # 10 classes: chance is 0.1

@needs_fashion
def test_mnist_cnn_tiny():
  out = run_example("mnist_cnn.py", "--steps", "20", "--batch", "64")
  first, last = first_last(out, "loss")
  assert last < first
  assert 0.2 < metric(out, "test accuracy") <= 1.0

@needs_fashion
def test_resnet_mnist_tiny():
  # a few steps, but ~45 s: most of it is building the two training plans and the evaluation plan
  out = run_example("resnet_mnist.py", "--steps", "8", "--batch", "32")
  first, last = first_last(out, "loss")
  assert last < first
  assert 0.0 <= metric(out, "test accuracy") <= 1.0

def test_cartpole_pg_tiny_numpy_env():
  out = run_example("cartpole_pg.py", "--iters", "8", "--episodes", "8", "--numpy-env")
  assert "environment: numpy CartPole" in out
  first, last = first_last(out, "average return")
  assert 8 <= first <= 500 and 8 <= last <= 500  # a pole falls after 8 steps at the earliest
  assert 8 <= metric(out, "eval average return") <= 500

def test_cartpole_pg_tiny_gymnasium():
  pytest.importorskip("gymnasium", reason="gymnasium is optional: without it the example uses its numpy CartPole")
  out = run_example("cartpole_pg.py", "--iters", "3", "--episodes", "4")
  assert "environment: gymnasium CartPole-v1" in out
  assert 8 <= metric(out, "eval average return") <= 500

@pytest.mark.slow
@needs_fashion
def test_mnist_cnn_full_reaches_88_percent():
  out = run_example("mnist_cnn.py", timeout=900)  # defaults: 2 epochs, ~1.5 min on 2 cores
  assert metric(out, "test accuracy") >= 0.88, out
