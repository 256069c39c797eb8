"""python -m fastnet demo | bench | config"""
from __future__ import annotations

import argparse
import sys


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # every further argument belongs to the bench command
        from .bench import main as bench_main

        return bench_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m fastnet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="tell the seed's story: chain rule, step vs sigmoid, a real task")
    sub.add_parser("config", help="show which kernels run and how they are blocked")
    sub.add_parser("bench", help="compare fastnet with NumPy, PyTorch and scikit-learn "
                   "(python -m fastnet bench --help)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import main as demo

        return demo()
    if args.command == "config":
        import fastnet

        fastnet.show_config()
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
