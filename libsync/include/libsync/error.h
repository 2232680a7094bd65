/*
 * libsync error codes.
 *
 * Every libsync call that can fail returns an int: 0 on success, one of the
 * negative LSYNC_E* codes below on failure.  Programs branch on the code;
 * people read the detailed message kept on the handle (lsync_ctx_errmsg()).
 *
 * The list is append-only: a code's number never changes and is never
 * reused, so numbers stored in journals or sent over the wire stay valid.
 */
#ifndef LIBSYNC_ERROR_H
#define LIBSYNC_ERROR_H

#include "api.h"

#ifdef __cplusplus
extern "C" {
#endif

/* XX(NAME, number, message) */
#define LSYNC_ERRNO_MAP(XX)                                                    \
  XX(EINVAL, -1, "invalid argument")                                           \
  XX(ENOMEM, -2, "out of memory")                                              \
  XX(EIO, -3, "input/output error")                                            \
  XX(ENOENT, -4, "no such file or directory")                                  \
  XX(ENOTDIR, -5, "not a directory")                                           \
  XX(EACCES, -6, "permission denied")                                          \
  XX(EPATTERN, -7, "invalid pattern")                                          \
  XX(ECANCELED, -8, "operation canceled")                                      \
  XX(ERANGE, -9, "value out of range")                                         \
  XX(ESYS, -10, "system error")                                                \
  XX(ENAMETOOLONG, -11, "name too long")                                       \
  XX(ELOOP, -12, "too many levels of symbolic links")                         \
  XX(EBUSY, -13, "resource busy")                                              \
  XX(EJOURNAL, -14, "journal database error")                                  \
  XX(ESTATE, -15, "state directory is not private")                           \
  XX(ECONNECT, -16, "could not connect")                                       \
  XX(EHOSTKEY, -17, "host key not verified")                                   \
  XX(EAUTH, -18, "authentication failed")                                      \
  XX(ETIMEDOUT, -19, "timed out")

typedef enum lsync_errno {
  LSYNC_OK = 0,
#define LSYNC__ERR_DEF(name, num, msg) LSYNC_##name = (num),
  LSYNC_ERRNO_MAP(LSYNC__ERR_DEF)
#undef LSYNC__ERR_DEF
} lsync_errno;

/* A static description of code ("unknown error" for codes not in the list). */
LSYNC_API const char *lsync_strerror(int code);

/* The code's symbolic name without prefix, e.g. "EINVAL"; "UNKNOWN" otherwise.
 */
LSYNC_API const char *lsync_err_name(int code);

/* Map a positive errno value to the closest libsync code. */
LSYNC_API int lsync_err_from_errno(int errnum);

#ifdef __cplusplus
}
#endif
#endif
