/* siglat: signal-forwarding latency through an init.
 *
 *   siglat recv FIFO N          (the init's child)
 *   siglat send PID FIFO N OUT  (outside; PID is the init's host pid)
 *
 * recv blocks SIGUSR1, opens FIFO for writing, writes one ready byte, then N
 * times: sigwaitinfo(SIGUSR1), read CLOCK_MONOTONIC, write the 8-byte
 * timestamp to FIFO.
 * send opens FIFO for reading, waits for the ready byte, then N times: read
 * CLOCK_MONOTONIC, kill(PID, SIGUSR1), read the receiver's timestamp (which
 * also acknowledges, so signals never coalesce).  Latency = receive - send.
 * Writes the N latencies in nanoseconds, one per line, to OUT.
 * A 60 s alarm ends either side if the signal never arrives.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int read_full(int fd, void *b, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)b + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return 0;
}

int main(int argc, char **argv) {
    alarm(60);
    if (argc == 4 && strcmp(argv[1], "recv") == 0) {
        long n = strtol(argv[3], NULL, 10);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGUSR1);
        sigprocmask(SIG_BLOCK, &set, NULL);
        int fd = open(argv[2], O_WRONLY);
        if (fd < 0) { perror("siglat recv: open"); return 1; }
        if (write(fd, "R", 1) != 1) return 1;
        for (long i = 0; i < n; i++) {
            int s;
            do { s = sigwaitinfo(&set, NULL); } while (s < 0 && errno == EINTR);
            int64_t t = now_ns();
            if (write(fd, &t, sizeof t) != sizeof t) return 1;
        }
        return 0;
    }
    if (argc == 6 && strcmp(argv[1], "send") == 0) {
        pid_t pid = (pid_t)strtol(argv[2], NULL, 10);
        long n = strtol(argv[4], NULL, 10);
        int fd = open(argv[3], O_RDONLY);
        if (fd < 0) { perror("siglat send: open"); return 1; }
        char c;
        if (read_full(fd, &c, 1) < 0) { fprintf(stderr, "siglat send: no ready byte\n"); return 1; }
        int64_t *lat = calloc((size_t)n, sizeof *lat);
        struct timespec nap = {0, 1000000}; /* 1 ms between signals */
        for (long i = 0; i < n; i++) {
            nanosleep(&nap, NULL);
            int64_t t0 = now_ns();
            if (kill(pid, SIGUSR1) < 0) { perror("siglat send: kill"); return 1; }
            int64_t t1;
            if (read_full(fd, &t1, sizeof t1) < 0) { fprintf(stderr, "siglat send: receiver gone after %ld\n", i); return 1; }
            lat[i] = t1 - t0;
        }
        FILE *out = fopen(argv[5], "w");
        if (!out) { perror("siglat send: fopen"); return 1; }
        for (long i = 0; i < n; i++) fprintf(out, "%lld\n", (long long)lat[i]);
        fclose(out);
        return 0;
    }
    fprintf(stderr, "usage: siglat recv FIFO N | siglat send PID FIFO N OUT\n");
    return 1;
}
