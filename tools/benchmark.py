"""Training and inference throughput (img/s) and peak memory of our InceptionNeXt next to timm's models.

    python tools/benchmark.py --threads 2 --rounds 7 --json work_dirs/bench.json --plot work_dirs/bench.png
    python tools/benchmark.py --device cuda --paper --precision bf16 [--compile] [--arch small]
    python tools/benchmark.py --dense --batch-size 2 --train-batch-size 2
    python tools/benchmark.py --config CONFIG --models convnext

``--help`` explains every argument and how the timing is done; the library is :mod:`mmincnext.benchmark`.
"""
from mmincnext.benchmark.cli import benchmark_main as main
from mmincnext.benchmark.cli import parse_args  # noqa: F401  (the arguments, for checks of documented commands)

if __name__ == '__main__':
    main()
