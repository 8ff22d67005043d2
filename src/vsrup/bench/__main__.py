"""Child entry point of `vsrup bench`: python -m vsrup.bench --one '{"measure": ...}'."""

import sys

from vsrup.bench.measure import child_main

if len(sys.argv) == 3 and sys.argv[1] == "--one":
    sys.exit(child_main(sys.argv[2]))
print("usage: python -m vsrup.bench --one SPEC_JSON  (use `vsrup bench` for the benchmark)", file=sys.stderr)
sys.exit(2)
