/* check.h -- the fuzz targets' invariant check: a broken one aborts, which libFuzzer and the
 * corpus replay both report as a failure. */
#ifndef PG_FUZZ_CHECK_H
#define PG_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
