/* orphans: make the init reap a burst of N orphaned zombies and report how
 * much CPU the init spent doing it.
 *
 *   orphans N OUTFILE
 *
 * Run as the init's main child (e.g. `unshare --pid --fork --mount-proc INIT
 * orphans 5000 out.txt`).  It forks N "middle" children; each forks a
 * grandchild that blocks reading a pipe, then exits, so the grandchild is
 * reparented to the init (PID 1 of the namespace).  Once all N grandchildren
 * belong to the init, we read the init's on-CPU time (/proc/PPID/schedstat,
 * nanoseconds), close the pipe so all N exit at once, poll until the init has
 * no children left except us, read the CPU time again and write
 *   "N init_cpu_ns elapsed_ns init_wakeups"
 * to OUTFILE (wakeups = the init's voluntary context switches meanwhile).
 * The poll itself runs in this process and is not charged to the init.
 * Exit status 0 on success, 1 on any failure or a 60 s timeout.
 *
 * With ORPHANS_IDLE_INIT set in the environment, the init is switched to
 * SCHED_IDLE for the burst (and back afterwards), so it only runs once the
 * CPU has nothing else to do: every init that reaps in a loop then reaps the
 * whole burst in one wake-up, which isolates the cost per zombie from the
 * scheduler's choices.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <sched.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long sched_ns(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/schedstat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long long v = -1;
    if (fscanf(f, "%lld", &v) != 1) v = -1;
    fclose(f);
    return v;
}

/* Voluntary context switches of pid: roughly, how often it went to sleep
 * and was woken up again. */
static long long vcsw(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long long v = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "voluntary_ctxt_switches: %lld", &v) == 1) break;
    fclose(f);
    return v;
}

/* Number of children of pid (from /proc/PID/task/PID/children). */
static char buf[1 << 20];
static long count_children(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    long n = 0;
    ssize_t r;
    int in_word = 0;
    while ((r = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < r; i++) {
            if (buf[i] >= '0' && buf[i] <= '9') {
                if (!in_word) { n++; in_word = 1; }
            } else {
                in_word = 0;
            }
        }
    }
    close(fd);
    return n;
}

static pid_t xfork(void) {
    for (int tries = 0; tries < 1000; tries++) {
        pid_t p = fork();
        if (p >= 0) return p;
        if (errno != EAGAIN) break;
        usleep(1000);
    }
    perror("orphans: fork");
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: orphans N OUTFILE\n");
        return 1;
    }
    long n = strtol(argv[1], NULL, 10);
    pid_t init = getppid();
    int p[2];
    if (pipe(p) < 0) { perror("orphans: pipe"); return 1; }

    for (long i = 0; i < n; i++) {
        pid_t mid = xfork();
        if (mid == 0) {
            pid_t gc = xfork();
            if (gc == 0) {
                char c;
                close(p[1]);
                while (read(p[0], &c, 1) < 0 && errno == EINTR) {}
                _exit(0);
            }
            _exit(0);
        }
        int st;
        while (waitpid(mid, &st, 0) < 0 && errno == EINTR) {}
    }
    close(p[0]);

    long have = count_children(init);
    if (have != n + 1) {
        fprintf(stderr, "orphans: init %d has %ld children, expected %ld (is it PID 1 or a subreaper?)\n",
                (int)init, have, n + 1);
    }

    int idle = getenv("ORPHANS_IDLE_INIT") != NULL;
    struct sched_param sp = {0};
    if (idle && sched_setscheduler(init, SCHED_IDLE, &sp) < 0) {
        perror("orphans: SCHED_IDLE");
        return 1;
    }
    long long sw0 = vcsw(init);
    long long cpu0 = sched_ns(init);
    long long t0 = now_ns();
    close(p[1]); /* the burst: all N grandchildren see EOF and exit */

    struct timespec nap = {0, 1000000}; /* 1 ms */
    for (;;) {
        long c = count_children(init);
        if (c == 1) break;
        if (now_ns() - t0 > 60000000000LL) {
            fprintf(stderr, "orphans: timeout, init still has %ld children\n", c);
            return 1;
        }
        nanosleep(&nap, NULL);
    }
    long long t1 = now_ns();
    if (idle)
        sched_setscheduler(init, SCHED_OTHER, &sp);
    long long cpu1 = sched_ns(init);
    long long sw1 = vcsw(init);
    if (cpu0 < 0 || cpu1 < 0) { fprintf(stderr, "orphans: cannot read /proc/%d/schedstat\n", (int)init); return 1; }

    FILE *out = fopen(argv[2], "w");
    if (!out) { perror("orphans: fopen"); return 1; }
    fprintf(out, "%ld %lld %lld %lld\n", n, cpu1 - cpu0, t1 - t0, sw1 - sw0);
    fclose(out);
    return 0;
}
