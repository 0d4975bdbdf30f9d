#!/usr/bin/env python3
"""Writes tests/data/method_parity/<case>.safetensors: a few training steps of each method as an
independent PyTorch implementation (tests/reference/method_parity/<module>.py, written from the
specification in shared/methods, not from okd's code) computes them, in float64, from the
deterministic weights and images of method_parity/common.py. tests/distill/
test_method_parity.cpp runs okd's method on the same inputs and compares every loss term of
every step and the change of every tensor of every network over the run.

Every module of method_parity/ except common.py defines CASES: a list of
(case name, okd's --method value with options, factory of the implementation, clocks,
 run_case keyword arguments).

    /usr/bin/python3 tests/reference/make_method_parity.py            # every case
    /usr/bin/python3 tests/reference/make_method_parity.py dml ffl    # cases whose name starts so
"""
import importlib
import os
import sys

import torch

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "method_parity")
sys.path.insert(0, HERE)
from common import run_case  # noqa: E402


def main():
    torch.set_num_threads(1)
    prefixes = sys.argv[1:]
    modules = sorted(f[:-3] for f in os.listdir(HERE) if f.endswith(".py") and f != "common.py")
    written = 0
    for mod in modules:
        for name, spec, factory, clocks, kw in importlib.import_module(mod).CASES:
            if prefixes and not any(name.startswith(p) for p in prefixes):
                continue
            run_case(name, factory(), spec, clocks, **kw)
            written += 1
    if written == 0:
        sys.exit(f"no case starts with {' or '.join(prefixes)}")


if __name__ == "__main__":
    main()
