import sys

from flowtrux.cli import main

sys.exit(main())
