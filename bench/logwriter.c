/* bench/logwriter.c: an app that logs to a file, for bench/follow.
 *
 *   logwriter FILE MBYTES MODE
 *
 * Appends MBYTES MiB (whole lines only) of numbered 100-byte log lines to FILE (O_APPEND,
 * created if missing). MODE "line": one write(2) per line, as an unbuffered
 * logger does (about 10,500 writes per MiB: the follower is woken often).
 * MODE "burst": 64 KiB writes, as fast as the disk cache takes them (the
 * follower's own throughput is the limit). Prints the seconds the writing
 * took on stdout.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINE 100

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void put(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) { perror("logwriter: write"); exit(1); }
        buf += n;
        len -= (size_t)n;
    }
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: logwriter FILE MBYTES line|burst\n"); return 64; }
    long total = atol(argv[2]) * 1024L * 1024L;
    int burst = strcmp(argv[3], "burst") == 0;
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) { perror("logwriter: open"); return 1; }
    static char chunk[65536 + LINE];
    size_t used = 0;
    double start = now();
    for (long i = 0, written = 0; written + LINE <= total; i++, written += LINE) {
        char *l = chunk + used;
        int n = snprintf(l, LINE, "2026-01-01T00:00:00Z info request %012ld served path=/api/items/%ld status=200", i, i % 100000);
        if (n < 0 || n > LINE - 1) n = LINE - 1;
        memset(l + n, '.', (size_t)(LINE - 1 - n));
        l[LINE - 1] = '\n';
        used += LINE;
        if (!burst || used >= 65536) { put(fd, chunk, used); used = 0; }
    }
    if (used) put(fd, chunk, used);
    printf("%.3f\n", now() - start);
    return 0;
}
