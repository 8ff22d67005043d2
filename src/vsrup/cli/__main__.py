"""`python -m vsrup.cli`: the same as the `vsrup` command."""

from vsrup.cli import main

main()
