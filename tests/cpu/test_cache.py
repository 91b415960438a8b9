"""The disk cache of object code: warm runs compile nothing; a broken cache never breaks a run."""
import os, subprocess, sys, json, pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROG = """
import json, sys
preloaded = set(sys.modules)  # by the interpreter's start (a site-packages .pth may import tempfile)
from tinygrad import Tensor
from tinygrad.device import Device
out = ((Tensor([[1.0, 2.0], [3.0, 4.0]]) * 3 + 1).sum(1)).tolist()
c = Device["CPU"].compiler
print(json.dumps({"out": out, "llvm_compiles": c.llvm_compiles, "disk_hits": c.disk_hits,
                  "slow_imports": sorted({"tempfile", "hashlib"} & set(sys.modules) - preloaded)}))
"""

def run(env_extra: dict) -> tuple[dict, str]:
  env = {**os.environ, "PYTHONPATH": str(ROOT), **env_extra}
  p = subprocess.run([sys.executable, "-c", PROG], env=env, capture_output=True, text=True, timeout=120)
  assert p.returncode == 0, p.stderr
  return json.loads(p.stdout.strip().splitlines()[-1]), p.stderr

def test_second_process_with_warm_cache_compiles_nothing(tmp_path):
  first, _ = run({"CACHEDB": str(tmp_path)})
  second, _ = run({"CACHEDB": str(tmp_path)})
  assert first["out"] == second["out"] == [11.0, 23.0]
  assert first["llvm_compiles"] >= 1
  # a first result's cache writes load neither module (~8 ms of a fresh process together)
  assert first["slow_imports"] == [], first["slow_imports"]
  assert second["llvm_compiles"] == 0 and second["disk_hits"] == first["llvm_compiles"]

def test_corrupt_cache_files_are_ignored(tmp_path):
  run({"CACHEDB": str(tmp_path)})
  files = [p for p in tmp_path.rglob("*") if p.is_file()]
  assert files
  for p in files: p.write_bytes(b"garbage" * 3)
  res, _ = run({"CACHEDB": str(tmp_path)})
  assert res["out"] == [11.0, 23.0] and res["llvm_compiles"] >= 1

def test_unwritable_cache_location_warns_and_computes(tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("not a directory")
  res, err = run({"CACHEDB": str(blocker / "cache")})
  assert res["out"] == [11.0, 23.0]
  assert "disk cache" in err and "compiling without the cache" in err

def test_cachelevel_zero_disables_the_cache(tmp_path):
  run({"CACHEDB": str(tmp_path), "CACHELEVEL": "0"})
  assert not any(p.is_file() for p in tmp_path.rglob("*"))

def test_concurrent_processes_share_a_cache(tmp_path):
  env = {**os.environ, "PYTHONPATH": str(ROOT), "CACHEDB": str(tmp_path)}
  procs = [subprocess.Popen([sys.executable, "-c", PROG], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
  outs = [p.communicate(timeout=120) for p in procs]
  assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
  assert all(json.loads(o[0].strip().splitlines()[-1])["out"] == [11.0, 23.0] for o in outs)
  assert not [p for p in tmp_path.rglob(".tmp-*")]  # no temp file left behind
