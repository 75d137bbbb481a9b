"""`python -m tinystories_hf.exports`: the same as `tinystories-export`."""
import sys

from . import main

sys.exit(main())
