"""`python -m media SETTINGS_JSON` runs one media worker process (media/worker.py); the server starts it."""

import sys

from media.worker import main

sys.exit(main(sys.argv[1:]))
