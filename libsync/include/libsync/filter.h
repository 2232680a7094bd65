/*
 * Include/exclude rules with rsync's pattern semantics.
 *
 * A filter is an ordered list of rules; the first rule whose pattern matches
 * a path decides whether it is included or excluded, and a path no rule
 * matches is included.  Patterns follow rsync's filter rules:
 *
 *   - a leading "/" anchors the pattern at the transfer root;
 *   - a trailing "/" makes it match directories only;
 *   - a pattern without "/" (a trailing one aside) and without "**" matches
 *     the last path component only; otherwise it matches the whole path
 *     (unanchored patterns match the trailing components of the path);
 *   - "*" matches anything but "/", "**" matches anything including "/",
 *     "?" one character other than "/", "[...]" a character class
 *     ("!" or "^" negates, ranges, [:alpha:] style classes);
 *   - a pattern ending in a slash and three stars, like "dir/" + "***",
 *     matches the directory itself and everything below it;
 *   - a backslash quotes the next character when the pattern has wildcards.
 *
 * Paths given to lsync_filter_excludes() are relative to the transfer root,
 * without a leading "/", e.g. "a/b/c".  The filter is immutable after the
 * last lsync_filter_add*() call and may then be shared by several threads.
 *
 * Ownership: the caller owns the filter and frees it with lsync_filter_free();
 * patterns are copied in.
 */
#ifndef LIBSYNC_FILTER_H
#define LIBSYNC_FILTER_H

#include <stddef.h>

#include "api.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lsync_filter lsync_filter;

typedef enum lsync_rule_kind {
  LSYNC_EXCLUDE = 0,
  LSYNC_INCLUDE = 1
} lsync_rule_kind;

/* Create an empty filter (includes everything).  0 or LSYNC_ENOMEM. */
LSYNC_API int lsync_filter_new(lsync_filter **out);

/* Append one rule.  LSYNC_EPATTERN for an empty or malformed pattern
 * (e.g. an unterminated "[" class), LSYNC_ENOMEM. */
LSYNC_API int lsync_filter_add(lsync_filter *f, lsync_rule_kind kind,
                               const char *pattern);

/* Append one rule written rsync's short way: "- PATTERN" or "+ PATTERN"
 * (also "exclude PATTERN" / "include PATTERN").  LSYNC_EPATTERN otherwise. */
LSYNC_API int lsync_filter_add_rule(lsync_filter *f, const char *rule);

/* Number of rules. */
LSYNC_API size_t lsync_filter_count(const lsync_filter *f);

/* 1 if path (length len, relative, no leading "/") is excluded, 0 if it is
 * included.  is_dir says whether the path names a directory. */
LSYNC_API int lsync_filter_excludes(const lsync_filter *f, const char *path,
                                    size_t len, int is_dir);

/* Match one pattern alone against a path, rsync's way: 1 match, 0 no match,
 * LSYNC_EPATTERN if the pattern is malformed.  For tests and tools. */
LSYNC_API int lsync_pattern_match(const char *pattern, const char *path,
                                  int is_dir);

LSYNC_API void lsync_filter_free(lsync_filter *f);

#ifdef __cplusplus
}
#endif
#endif
