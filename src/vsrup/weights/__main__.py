"""python -m vsrup.weights: the maintainer helper (see vsrup.weights.maintainer)."""

from vsrup.weights.maintainer import main

raise SystemExit(main())
