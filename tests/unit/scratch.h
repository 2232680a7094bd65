/*
 * The unit tests' scratch directory: made under $TMPDIR (else /tmp) with
 * the test's name and removed, with all in it, by cleanup().  One per
 * test process, so the helpers share one global instead of passing it.
 */
#ifndef SYNCPLAN_TEST_SCRATCH_H
#define SYNCPLAN_TEST_SCRATCH_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

static char scratch[256];

static int scratch_rm_one(const char *p, const struct stat *st, int flag,
                          struct FTW *f) {
  (void)st, (void)flag, (void)f;
  return remove(p);
}

static void cleanup(void) {
  if (scratch[0])
    nftw(scratch, scratch_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* name inside the scratch directory; the last four results stay valid,
 * enough for the paths of one call. */
static const char *at(const char *name) {
  static char buf[4][512];
  static int k;
  char *b = buf[k++ % 4];
  snprintf(b, 512, "%s/%s", scratch, name);
  return b;
}

/* Make the scratch directory for the test called name: 0, or -1 with the
 * reason printed. */
static int scratch_make(const char *name) {
  const char *tmp = getenv("TMPDIR");

  snprintf(scratch, sizeof scratch, "%s/%s.XXXXXX", tmp && *tmp ? tmp : "/tmp",
           name);
  if (!mkdtemp(scratch)) {
    perror("mkdtemp");
    scratch[0] = '\0';
    return -1;
  }
  return 0;
}

#endif
