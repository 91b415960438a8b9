"""Shared pytest configuration: markers and hypothesis profiles.

Profiles (select with HYPOTHESIS_PROFILE=name): "default" (local runs), "ci" (CI=true: derandomized so a red run
reproduces, no example database). Each test sets its own max_examples through strategies.examples(n); set
HYPOTHESIS_SCALE=10 to multiply them all when hunting bugs by hand.
"""
import os, sys
from hypothesis import HealthCheck, settings

# every new allocation is filled with 0xFF bytes (NaN / -1), so a kernel that reads memory nobody wrote fails a test
# instead of passing by luck (see runtime/cpu.py); set before the library is imported
os.environ.setdefault("POISON", "1")

# tests/strategies.py is imported as `strategies` whatever pytest's rootdir/import mode is
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

_common = dict(deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("default", **_common)
settings.register_profile("ci", derandomize=True, database=None, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default"))

def pytest_configure(config):
  config.addinivalue_line("markers", "slow: long-running tests (deselect with -m 'not slow')")
  config.addinivalue_line("markers", "cuda: needs an NVIDIA GPU and pycuda")
  config.addinivalue_line("markers", "ptx: needs ptxas to assemble rendered PTX")
