/* lockstep: make the init reap N orphans one at a time, so that every reap
 * is one wake-up of the init (the init's per-wake-up cost, measured with
 * valgrind --tool=callgrind in bench/run: instructions per reap).
 *
 *   lockstep N
 *
 * Run as the init's main child. For each orphan: fork a middle child that
 * forks a grandchild and exits; reap the middle (we are its parent), so the
 * grandchild, blocked on a pipe, is reparented to the init; close the pipe
 * so it exits; then wait until it is gone (kill(pid, 0) fails with ESRCH
 * only once the init has reaped it) before making the next. Exit 0, or 1
 * on a failure or a 120 s timeout.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: lockstep N\n");
        return 1;
    }
    long n = strtol(argv[1], NULL, 10);
    time_t give_up = time(NULL) + 120;
    for (long i = 0; i < n; i++) {
        int p[2], q[2];
        if (pipe(p) < 0 || pipe(q) < 0) { perror("lockstep: pipe"); return 1; }
        pid_t mid = fork();
        if (mid < 0) { perror("lockstep: fork"); return 1; }
        if (mid == 0) {
            pid_t gc = fork();
            if (gc == 0) {
                char c;
                close(p[1]);
                while (read(p[0], &c, 1) < 0 && errno == EINTR) {}
                _exit(0);
            }
            if (write(q[1], &gc, sizeof gc) != sizeof gc) _exit(1);
            _exit(gc > 0 ? 0 : 1);
        }
        pid_t gc = 0;
        close(p[0]);
        close(q[1]);
        if (read(q[0], &gc, sizeof gc) != sizeof gc) { fprintf(stderr, "lockstep: no grandchild\n"); return 1; }
        close(q[0]);
        if (waitpid(mid, NULL, 0) != mid) { perror("lockstep: waitpid"); return 1; }
        close(p[1]);
        while (kill(gc, 0) == 0 || errno != ESRCH) {
            if (time(NULL) > give_up) { fprintf(stderr, "lockstep: timeout\n"); return 1; }
            usleep(200);
        }
    }
    return 0;
}
