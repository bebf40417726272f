"""Every exit status of the ``watchdog`` command, in one place."""

EXIT_OK = 0  # a clean stop; --once/--status: every rule is fine (watchdog.view); --check: all run
EXIT_NOT_RUNNING = 1  # --once/--status: a rule is not fine (watchdog.view); --check: one is not running
EXIT_USAGE = 2  # bad input on the command line, in the environment or the config file
EXIT_GAVE_UP = 3  # gave up on a rule with --on-give-up exit
EXIT_NO_WATCHDOG = 3  # --status: no watchdog is running (no status file, or a dead writer)
EXIT_KILLED = 4  # services were still running after --grace and had to be killed
EXIT_INTERNAL_ERROR = 70  # a bug in the watchdog itself; every service was stopped first (EX_SOFTWARE)
EXIT_INIT_FAILED = 5  # an --init task could not run or exited non-zero; no service was started
EXIT_ESSENTIAL_UNKNOWN = 6  # an --essential service ended with a status the watchdog cannot know
EXIT_UNHEALTHY = 7  # a rule became unhealthy with --on-unhealthy exit: every service was stopped
