"""``python -m xdptest.vm`` is ``xdptest-vm``."""

import sys

from xdptest.vm import main

sys.exit(main())
