"""`python -m evalledger.cli`."""

from evalledger.cli import main

main()
