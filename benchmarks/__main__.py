"""`make bench`: every benchmark table, with the machine it ran on."""

from benchmarks import (
    bench_assign,
    bench_demo,
    bench_detail,
    bench_render,
    bench_repeats,
    bench_score,
)
from benchmarks.table import machine


def main() -> None:
    """Run all benchmarks in turn."""
    print(f"Machine: {machine()}")
    bench_score.main()
    bench_assign.main()
    bench_demo.main()
    bench_repeats.main([])
    bench_detail.main(["--first", "400"])
    bench_render.main([])


if __name__ == "__main__":
    main()
