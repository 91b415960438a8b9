"""Every Python code block in README.md runs as written."""
import pathlib, re
import pytest

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)

@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_block_runs(code):
  exec(compile(code, str(README), "exec"), {"__name__": "readme"})

def test_readme_has_code_blocks():
  assert len(BLOCKS) >= 2
