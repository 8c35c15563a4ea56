/* Crashers for the analysis tests: each mode fails in its own function, so the tests know which
 * frames a correct backtrace holds.
 *   crash segv        null pointer write in store_value <- parse_record <- main
 *   crash other       a different bug: division by zero in average <- main
 *   crash abort       assert() failure in check_invariant <- main (SIGABRT through libc)
 *   crash recurse N   N frames of recurse() and then a null write
 *   crash threads     four threads parked, a fifth crashes in worker_crash
 *   crash handler     a null write in on_signal, a SIGUSR1 handler, interrupting send_signal
 */
#include <assert.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

volatile int *volatile null_ptr = 0;
volatile int zero = 0;

__attribute__((noinline)) void store_value(int v) { *null_ptr = v; }
__attribute__((noinline)) void parse_record(const char *s) { store_value((int)strlen(s)); }
__attribute__((noinline)) int average(int sum) { return sum / zero; }
__attribute__((noinline)) void check_invariant(int n) { assert(n == 42); }

__attribute__((noinline)) int recurse(int n) {
    if (n == 0) {
        *null_ptr = 1;
        return 0;
    }
    return recurse(n - 1) + 1;
}

static void *worker_park(void *arg) {
    (void)arg;
    for (;;) pause();
    return NULL;
}

__attribute__((noinline)) void worker_crash_inner(void) { *null_ptr = 7; }
static void *worker_crash(void *arg) {
    (void)arg;
    usleep(100000);
    worker_crash_inner();
    return NULL;
}

__attribute__((noinline)) void on_signal(int sig) { *null_ptr = sig; }
__attribute__((noinline)) void send_signal(void) {
    signal(SIGUSR1, on_signal);
    raise(SIGUSR1);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "segv";
    if (!strcmp(mode, "segv")) parse_record("record");
    else if (!strcmp(mode, "other")) return average(10);
    else if (!strcmp(mode, "abort")) check_invariant(argc);
    else if (!strcmp(mode, "recurse")) return recurse(argc > 2 ? atoi(argv[2]) : 1000);
    else if (!strcmp(mode, "handler")) send_signal();
    else if (!strcmp(mode, "threads")) {
        pthread_t t[5];
        for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, worker_park, NULL);
        pthread_create(&t[4], NULL, worker_crash, NULL);
        pthread_join(t[4], NULL);
    }
    return 99;
}
