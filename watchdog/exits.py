"""Every exit status of the ``watchdog`` command, in one place."""

EXIT_OK = 0  # a clean stop; --once/--check: every rule is running
EXIT_NOT_RUNNING = 1  # --once/--check/--status: a rule is not running
EXIT_USAGE = 2  # bad input on the command line, in the environment or the config file
EXIT_GAVE_UP = 3  # gave up on a rule with --on-give-up exit (--status: no watchdog running)
EXIT_KILLED = 4  # services were still running after --grace and had to be killed
EXIT_INTERNAL_ERROR = 70  # a bug in the watchdog itself; every service was stopped first (EX_SOFTWARE)
EXIT_UNHEALTHY = 5  # a rule became unhealthy with --on-unhealthy exit: every service was stopped
