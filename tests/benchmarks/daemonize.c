/*
 * A daemon that starts instantly, for the restart-latency benchmark.
 *
 *     daemonize [PIDFILE]
 *
 * The classic double fork: the starter exits at once, the first child calls
 * setsid() and exits, the grandchild (the daemon, an orphan) writes its pid to
 * PIDFILE (through a temporary file and a rename, so a reader never sees half
 * a pid) and then waits for signals forever. The process name is the name the
 * binary was copied to, so a basename matcher can find it.
 */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

static int write_pidfile(const char *path)
{
    char tmp_path[4096];
    char text[32];
    int fd;
    int length;

    if (snprintf(tmp_path, sizeof tmp_path, "%s.tmp", path) >= (int)sizeof tmp_path)
        return -1;
    fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -1;
    length = snprintf(text, sizeof text, "%d\n", (int)getpid());
    if (write(fd, text, (size_t)length) != length) {
        close(fd);
        return -1;
    }
    if (close(fd) != 0)
        return -1;
    return rename(tmp_path, path);
}

int main(int argc, char **argv)
{
    pid_t pid = fork();

    if (pid < 0)
        return 1;
    if (pid > 0)
        _exit(0); /* the starter */
    if (setsid() < 0)
        _exit(1);
    pid = fork();
    if (pid < 0)
        _exit(1);
    if (pid > 0)
        _exit(0); /* the session leader */
    if (argc > 1 && write_pidfile(argv[1]) != 0)
        _exit(1);
    for (;;)
        pause();
}
