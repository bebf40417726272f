"""Start PROGRAM and never reap it: PROGRAM becomes a zombie carrying its name."""

import signal
import subprocess
import sys

child = subprocess.Popen([sys.argv[1]])
signal.pause()
