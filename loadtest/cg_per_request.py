#!/usr/bin/env python3
"""Instructions per request by function, from callgrind dumps of N requests.

Usage: cg_per_request.py N LABEL=FILE [LABEL=FILE ...] [--top K] [--exclusive] [--grep REGEX]

Each FILE holds the counts of N requests after a warm-up (loadtest/instructions.sh with
CG_KEEP=DIR keeps the data-plane thread's as DIR/NAME-PATH.out). For every function: Ir / N.
Inclusive by default (the function and everything it calls). Async state machines call each
other through poll cycles, so inclusive counts of futures high in the stack exceed the total;
compare hooks and leaf functions, not the top of the stack. One column per LABEL, rows sorted by
the largest value across columns.
"""
import re
import subprocess
import sys


def counts(path, inclusive):
    out = subprocess.run(
        ["callgrind_annotate", "--auto=no", "--threshold=100", f"--inclusive={'yes' if inclusive else 'no'}", path],
        check=True, capture_output=True, text=True,
    ).stdout
    res = {}
    for line in out.splitlines():
        m = re.match(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*?)\s*$", line)
        if not m or "PROGRAM TOTALS" in line or m.group(2).startswith(("=>", "events annotated")):
            continue
        name = m.group(2)
        # "file:function [object]" -> "function"
        name = re.sub(r"\s+\[[^\]]*\]$", "", name)
        name = name.split(":", 1)[1] if re.match(r"^[^ ]*\.(rs|c|h|S|cpp):", name) or name.startswith("???:") else name
        res[name] = res.get(name, 0) + int(m.group(1).replace(",", ""))
    return res


def main(argv):
    top, inclusive, pat = 40, True, None
    args = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--top":
            top = int(argv[i + 1]); i += 2; continue
        if a == "--exclusive":
            inclusive = False; i += 1; continue
        if a == "--grep":
            pat = re.compile(argv[i + 1]); i += 2; continue
        args.append(a); i += 1
    if len(args) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    n = int(args[0])
    cols = []
    for spec in args[1:]:
        label, f = spec.split("=", 1)
        c = counts(f, inclusive)
        cols.append((label, {k: v / n for k, v in c.items()}))
    names = set().union(*(c for _, c in cols))
    if pat:
        names = {n for n in names if pat.search(n)}
    rows = sorted(names, key=lambda n: -max(c.get(n, 0) for _, c in cols))[:top]
    print("\t".join([l for l, _ in cols] + ["function"]))
    for n in rows:
        print("\t".join([f"{c.get(n, 0):.0f}" for _, c in cols] + [n[:160]]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
