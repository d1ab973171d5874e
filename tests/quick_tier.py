"""What the quick tier (``pytest -m "not slow"``) leaves to the full suite.

Two rules, applied at collection by ``tests/conftest.py``:

1. Tests parametrized over the shared table of optimizers (``tests/optimizers.py``)
   run every row in the full suite, and only the rows in ``CORE_ROWS`` in the
   quick tier: the classic optimizers, one sign method and Muon.
2. Tests measured at ``THRESHOLD_S`` CPU seconds or more in a quick-tier run
   (the ``cpu_s`` that tests/conftest.py records; the wall-clock time where it
   is missing) are listed in ``quick_tier_slow.txt`` and run in the full suite
   only, except that each file keeps its cheapest test.  Regenerate the list
   after adding heavy tests (CPU seconds, so a busy machine measures as well):

       python -m pytest -m "not slow" -n 2 --junitxml=/tmp/quick.xml
       python tests/quick_tier.py /tmp/quick.xml

Modules marked ``pytestmark = pytest.mark.slow`` stay out of the quick tier as before.
"""

from __future__ import annotations

import functools
import os
import pathlib
import sys
import xml.etree.ElementTree as ElementTree

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
LIST = HERE / "quick_tier_slow.txt"
THRESHOLD_S = 0.3
CORE_ROWS = frozenset({"sgd", "adam", "adamw", "rmsprop", "adagrad", "lion", "muon"})


def measured_slow() -> frozenset[str]:
    """Node ids of the tests measured above the threshold."""
    if not LIST.exists():
        return frozenset()
    lines = LIST.read_text().splitlines()
    return frozenset(line for line in lines if line and not line.startswith("#"))


@functools.cache
def table_rows() -> frozenset[str]:
    """The names of the rows of the shared table of optimizers."""
    sys.path[:0] = [str(HERE), str(ROOT)]  # the table, and the gradtx it imports
    from optimizers import OPTIMIZERS

    return frozenset(row.name for row in OPTIMIZERS)


def outside_core(param_ids: list[str]) -> bool:
    """Whether a test's parameters name a table row outside ``CORE_ROWS``."""
    rows = table_rows()
    named = [p for p in param_ids if p in rows]
    return bool(named) and not any(p in CORE_ROWS for p in named)


def _ids(nodeid: str) -> list[str]:
    return nodeid.rsplit("[", 1)[1].rstrip("]").split("-") if nodeid.endswith("]") else []


def _nodeid(classname: str, name: str) -> str:
    """junit's dotted classname + name -> pytest's node id (path::Class::test)."""
    parts = classname.split(".")
    for i in range(len(parts), 0, -1):
        path = "/".join(parts[:i]) + ".py"
        if (ROOT / path).exists():
            return "::".join([path, *parts[i:], name])
    raise ValueError(f"no file for junit classname {classname!r}")


def _seconds(case) -> float:
    """A junit test case's cost: the CPU seconds tests/conftest.py records (``cpu_s``),
    which do not grow with the load on the machine, or else its wall-clock time."""
    for prop in case.iter("property"):
        if prop.get("name") == "cpu_s":
            return float(prop.get("value"))
    return float(case.get("time") or 0)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    cases = ElementTree.parse(argv[0]).getroot().iter("testcase")
    cost = {_nodeid(c.get("classname"), c.get("name")): _seconds(c) for c in cases}
    slow = {n for n, s in cost.items() if s >= THRESHOLD_S}
    # Every file keeps its cheapest test in the quick tier, so that the tier still
    # imports and exercises every module.
    for path in {n.split("::", 1)[0] for n in cost}:
        mine = [n for n in cost if n.split("::", 1)[0] == path]
        if all(n in slow for n in mine):
            slow.discard(min(mine, key=cost.__getitem__))
    slow = sorted((slow | measured_slow()) - {n for n in slow if outside_core(_ids(n))})
    header = (
        f"# Tests measured at {THRESHOLD_S} CPU seconds or more in the quick tier; "
        "they run in the full suite only (tests/quick_tier.py).\n"
    )
    LIST.write_text(header + "".join(f"{n}\n" for n in slow))
    print(f"{len(slow)} tests listed in {os.path.relpath(LIST)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
