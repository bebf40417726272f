/*
 * A daemon for the stress scripts: the classic double fork, and a mark that
 * tells the daemon proper from its intermediate forks.
 *
 *     NAME booting [PIDFILE]
 *
 * The starter (the process the watchdog runs) forks and exits at once; its
 * child calls setsid() and forks again, then exits; the grandchild, the
 * daemon proper, rewrites its first argument from "booting" to "running" in
 * place (so /proc/PID/cmdline of the daemon, and of no intermediate fork,
 * says "running"), writes its pid to PIDFILE through a temporary file and a
 * rename (a reader never sees half a pid), and waits for signals forever.
 * Every stage bears the name the binary was copied to, as real daemons do,
 * so a basename matcher sees the intermediate forks too.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
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
    pid_t pid;

    if (argc < 2 || strcmp(argv[1], "booting") != 0) {
        fprintf(stderr, "usage: %s booting [PIDFILE]\n", argv[0]);
        return 2;
    }
    pid = fork();
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
    memcpy(argv[1], "running", 7); /* same length: the command line keeps its shape */
    if (argc > 2 && write_pidfile(argv[2]) != 0)
        _exit(1);
    for (;;)
        pause();
}
