"""``python -m docpipe_client``, the same as ``docpipe-client``."""

import sys

from docpipe_client.cli import main

sys.exit(main())
