"""The README's Python example runs as written."""

import re
from pathlib import Path

import torch


def test_readme_example_runs(capsys):
    text = (Path(__file__).parent.parent / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    torch.manual_seed(0)
    exec(compile(code, "README.md", "exec"), {})
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["1", "3600", "86400", "31536000"]
    accs = [float(line.split()[1]) for line in lines]
    assert all(a > 0.85 for a in accs)  # one FP32 epoch of LeNet-5, on PCM with GDC
