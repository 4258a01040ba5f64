"""`python -m tbmon` is the `tbmon` command."""

from tbmon.cli import main

main()
