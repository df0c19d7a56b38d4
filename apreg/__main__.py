import sys

from apreg.cli import main

sys.exit(main())
