/* Shared by the test tools: print a path with everything outside
 * printable ASCII, and the backslash itself, as \ooo, so a name with a
 * newline or non-UTF-8 bytes stays on one unambiguous line. */
#ifndef SYNCPLAN_TESTS_ESCAPE_H
#define SYNCPLAN_TESTS_ESCAPE_H

#include <stdio.h>

static inline void put_escaped(FILE *f, const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p < 0x20 || *p >= 0x7f || *p == '\\')
      fprintf(f, "\\%03o", *p);
    else
      putc(*p, f);
  }
}

#endif
