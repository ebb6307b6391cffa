"""`python -m bus.cli`: the same as the `renkei` command."""

from bus.cli import main

main()
