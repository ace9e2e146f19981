"""The README's Python examples run as they are written, and print what their comments say."""

import pathlib
import re
import subprocess
import sys

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def printed_claims(code):
    """(k, claim) for each print line k of code whose comment starts with what it prints: the
    comment's leading numbers and brackets ("(8, 2) (8, 1)", "[[0 1 1 0]]", "0.977", "20")."""
    prints = [line for line in code.splitlines() if line.startswith("print(")]
    claims = [(k, re.match(r"[-0-9()\[\], .]*", line.split("#", 1)[1].strip()).group().strip())
              if "#" in line else (k, "") for k, line in enumerate(prints)]
    return len(prints), [(k, claim) for k, claim in claims if claim]


def test_the_readme_has_examples():
    assert len(EXAMPLES) >= 2
    assert sum(len(printed_claims(code)[1]) for code in EXAMPLES) >= 4


def matches(claim, line):
    """The printed line shows the claim: a decimal number within 0.02 (an accuracy, which rounding
    on another processor may move), anything else as written."""
    if re.fullmatch(r"\d+\.\d+", claim):
        return abs(float(line.split()[0].rstrip(":")) - float(claim)) <= 0.02
    return claim in line


@pytest.mark.parametrize("code", EXAMPLES, ids=[f"example{k}" for k in range(1, len(EXAMPLES) + 1)])
def test_a_readme_example_runs(code, tmp_path):
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    count, claims = printed_claims(code)
    lines = done.stdout.splitlines()
    assert len(lines) == count  # one line per print
    for k, claim in claims:
        assert matches(claim, lines[k]), (claim, lines[k])
