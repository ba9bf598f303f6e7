import sys

from neurontools.top.cli import main

sys.exit(main())
