from watchdog.probe import watchdog_main

watchdog_main()
