"""Command line: ``python -m manygil {demo,check} ...``.

``python -m manygil demo``
    Run one CPU-bound workload sequentially, on ThreadPoolExecutor, on
    ProcessPoolExecutor and on manygil's pool; print time, speedup and peak
    memory of each.

``python -m manygil check MODULE [MODULE ...]``
    Say, for each module, whether it imports in an isolated own-GIL
    interpreter.  Exits 1 if any does not.

``python -m manygil include``
    Print the folder holding ``manygil.h``, the C API for programs that
    embed Python (``manygil.get_include()``).

``python -m manygil stacks``
    Show how to see every interpreter's Python stacks in a running program:
    put these lines in it, then send it SIGUSR1 (``kill -USR1 <pid>``)::

        import signal, manygil
        signal.signal(signal.SIGUSR1, lambda signum, frame: manygil.dump_stacks())

    ``manygil.dump_stacks()`` writes, for each interpreter, each thread's
    stack and what it waits on, to stderr.  ``manygil.watchdog(warn_after=10)``
    does it by itself for anything stuck longer than ``warn_after`` seconds.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys


def check(modules: list[str]) -> int:
    import manygil
    failed = 0
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            print(f"{name}: no (not found in the main interpreter either)")
            failed += 1
            continue
        with manygil.create() as interp:
            try:
                interp.exec(f"import {name}")
            except manygil.ExecutionFailed as exc:
                print(f"{name}: no ({_reason(exc.excinfo)})")
                failed += 1
            else:
                print(f"{name}: yes")
    return 1 if failed else 0


def _reason(excinfo) -> str:
    """One line saying why an import failed.  Packages often wrap the
    ImportError of their extension in a long message of their own (numpy
    does); the line from the extension's loader says it best."""
    lines = [ln.strip() for ln in excinfo.formatted.splitlines()]
    for ln in lines:
        if ln.startswith("ImportError:") and ("subinterpreter" in ln or "more than once" in ln):
            return ln
    first = next((ln for ln in excinfo.msg.splitlines() if ln.strip()), "")
    return f"{excinfo.type.__name__}: {first}".rstrip(": ")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m manygil", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="CPU-bound workload: sequential, threads, processes, manygil")
    p_demo.add_argument("--limit", type=int, default=1_500_000,
                        help="count primes below this (default 1,500,000)")
    p_demo.add_argument("--workers", type=int, default=None,
                        help="interpreters to use (default: number of CPUs)")
    p_check = sub.add_parser("check", help="can these modules load in own-GIL interpreters?")
    p_check.add_argument("modules", nargs="+", metavar="MODULE")
    sub.add_parser("stacks", help="how to dump every interpreter's stacks on SIGUSR1")
    sub.add_parser("include", help="print the folder holding manygil.h (the C API for hosts)")
    args = parser.parse_args(argv)
    if args.command == "include":
        import manygil
        print(manygil.get_include())
        return 0
    if args.command == "stacks":
        doc = __doc__ or ""
        print(doc[doc.index("``python -m manygil stacks``"):].strip())
        return 0
    if args.command == "demo":
        from . import _demo
        _demo.main(args.limit, args.workers)
        return 0
    return check(args.modules)


if __name__ == "__main__":
    sys.exit(main())
