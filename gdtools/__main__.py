import sys

from gdtools.cli import main

sys.exit(main())
