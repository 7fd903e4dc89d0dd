/* check.h - the tests' tiny check helper: every check prints one line, the
 * run ends on "N passed, N failed", and the exit status is 1 on any failure. */
#ifndef FB_TEST_CHECK_H
#define FB_TEST_CHECK_H

#include <stdio.h>

static int check_passed, check_failed;

#define CHECK(cond, ...)                                           \
    do {                                                           \
        if (cond) {                                                \
            check_passed++;                                        \
        } else {                                                   \
            check_failed++;                                        \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            printf(__VA_ARGS__);                                   \
            printf("\n");                                          \
        }                                                          \
    } while (0)

static inline int check_summary(void) {
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
