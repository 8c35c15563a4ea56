/* The crasher image of the real-node tests. Every crash carries a marker in its memory that
 * names the pod (from $COREDUMP_TEST_MARKER, set from the pod's UID through the downward API)
 * and the crash's sequence number, so a test proves that a downloaded core is that crash.
 * Crashes are real memory faults in crash_with_marker(), which gdb names from the core.
 *
 *   crasher segv [MIB [random]]  fill MIB MiB (default 1; with `random`, incompressible bytes),
 *                                then fault: the container's main process dies of SIGSEGV (a
 *                                real fault also kills PID 1)
 *   crasher child-abrt [MIB]     a child calls abort() (SIGABRT is honoured: it is not PID 1);
 *                                the main process then sleeps
 *   crasher every MS [COUNT]     a child faults every MS milliseconds (COUNT times, 0 = forever),
 *                                with sequence numbers 1, 2, ...; prints "crash N" per child
 *   crasher sleep                just sleep (a sidecar's companion)
 *
 * Built statically with symbols by the test node (crates/testnode/src/images.rs). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024UL * 1024UL)

static char marker[256];
/* NULL, read at run time: the compiler cannot turn the faulting store into a trap. */
volatile char *volatile nowhere;

/* Fills `mib` MiB with copies of the marker (one per page), the rest zero or, with `random`,
 * incompressible bytes, so the core holds them. */
static char *fill_with(unsigned long mib, int random) {
    unsigned long size = (mib ? mib : 1) * MIB;
    char *buf = malloc(size);
    if (!buf) {
        perror("malloc");
        exit(2);
    }
    unsigned long x = 88172645463325252UL ^ (unsigned long)getpid();
    for (unsigned long off = 0; random && off + 8 <= size; off += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(buf + off, &x, 8);
    }
    size_t len = strlen(marker);
    for (unsigned long off = 0; off + len < size; off += 4096)
        memcpy(buf + off, marker, len);
    return buf;
}

static char *fill(unsigned long mib) { return fill_with(mib, 0); }

__attribute__((noinline)) void crash_with_marker(volatile char *where) {
    /* The marker sits on the stack too, next to the faulting frame. */
    char local[256];
    memcpy(local, marker, sizeof local);
    __asm__ volatile("" : : "r"(local) : "memory");
    where[0] = local[0]; /* where is NULL: SIGSEGV */
}

static void set_marker(long seq) {
    const char *base = getenv("COREDUMP_TEST_MARKER");
    snprintf(marker, sizeof marker, "COREDUMP-TEST-MARK:%s:%ld:END", base ? base : "none", seq);
}

static void sleep_forever(void) {
    for (;;)
        pause();
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "segv";
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!strcmp(mode, "segv")) {
        set_marker(0);
        int random = argc > 3 && !strcmp(argv[3], "random");
        char *buf = fill_with(argc > 2 ? strtoul(argv[2], 0, 10) : 1, random);
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        printf("crashing at %ld.%09ld with %s\n", (long)now.tv_sec, now.tv_nsec, marker);
        (void)buf;
        crash_with_marker(nowhere);
        return 1;
    }
    if (!strcmp(mode, "child-abrt")) {
        set_marker(0);
        pid_t pid = fork();
        if (pid == 0) {
            char *buf = fill(argc > 2 ? strtoul(argv[2], 0, 10) : 1);
            printf("child %d aborting with %s\n", getpid(), marker);
            (void)buf;
            abort();
        }
        int status = 0;
        waitpid(pid, &status, 0);
        printf("child %d ended: signal %d core %d\n", pid, WIFSIGNALED(status) ? WTERMSIG(status) : 0,
               WCOREDUMP(status) ? 1 : 0);
        sleep_forever();
    }
    if (!strcmp(mode, "every")) {
        long ms = argc > 2 ? strtol(argv[2], 0, 10) : 200;
        long count = argc > 3 ? strtol(argv[3], 0, 10) : 0;
        signal(SIGCHLD, SIG_DFL);
        for (long seq = 1; count == 0 || seq <= count; seq++) {
            set_marker(seq);
            pid_t pid = fork();
            if (pid == 0) {
                char *buf = fill(1);
                (void)buf;
        crash_with_marker(nowhere);
                _exit(1);
            }
            printf("crash %ld pid %d\n", seq, pid);
            sleep_ms(ms);
            while (waitpid(-1, 0, WNOHANG) > 0) {
            }
        }
        sleep_forever();
    }
    if (!strcmp(mode, "sleep"))
        sleep_forever();
    fprintf(stderr, "crasher: unknown mode %s\n", mode);
    return 2;
}
