"""The mutation score per module, from mutmut's results (run by ``make mutate``).

A mutant is *killed* when a test fails on it (a timeout counts: the tests noticed), *survived*
when every test passed, *untested* when no selected test runs its function: untested mutants count
against the score like survivors. Mutants listed in ``tests/mutation_equivalent.txt`` (name, a tab, the
reason) behave exactly like the original code, so no test could kill them: they are left out of
the score. Prints a table, then every surviving mutant, and exits 1 when a module is below the
target.

    python tests/mutation_score.py [--target 0.85] [MODULE ...]

MODULE (a path such as ``lesionpaste/contract.py``) limits the table to those modules.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

KILLED = {"killed", "timeout", "caught by type check", "segfault"}
HERE = Path(__file__).resolve().parent


def results(mutmut: str) -> dict[str, str]:
    """Every mutant's name and status, as ``mutmut results --all true`` prints them."""
    out = subprocess.run(
        [mutmut, "results", "--all", "true"], capture_output=True, text=True, check=True
    ).stdout
    found = {}
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and "__mutmut_" in name:
            found[name] = status
    return found


def module_of(mutant: str) -> str:
    """``synth.pasting.paste.x_mixup_paste__mutmut_3`` -> ``synth/pasting/paste.py``."""
    dotted = re.split(r"\.x[_ǁ]", mutant, maxsplit=1)[0]
    return dotted.replace(".", "/") + ".py"


def equivalents(path: Path = HERE / "mutation_equivalent.txt") -> dict[str, str]:
    """The recorded equivalent mutants and why each is one."""
    if not path.is_file():
        return {}
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, reason = line.partition("\t")
            found[name.strip()] = reason.strip()
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=float, default=0.85)
    parser.add_argument("modules", nargs="*", help="only these modules (paths), else all")
    parser.add_argument("--mutmut", default=str(Path(sys.executable).with_name("mutmut")))
    args = parser.parse_args()
    status = results(args.mutmut)
    equivalent = equivalents()
    table: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    survivors = []
    for name, state in sorted(status.items()):
        module = module_of(name)
        if args.modules and module not in args.modules:
            continue
        row = table[module]
        if name in equivalent:
            row["equivalent"] += 1
        elif state in KILLED:
            row["killed"] += 1
        elif state == "survived":
            row["survived"] += 1
            survivors.append(name)
        elif state == "no tests":
            row["untested"] += 1
            survivors.append(name + "  (no test runs it)")
        else:
            row["other"] += 1  # not checked (an interrupted run), skipped, suspicious
    print(f"{'module':<36} {'mutants':>7} {'equiv.':>6} {'killed':>6} {'survived':>8} "
          f"{'untested':>8} {'other':>5} {'score':>6}")  # fmt: skip
    below = []
    for module, row in sorted(table.items()):
        counted = row["killed"] + row["survived"] + row["untested"]
        score = row["killed"] / counted if counted else float("nan")
        total = sum(row.values())
        print(f"{module:<36} {total:>7} {row['equivalent']:>6} {row['killed']:>6} "
              f"{row['survived']:>8} {row['untested']:>8} {row['other']:>5} "
              f"{score:>6.1%}")  # fmt: skip
        if not score >= args.target:
            below.append(module)
    if survivors:
        print(f"\nsurviving mutants ({len(survivors)}; `mutmut show NAME` shows one):")
        for name in survivors:
            print(f"  {name}")
    if below:
        print(f"\nbelow the {args.target:.0%} target: {', '.join(below)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
