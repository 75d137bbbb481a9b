"""`python -m tinystories_hf.report`: the same as `tinystories-report`."""
import sys

from .write import main

sys.exit(main())
