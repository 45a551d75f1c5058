"""`python -m genedit ...` (also what `accelerate launch -m genedit` and `torchrun -m genedit` start): the genedit command."""

import sys

from genedit.cli import main

if __name__ == "__main__":
    sys.exit(main())
