/*
 * Symbol visibility for the public API.  libsync is built with hidden
 * visibility so only functions marked LSYNC_API are exported from the
 * shared library; internals (lsync__*) stay private and free to change.
 */
#ifndef LIBSYNC_API_H
#define LIBSYNC_API_H

#if defined(__GNUC__)
#define LSYNC_API __attribute__((visibility("default")))
#else
#define LSYNC_API
#endif

#endif
