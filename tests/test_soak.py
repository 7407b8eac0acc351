"""The differential soak: the engine against the reference model on many random programs
(tests/test_differential.py's state machine, invariants checked after every step).

Run before a release (not part of the normal suite; it is skipped unless selected):

    FASTNUMA_SOAK_PROGRAMS=100000 pytest -m soak tests/test_soak.py -s

It prints the rate (programs/s). A mismatch is shrunk by hypothesis to a minimal program
and saved as a runnable reproducer, ``soak-failures/repro-<time>.py`` (directory:
``FASTNUMA_SOAK_DIR``), before the test fails.
"""
import os
import time

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from tests.test_differential import Differential

PROGRAMS = int(os.environ.get("FASTNUMA_SOAK_PROGRAMS", "100000"))
STEPS = int(os.environ.get("FASTNUMA_SOAK_STEPS", "25"))

REPRO_HEADER = '''"""A differential-soak mismatch, shrunk by hypothesis: run with
    PYTHONPATH=src python -m pytest -q {name}
"""
import numpy as np  # noqa: F401
import fastnuma as fn  # noqa: F401
from hypothesis.stateful import run_state_machine_as_test  # noqa: F401
from tests.test_differential import Differential  # noqa: F401

# hypothesis's report of the failing program (the calls, in order):
{steps}


def test_reproduce():
{body}
'''


def save_reproducer(error, directory):
    """Write the shrunk failing program that hypothesis attached to ``error`` as a test
    file; returns its path."""
    notes = list(getattr(error, "__notes__", []))
    steps = "\n".join("# " + line for note in notes for line in note.splitlines())
    lines = [line for note in notes for line in note.splitlines()]
    first = next((k for k, line in enumerate(lines) if line.startswith("state = ")), len(lines))
    last = next((k for k in range(len(lines) - 1, first - 1, -1)
                 if lines[k].startswith("state.teardown()")), len(lines) - 1)
    code = lines[first:last + 1]         # every line of the program: calls span several
    body = "\n".join("    " + line.replace("Counted(", "Differential(")
                     for line in code if line.strip()) or "    pass"
    os.makedirs(directory, exist_ok=True)
    name = os.path.join(directory, f"repro-{time.strftime('%Y%m%d-%H%M%S')}.py")
    with open(name, "w") as f:
        f.write(REPRO_HEADER.format(name=name, steps=steps, body=body))
        f.write(f"\n# the failure:\n" + "\n".join("# " + line for line in
                                                  str(error).splitlines()[:40]) + "\n")
    return name


class Counted(Differential):
    programs = 0

    def __init__(self):
        super().__init__()
        Counted.programs += 1


@pytest.mark.soak
def test_differential_soak():
    directory = os.environ.get("FASTNUMA_SOAK_DIR", "soak-failures")
    Counted.programs = 0
    t0 = time.perf_counter()
    try:
        run_state_machine_as_test(Counted, settings=settings(
            max_examples=PROGRAMS, stateful_step_count=STEPS, deadline=None, database=None,
            phases=[Phase.generate, Phase.shrink], print_blob=True,
            suppress_health_check=list(HealthCheck)))
    except Exception as e:
        path = save_reproducer(e, directory)
        raise AssertionError(f"engine and model disagree; minimal reproducer: {path}") from e
    finally:
        dt = time.perf_counter() - t0
        print(f"\ndifferential soak: {Counted.programs} programs (up to {STEPS} steps) in "
              f"{dt:.0f} s: {Counted.programs / dt:.1f} programs/s")


def test_save_reproducer_writes_the_steps(tmp_path):
    """The reproducer file holds hypothesis's steps as code and the failure."""
    e = AssertionError("mismatch: vmstat")
    e.add_note("Falsifying example:\nstate = Differential()\nstate.build(fill=0)\n"
               "state.advance(ms=3, ns=0)\nstate.teardown()")
    path = save_reproducer(e, str(tmp_path))
    text = open(path).read()
    assert "    state = Differential()\n    state.build(fill=0)\n    state.advance(ms=3, ns=0)" in text
    assert "# mismatch: vmstat" in text
    compile(text, path, "exec")


def test_save_reproducer_keeps_calls_over_several_lines(tmp_path):
    """A call hypothesis prints over several lines is written whole (its closing
    parenthesis too), so the reproducer runs."""
    e = AssertionError("mismatch: numa_maps")
    e.add_note("Falsifying example:\nstate = Differential()\nstate.build(\n    fill=0,\n"
               "    nodes=[1, 2],\n)\nstate.teardown()\nExplanation: a note after it")
    path = save_reproducer(e, str(tmp_path))
    text = open(path).read()
    assert ("    state.build(\n        fill=0,\n        nodes=[1, 2],\n    )\n"
            "    state.teardown()\n") in text
    assert "    Explanation" not in text
    compile(text, path, "exec")
