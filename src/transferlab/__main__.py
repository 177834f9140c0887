"""`python -m transferlab` is the `transferlab` command."""

from transferlab.cli import main

main()
