"""The examples run end to end (tiny settings) and print their parseable result lines."""
import os, re, subprocess, sys, pathlib
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
HAS_FASHION = os.path.isdir("/usr/share/datasets/fashion-mnist") or bool(os.environ.get("MNIST_DIR"))

def run(script: str, *args: str) -> str:
  env = {**os.environ, "PYTHONPATH": str(ROOT)}
  p = subprocess.run([sys.executable, str(ROOT / "examples" / script), *args], env=env, capture_output=True, text=True, timeout=600)
  assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
  return p.stdout

def test_xor_learns_all_four_cases():
  out = run("xor.py")
  preds = [(int(t), float(p)) for t, p in re.findall(r"target=(\d) prediction=([0-9.]+)", out)]
  assert len(preds) == 4 and all((p > 0.5) == bool(t) for t, p in preds), out

def test_quickstart_runs():
  assert "1 kernel" in run("quickstart.py")

@pytest.mark.parametrize("script,args", [("mnist_mlp.py", ["--steps", "30"]), ("mnist_cnn.py", ["--steps", "8"]),
                                         ("resnet_mnist.py", ["--steps", "3"])])
def test_fashion_mnist_examples_train(script, args):
  if not HAS_FASHION: pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist, or set MNIST_DIR)")
  out = run(script, *args)
  first, last = map(float, re.search(r"loss: ([0-9.]+) -> ([0-9.]+)", out).groups())
  acc = float(re.search(r"test accuracy: ([0-9.]+)", out).group(1))
  assert last < first and 0.1 < acc <= 1.0, out

def test_cartpole_policy_gradient_runs():
  out = run("cartpole_pg.py", "--iters", "3", "--numpy-env")
  assert re.search(r"eval average return: [0-9.]+", out), out
