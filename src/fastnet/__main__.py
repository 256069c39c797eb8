"""python -m fastnet demo | bench | config"""
from __future__ import annotations

import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastnet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="tell the seed's story: chain rule, step vs sigmoid, a real task")
    sub.add_parser("config", help="show which kernels run and how they are blocked")
    bench = sub.add_parser("bench", help="compare fastnet with NumPy, PyTorch and scikit-learn")
    bench.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import main as demo

        return demo()
    if args.command == "config":
        import fastnet

        fastnet.show_config()
        return 0
    from .bench import main as bench_main

    return bench_main(args.rest)


if __name__ == "__main__":
    sys.exit(main())
