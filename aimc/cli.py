"""``aimc`` command line: thin over :mod:`aimc.experiments` and :mod:`aimc.energy`.

    aimc demo [--out DIR]
    aimc evaluate --config exp.toml [--out DIR]   (aimc evaluate --example: a file)
    aimc reproduce NAME [options]      (NAME: see `aimc reproduce --help`)
    aimc energy --model resnet32 --preset pcm14nm_legallo2023 [--json F] [--csv F]
"""

from __future__ import annotations

import importlib
import sys

# Studies by name -> module with a ``main(argv) -> int``; imported only when run.
STUDIES = {
    "insitu": "aimc.experiments.insitu",
    "snn-mnist": "aimc.experiments.snn_mnist",
    "correlation": "aimc.experiments.correlation",
    "pcm-neurons": "aimc.experiments.pcm_neurons",
    "joshi2020": "aimc.experiments.joshi2020",
    "seq-mnist": "aimc.experiments.seq_mnist",
}
COMMANDS = {
    "demo": "aimc.experiments.demo",
    "evaluate": "aimc.experiments.evaluate",
    "energy": "aimc.energy.cli",
}


def _run(module: str, argv: list[str]) -> int:
    return int(importlib.import_module(module).main(argv) or 0)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``aimc`` script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = ("usage: aimc {demo,evaluate,reproduce,energy} ...\n"
             "  aimc demo [--out DIR]\n"
             "  aimc evaluate --config exp.toml [--out DIR]  (--example prints a file)\n"
             f"  aimc reproduce {{{','.join(STUDIES)}}} [options]\n"
             "  aimc energy --model NAME --preset NAME [--json F] [--csv F]\n"
             "Each subcommand takes --help.")
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command in COMMANDS:
        return _run(COMMANDS[command], rest)
    if command == "reproduce":
        if not rest or rest[0] in ("-h", "--help"):
            print(f"usage: aimc reproduce {{{','.join(STUDIES)}}} [options]")
            return 0 if rest else 2
        if rest[0] not in STUDIES:
            print(f"aimc reproduce: unknown study {rest[0]!r}; known: {', '.join(STUDIES)}",
                  file=sys.stderr)
            return 2
        return _run(STUDIES[rest[0]], rest[1:])
    print(f"aimc: unknown command {command!r}\n{usage}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
