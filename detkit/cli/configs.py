"""List the configs that ship inside the detkit package (``detkit configs [PATTERN]``).

A listed name can be given to every tool in place of a path: ``detkit train yolo_n_shapes``.
"""

from __future__ import annotations

import argparse
import sys

from detkit.config import packaged_configs


def main(argv: list[str] | None = None) -> int:
    """Print ``name  path`` for every packaged config whose name contains PATTERN."""
    ap = argparse.ArgumentParser(prog="detkit configs", description=__doc__.splitlines()[0])
    ap.add_argument("pattern", nargs="?", default="", help="only names containing this text")
    args = ap.parse_args(argv)
    found = {k: v for k, v in packaged_configs().items() if args.pattern in k}
    if not found:
        print(f"configs: no packaged config matches '{args.pattern}'", file=sys.stderr)
        return 2
    width = max(map(len, found))
    for name, path in found.items():
        print(f"{name:<{width}}  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
