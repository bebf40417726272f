"""Leave COUNT orphans behind: each a grandchild that exits shortly after its parent."""

import os
import sys
import time

count = int(sys.argv[1])
for _ in range(count):
    if os.fork() == 0:
        if os.fork() == 0:
            time.sleep(0.2)  # outlive the parent, so the watchdog inherits it
            os._exit(0)
        os._exit(0)
    os.wait()
