"""The token mixer alone at the network's shapes: the fused Triton kernel, eager and compiled, against the fewest
bytes any implementation must move.

    python tools/benchmark_mixer.py --device cuda --precision bf16 --amp --batch-size 128 [--compile]

``--help`` explains every argument; the library is :mod:`mmincnext.benchmark.mixer`.
"""
from mmincnext.benchmark.cli import mixer_main as main
from mmincnext.benchmark.cli import parse_mixer_args as parse_args  # noqa: F401  (for checks of documented commands)

if __name__ == '__main__':
    main()
