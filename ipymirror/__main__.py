import sys

from ipymirror.cli import main

sys.exit(main())
