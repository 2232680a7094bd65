/*
 * The unit tests' check: count passes and failures, print each failure
 * with file:line and the condition, and let the test go on so one run
 * shows every broken case.  main() prints the counts and returns
 * non-zero when `failed` is.
 */
#ifndef SYNCPLAN_TEST_CHECK_H
#define SYNCPLAN_TEST_CHECK_H

#include <stdio.h>

static int passed, failed;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (cond)                                                                  \
      passed++;                                                                \
    else {                                                                     \
      failed++;                                                                \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                          \
  } while (0)

#endif
