"""README's Python examples run, and print what their comments say."""
import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_examples_run_and_print_what_they_claim():
    blocks = python_blocks()
    assert blocks
    for code in blocks:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, str(README), "exec"), {})
        printed = [line for line in out.getvalue().splitlines() if line]
        claims = [m.group(1).strip() for line in code.splitlines()
                  if line.lstrip().startswith("print(")
                  and (m := re.search(r"#\s*(.*)$", line))]
        assert len(printed) >= len(claims)
        for got, claim in zip(printed, claims):
            expected = claim.split(":")[0] if claim.startswith("errno.") else claim
            if expected.startswith("errno."):
                import errno
                assert int(got) == getattr(errno, expected.split(".")[1]), (got, claim)
            else:
                assert got.startswith(expected.rstrip(". ")), (got, claim)
