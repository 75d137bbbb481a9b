"""`python -m tinystories_hf.hub`: the same as `tinystories-push`."""
import sys

from .push import main

sys.exit(main())
