/*
 * check.h: the few macros the libherald tests need. A failed check prints where and
 * what, and the test goes on; a test program exits non-zero if any check failed and
 * ends with one summary line:
 *   "<program>: P of N tests passed (M checks, F failed)"
 */
#ifndef HERALD_TEST_CHECK_H
#define HERALD_TEST_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald.h"

static int checks_run;
static int checks_failed;
static int tests_run;
static int tests_failed;
static const char *test_current = "(none)";

static inline int check_report(int ok, const char *file, int line, const char *what) {
    checks_run++;
    if (!ok) {
        checks_failed++;
        fprintf(stderr, "FAIL %s (%s:%d): %s\n", test_current, file, line, what);
    }
    return ok;
}

/* A condition that must hold. Evaluates to the condition, so a test can stop early. */
#define CHECK(condition) check_report((condition) ? 1 : 0, __FILE__, __LINE__, #condition)

/* Two unsigned integers that must be equal; prints both on failure. */
#define CHECK_EQ(actual, expected)                                                                        \
    do {                                                                                                  \
        uint64_t check_a_ = (uint64_t)(actual), check_e_ = (uint64_t)(expected);                          \
        if (!check_report(check_a_ == check_e_, __FILE__, __LINE__, #actual " == " #expected)) {          \
            fprintf(stderr, "     got %" PRIu64 ", expected %" PRIu64 "\n", check_a_, check_e_);          \
        }                                                                                                 \
    } while (0)

/* Bytes that must be equal; prints the first difference. */
#define CHECK_BYTES(actual, actual_len, expected, expected_len)                                           \
    check_bytes_((const uint8_t *)(actual), (size_t)(actual_len), (const uint8_t *)(expected),           \
                 (size_t)(expected_len), __FILE__, __LINE__, #actual)

static inline void check_bytes_(const uint8_t *a, size_t a_len, const uint8_t *e, size_t e_len, const char *file, int line,
                         const char *what) {
    char text[160];
    if (a_len != e_len) {
        snprintf(text, sizeof text, "%s is %zu bytes, expected %zu", what, a_len, e_len);
        check_report(0, file, line, text);
        return;
    }
    for (size_t i = 0; i < a_len; i++) {
        if (a[i] != e[i]) {
            snprintf(text, sizeof text, "%s differs at byte %zu: 0x%02x, expected 0x%02x", what, i, a[i], e[i]);
            check_report(0, file, line, text);
            return;
        }
    }
    check_report(1, file, line, what);
}

/* A libherald call that must return `expected`; prints the client's last error if not. */
#define CHECK_STATUS(client, call, expected)                                                              \
    do {                                                                                                  \
        herald_status check_s_ = (call);                                                                  \
        if (!check_report(check_s_ == (expected), __FILE__, __LINE__, #call " is " #expected)) {          \
            const herald_error *check_e_ = herald_last_error(client);                                     \
            fprintf(stderr, "     got %s: %s\n", herald_status_name(check_s_),                            \
                    check_e_ != NULL ? check_e_->message : "(no client)");                                \
        }                                                                                                 \
    } while (0)

typedef void (*test_function)(void);

static inline void run_test(const char *name, test_function test) {
    int failed_before = checks_failed;
    test_current = name;
    tests_run++;
    test();
    if (checks_failed != failed_before) {
        tests_failed++;
        fprintf(stderr, "---- %s failed\n", name);
    } else {
        printf("ok   %s\n", name);
    }
    fflush(stdout);
}

#define RUN(test) run_test(#test, test)

static inline int finish(const char *program) {
    printf("%s: %d of %d tests passed (%d checks, %d failed)\n", program, tests_run - tests_failed, tests_run,
           checks_run, checks_failed);
    return checks_failed == 0 && tests_run > 0 ? 0 : 1;
}

#endif /* HERALD_TEST_CHECK_H */
