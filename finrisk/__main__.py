import sys

from finrisk.cli import main

sys.exit(main())
