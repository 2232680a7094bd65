/* Human sizes ("4G", "512k", "1.5M"): binary multiples, as fpart and rsync
 * users write them. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int lsync_parse_size(const char *s, uint64_t *out) {
  if (!s || !*s || isspace((unsigned char)*s) || *s == '-' || *s == '+')
    return LSYNC_EINVAL;
  char *end;
  double v = strtod(s, &end);
  if (end == s || !(v >= 0) || isinf(v))
    return LSYNC_EINVAL;
  double mult = 1;
  const char *units = "KMGTP";
  if (*end) {
    int u = toupper((unsigned char)*end);
    const char *p = u ? strchr(units, u) : NULL;
    if (p) {
      for (const char *q = units; q <= p; q++)
        mult *= 1024;
      end++;
      if (toupper((unsigned char)end[0]) == 'I' &&
          toupper((unsigned char)end[1]) == 'B')
        end += 2;
      else if (toupper((unsigned char)end[0]) == 'B')
        end++;
    } else if (u == 'B') {
      end++;
    }
  }
  if (*end)
    return LSYNC_EINVAL;
  double bytes = v * mult;
  if (bytes >= 18446744073709551616.0)
    return LSYNC_ERANGE;
  *out = (uint64_t)bytes;
  return 0;
}
