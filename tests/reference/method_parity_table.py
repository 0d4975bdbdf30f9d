#!/usr/bin/env python3
"""Prints docs/method-parity.md's "Every case" table from the output of the parity test:

    build/tests/test_distill --gtest_filter='Cases/MethodParity.*' | \
        /usr/bin/python3 tests/reference/method_parity_table.py

Each case line of the test ("NAME (SPEC): S steps, N tensors compared; largest relative
difference: terms X, changes Y") becomes a row; the `--method` and reference columns are the case's
entry in the CASES of its module of tests/reference/method_parity/. Fails if a case of the test output
has no module or a module's case is missing from the output."""
import importlib
import os
import re
import sys

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "method_parity")
sys.path.insert(0, HERE)

LINE = re.compile(r"^(\S+) \((.*)\): (\d+) steps, (\d+) tensors compared; largest relative "
                  r"difference: terms (\S+), changes (\S+)$")


def main():
    module_of = {}
    for f in sorted(os.listdir(HERE)):
        if f.endswith(".py") and f != "common.py":
            for case in importlib.import_module(f[:-3]).CASES:
                module_of[case[0]] = (f, case[1])
    rows = {}
    for line in sys.stdin:
        m = LINE.match(line.strip())
        if m:
            rows[m.group(1)] = m.groups()
    missing = sorted(set(module_of) - set(rows))
    unknown = sorted(set(rows) - set(module_of))
    if missing or unknown:
        sys.exit(f"cases without a result: {missing}; results without a module: {unknown}")
    print("| case | `--method` | steps | tensors | terms | changes | reference |")
    print("|---|---|---|---|---|---|---|")
    for name in sorted(rows):
        module, spec = module_of[name]  # the case's own --method (the test substitutes @TEACHER@)
        _, _, steps, tensors, terms, changes = rows[name]
        print(f"| {name} | `{spec}` | {steps} | {tensors} | {terms} | {changes} | {module} |")
    print(f"\n{len(rows)} cases", file=sys.stderr)


if __name__ == "__main__":
    main()
