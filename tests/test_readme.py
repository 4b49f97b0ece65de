"""The README's ten-line example runs as written and does what its comments say."""

import re
from pathlib import Path

import numpy as np


def test_the_readme_example_runs_and_solves_both_problems():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    code = re.search(r"## Ten lines\n\n```python\n(.*?)```", readme, re.S).group(1)
    namespace = {}
    exec(compile(code.replace("print(", "(lambda *a: None)("), "README.md", "exec"), namespace)
    res = namespace["res"]  # the SPSA run, the last one
    assert res.nfev <= 2000
    assert 10 + np.sum((res.x - 0.5) ** 2) <= 10.05  # within 0.5% of the optimum value 10


def test_every_command_line_option_is_documented():
    """Each option of `gdtools tune`, `plot` and `dream` (--help) appears on its page in docs/."""
    import argparse

    from gdtools.cli import build_parser

    docs = Path(__file__).parent.parent / "docs"
    pages = {"tune": "tuning.md", "plot": "plotting.md", "dream": "deepdream.md", "layers": "deepdream.md"}
    subcommands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    missing = []
    for name, parser in subcommands.choices.items():
        text = (docs / pages[name]).read_text()
        for action in parser._actions:
            names = [o for o in action.option_strings if o not in ("-h", "--help")]
            if names and not any(re.search(re.escape(o) + r"(?![\w-])", text) for o in names):
                missing.append(f"{name} {names[-1]}")
    assert missing == []
