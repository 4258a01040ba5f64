"""`python -m bench [NAME ...]`: run the benchmarks (every module of this package with ``main``)."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench


def main(names: list[str]) -> None:
    modules = sorted(info.name for info in pkgutil.iter_modules(bench.__path__))
    chosen = names or [name for name in modules if not name.startswith("_")]
    unknown = sorted(set(chosen) - set(modules))
    if unknown:
        sys.exit(f"unknown benchmark {', '.join(unknown)}; available: {', '.join(modules)}")
    for name in chosen:
        module = importlib.import_module(f"bench.{name}")
        if hasattr(module, "main"):
            print(f"\n## bench.{name}\n", flush=True)
            module.main()


if __name__ == "__main__":
    main(sys.argv[1:])
