"""Same as `tinystories-prepare`: python scripts/prepare_data.py --source demo --output demo_prepared"""
import sys

from tinystories_hf.pipeline import main

if __name__ == "__main__":
    sys.exit(main())
