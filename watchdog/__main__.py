from watchdog.execprobe import watchdog_main

watchdog_main()
