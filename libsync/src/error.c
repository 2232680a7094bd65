/* Error codes: names and messages come from the one X-macro list in
 * error.h, so they cannot drift from the enum. */
#include <errno.h>

#include "internal.h"

const char *lsync_strerror(int code) {
  switch (code) {
  case LSYNC_OK:
    return "success";
#define XX(name, num, msg)                                                     \
  case LSYNC_##name:                                                           \
    return msg;
    LSYNC_ERRNO_MAP(XX)
#undef XX
  }
  return "unknown error";
}

const char *lsync_err_name(int code) {
  switch (code) {
  case LSYNC_OK:
    return "OK";
#define XX(name, num, msg)                                                     \
  case LSYNC_##name:                                                           \
    return #name;
    LSYNC_ERRNO_MAP(XX)
#undef XX
  }
  return "UNKNOWN";
}

int lsync_err_from_errno(int errnum) {
  switch (errnum) {
  case 0:
    return LSYNC_OK;
  case EINVAL:
    return LSYNC_EINVAL;
  case ENOMEM:
    return LSYNC_ENOMEM;
  case ENOENT:
    return LSYNC_ENOENT;
  case ENOTDIR:
    return LSYNC_ENOTDIR;
  case EACCES:
  case EPERM:
    return LSYNC_EACCES;
  case ERANGE:
  case EOVERFLOW:
    return LSYNC_ERANGE;
  case ENAMETOOLONG:
    return LSYNC_ENAMETOOLONG;
  case ELOOP:
    return LSYNC_ELOOP;
  case ECANCELED:
    return LSYNC_ECANCELED;
  case EIO:
  case ENOSPC:
  case EDQUOT:
  case EROFS:
    return LSYNC_EIO;
  default:
    return LSYNC_ESYS;
  }
}
