import os
import sys

# Test files import the shared problems as a plain module.
sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("MPLBACKEND", "Agg")
