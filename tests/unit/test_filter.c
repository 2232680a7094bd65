/*
 * Unit tests for libsync/filter.h: rsync's include/exclude pattern rules.
 *
 * Expectations follow the rsync man page ("FILTER RULES", "PATTERN MATCHING
 * RULES"); the less obvious ones were checked against rsync 3.x itself with
 * `rsync -an --filter=RULE --out-format=%n src/ dst/` and are marked
 * "rsync-verified".
 *
 * Standalone: prints each failed check with file:line and exits 1 if any
 * failed.
 */
#include "libsync/filter.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "libsync/error.h"

static int passed, failed;

/* Non-printable bytes are shown as \xNN so a failing newline or 0xff case
 * stays readable on one line. */
static void show(const char *s) {
  putchar('"');
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c < 0x20 || c >= 0x7f)
      printf("\\x%02x", c);
    else
      putchar(c);
  }
  putchar('"');
}

static void record(int ok, const char *file, int line) {
  if (ok) {
    passed++;
    return;
  }
  failed++;
  printf("%s:%d: FAIL ", file, line);
}

#define CHECK(cond)                                                            \
  do {                                                                         \
    int ok_ = (cond);                                                          \
    record(ok_, __FILE__, __LINE__);                                           \
    if (!ok_)                                                                  \
      printf("%s\n", #cond);                                                   \
  } while (0)

static void expect_match(const char *file, int line, const char *pat,
                         const char *path, int is_dir, int want) {
  int got = lsync_pattern_match(pat, path, is_dir);

  record(got == want, file, line);
  if (got != want) {
    printf("pattern ");
    show(pat);
    printf(" path ");
    show(path);
    printf(" is_dir=%d: got %d, want %d\n", is_dir, got, want);
  }
}

#define MATCH(pat, path, dir)                                                  \
  expect_match(__FILE__, __LINE__, pat, path, dir, 1)
#define NO_MATCH(pat, path, dir)                                               \
  expect_match(__FILE__, __LINE__, pat, path, dir, 0)
#define BAD_PATTERN(pat)                                                       \
  expect_match(__FILE__, __LINE__, pat, "x", 0, LSYNC_EPATTERN)

/* A filter from a NULL-terminated list of "+ PAT" / "- PAT" rules. */
static lsync_filter *make_filter(const char *file, int line,
                                 const char *const *rules) {
  lsync_filter *f = NULL;
  int rc = lsync_filter_new(&f);

  record(rc == 0 && f != NULL, file, line);
  if (rc != 0 || !f) {
    printf("lsync_filter_new: %d\n", rc);
    return NULL;
  }
  for (; *rules; rules++) {
    rc = lsync_filter_add_rule(f, *rules);
    record(rc == 0, file, line);
    if (rc != 0) {
      printf("add_rule ");
      show(*rules);
      printf(": %d\n", rc);
    }
  }
  return f;
}

#define MAKE_FILTER(...)                                                       \
  make_filter(__FILE__, __LINE__, (const char *const[]){__VA_ARGS__, NULL})

static void expect_excl(const char *file, int line, const lsync_filter *f,
                        const char *path, int is_dir, int want) {
  int got = lsync_filter_excludes(f, path, strlen(path), is_dir);

  record(got == want, file, line);
  if (got != want) {
    printf("excludes ");
    show(path);
    printf(" is_dir=%d: got %d, want %d\n", is_dir, got, want);
  }
}

#define EXCLUDED(f, path, dir) expect_excl(__FILE__, __LINE__, f, path, dir, 1)
#define INCLUDED(f, path, dir) expect_excl(__FILE__, __LINE__, f, path, dir, 0)

/* ---- single patterns ---------------------------------------------------- */

static void test_last_component(void) {
  MATCH("*.o", "a/b/x.o", 0);
  MATCH("*.o", "x.o", 0);
  NO_MATCH("*.o", "x.o.c", 0);
  NO_MATCH("*.o", "a/x.o/y", 0);
  MATCH("foo", "foo", 0);
  MATCH("foo", "a/b/foo", 1);
  NO_MATCH("foo", "afoo", 0);
  NO_MATCH("foo", "foo/x", 0);
  NO_MATCH("foo", "a/foox", 0);
  MATCH("*", "a/b/c", 0);
  MATCH("a*c", "x/abbc", 0);
}

static void test_anchored(void) {
  MATCH("/foo", "foo", 0);
  NO_MATCH("/foo", "a/foo", 0);
  MATCH("/foo/bar", "foo/bar", 0);
  NO_MATCH("/foo/bar", "x/foo/bar", 0);
  MATCH("/*", "x", 0);
  NO_MATCH("/*", "a/x", 0);
  MATCH("/*/*", "a/x", 0);
  NO_MATCH("/a*c", "ab/c", 0);
  NO_MATCH("/a?c", "a/c", 0);
}

static void test_dir_only(void) {
  MATCH("foo/", "a/foo", 1);
  NO_MATCH("foo/", "a/foo", 0);
  MATCH("/foo/", "foo", 1);
  NO_MATCH("/foo/", "a/foo", 1);
  MATCH("*/", "a/b", 1);
  NO_MATCH("*/", "a/b", 0);
  MATCH("foo/x/", "foo/x", 1);
  NO_MATCH("foo/x/", "foo/x", 0);
}

static void test_inner_slash(void) {
  MATCH("foo/bar", "foo/bar", 0);
  MATCH("foo/bar", "x/foo/bar", 0);
  NO_MATCH("foo/bar", "xfoo/bar", 0);
  NO_MATCH("foo/bar", "foo/bar/x", 0);
  MATCH("foo/*/bar", "foo/x/bar", 0);
  MATCH("foo/*/bar", "a/foo/x/bar", 0);
  NO_MATCH("foo/*/bar", "foo/x/y/bar", 0);
  NO_MATCH("foo/*/bar", "foo/bar", 0);
  MATCH("*/bar", "foo/bar", 0);
  NO_MATCH("*/bar", "bar", 0);
  MATCH("a/b/*.o", "x/a/b/c.o", 0);
  /* rsync-verified: a "/" counts even inside a class, so this needs two
   * components, and a class never matches "/" itself. */
  NO_MATCH("[--/]", "-", 0);
  NO_MATCH("/a[/]b", "a/b", 0);
}

static void test_double_star(void) {
  MATCH("/foo/**/bar", "foo/x/bar", 0);
  MATCH("/foo/**/bar", "foo/x/y/bar", 0);
  NO_MATCH("/foo/**/bar", "foo/bar", 0);
  MATCH("foo/**/bar", "a/foo/x/bar", 0);
  NO_MATCH("foo/**/bar", "a/xfoo/x/bar", 0);
  MATCH("**/foo", "a/b/foo", 0);
  NO_MATCH("**/foo", "a/xfoo", 0);
  /* rsync-verified: a leading "**" + "/" also matches at the top... */
  MATCH("**/foo", "foo", 0);
  /* ...but not once the pattern is anchored. */
  NO_MATCH("/**/foo", "foo", 0);
  MATCH("/**/foo", "a/foo", 0);
  /* rsync-verified: "**" matches "/" even inside a component. */
  MATCH("foo**bar", "foo/x/bar", 0);
  MATCH("foo**bar", "foobar", 1);
  /* rsync-verified: an unanchored "**" pattern is tried at every
   * component boundary. */
  MATCH("x**", "a/xb/c", 0);
  NO_MATCH("x**", "a/bx/c", 0);
  MATCH("**", "a/b/c", 0);
  MATCH("foo/**", "a/foo/b/c", 0);
  NO_MATCH("foo/**", "foo", 1);
}

static void test_triple_star(void) {
  MATCH("dir/***", "dir", 1);
  NO_MATCH("dir/***", "dir", 0);
  MATCH("dir/***", "dir/a", 0);
  MATCH("dir/***", "dir/a/b", 0);
  MATCH("dir/***", "x/dir", 1);
  MATCH("dir/***", "x/dir/y", 0);
  NO_MATCH("dir/***", "xdir/y", 0);
  MATCH("/dir/***", "dir", 1);
  NO_MATCH("/dir/***", "x/dir", 1);
  NO_MATCH("dir/**", "dir", 1);
  MATCH("**/dir/***", "dir", 1);
  MATCH("**/dir/***", "a/dir", 1);
}

static void test_single_char_and_classes(void) {
  MATCH("?", "a", 0);
  NO_MATCH("?", "ab", 0);
  NO_MATCH("/a?c", "a/c", 0);
  MATCH("a?c", "x/abc", 0);
  MATCH("[ab]", "a", 0);
  NO_MATCH("[ab]", "c", 0);
  MATCH("[!a]", "b", 0);
  NO_MATCH("[!a]", "a", 0);
  MATCH("[^a]", "b", 0);
  NO_MATCH("[^a]", "a", 0);
  MATCH("[a-c]x", "bx", 0);
  NO_MATCH("[a-c]x", "dx", 0);
  MATCH("[[:digit:]]*", "1a", 0);
  NO_MATCH("[[:digit:]]*", "a1", 0);
  MATCH("[[:alpha:]]1", "q1", 0);
  MATCH("[[:upper:]]*", "Foo", 0);
  NO_MATCH("[[:upper:]]*", "foo", 0);
  MATCH("[[:alpha:]-]", "-", 0);
  MATCH("[]a]", "]", 0);
  NO_MATCH("[!]a]", "]", 0);
  MATCH("[!]a]", "b", 0);
  MATCH("[a-]", "-", 0);
  MATCH("[\\]]", "]", 0);
  NO_MATCH("[z-a]", "m", 0);
  MATCH("*.[ch]", "x/y.h", 0);
}

static void test_backslash(void) {
  /* With a wildcard in the pattern a backslash quotes... */
  MATCH("\\*", "*", 0);
  NO_MATCH("\\*", "x", 0);
  MATCH("\\[ab\\]", "[ab]", 0);
  NO_MATCH("\\[ab\\]", "a", 0);
  MATCH("e\\[1]", "e[1]", 0);
  MATCH("*\\\\b", "a\\b", 0);
  MATCH("fo\\o*", "foo.c", 0);
  /* ...without one it is an ordinary character. */
  MATCH("a\\b", "a\\b", 0);
  NO_MATCH("a\\b", "ab", 0);
  NO_MATCH("\\f\\o\\o", "foo", 0);
  MATCH("\\f\\o\\o", "x/\\f\\o\\o", 0);
}

static void test_odd_names(void) {
  MATCH("sp ace", "sp ace", 1);
  MATCH("f g", "sp ace/f g", 0);
  MATCH("*g", "sp ace/f g", 0);
  MATCH("a?b", "a\nb", 0);
  MATCH("a\nb", "d/a\nb", 0);
  MATCH("*[[:space:]]*", "a\nb", 0);
  MATCH("t?b", "t\tb", 0);
  MATCH("t[[:blank:]]b", "t\tb", 0);
  MATCH("[[:cntrl:]]", "\n", 0);
  MATCH("-lead", "-lead", 0);
  MATCH("-*", "x/-lead", 0);
  MATCH("co:lon", "co:lon", 0);
  MATCH("*:*", "co:lon", 0);
  MATCH("\xff\xfe", "\xff\xfe", 0);
  MATCH("\xff*", "d/\xff\xfe", 0);
  MATCH("??", "\xff\xfe", 0);
  MATCH("x[^a]y", "x\xffy", 0);
  /* rsync-verified: classes are ASCII; bytes >= 0x80 are not alnum. */
  MATCH("[![:alnum:]][![:alnum:]]", "\xff\xfe", 0);
  NO_MATCH("[[:print:]]*", "\xff\xfe", 0);
}

static void test_bad_patterns(void) {
  BAD_PATTERN("");
  BAD_PATTERN("/");
  BAD_PATTERN("a[");
  BAD_PATTERN("[abc");
  BAD_PATTERN("[!]");
  BAD_PATTERN("[[:alpha:]");
  BAD_PATTERN("[[:foo:]]");
  BAD_PATTERN("*\\");
  /* A literal pattern has no escapes, so a trailing backslash is fine. */
  MATCH("x\\", "x\\", 0);
}

/* ---- rule lists --------------------------------------------------------- */

static void test_first_match_wins(void) {
  lsync_filter *f = MAKE_FILTER("+ *.c", "- foo.c");

  if (f) {
    INCLUDED(f, "foo.c", 0);
    INCLUDED(f, "a/b", 0); /* no rule matches */
    lsync_filter_free(f);
  }
  f = MAKE_FILTER("- foo.c", "+ *.c", "- *");
  if (f) {
    EXCLUDED(f, "foo.c", 0);
    EXCLUDED(f, "a/foo.c", 0);
    INCLUDED(f, "bar.c", 0);
    EXCLUDED(f, "x.h", 0);
    lsync_filter_free(f);
  }
  f = MAKE_FILTER("- x.o", "+ *.o", "- a/");
  if (f) {
    EXCLUDED(f, "b/x.o", 0);
    INCLUDED(f, "y.o", 0);
    EXCLUDED(f, "a", 1);
    INCLUDED(f, "a", 0);
    lsync_filter_free(f);
  }
}

static void test_rsync_examples(void) {
  lsync_filter *f = MAKE_FILTER("+ */", "+ *.c", "- *");

  if (f) {
    INCLUDED(f, "src", 1);
    INCLUDED(f, "src/deep/dir", 1);
    INCLUDED(f, "src/main.c", 0);
    EXCLUDED(f, "src/main.h", 0);
    EXCLUDED(f, "Makefile", 0);
    lsync_filter_free(f);
  }
  f = MAKE_FILTER("+ foo/", "+ foo/bar.c", "- *");
  if (f) {
    INCLUDED(f, "foo", 1);
    INCLUDED(f, "foo/bar.c", 0);
    EXCLUDED(f, "foo/x.c", 0);
    EXCLUDED(f, "foo", 0);
    EXCLUDED(f, "x", 1);
    lsync_filter_free(f);
  }
  f = MAKE_FILTER("- foo/x/", "+ foo/***", "- *");
  if (f) {
    INCLUDED(f, "foo", 1);
    INCLUDED(f, "foo/bar", 0);
    EXCLUDED(f, "foo/x", 1);
    INCLUDED(f, "foo/x", 0);
    EXCLUDED(f, "bar", 0);
    lsync_filter_free(f);
  }
}

static void test_add_rule(void) {
  lsync_filter *f = NULL;

  CHECK(lsync_filter_new(&f) == 0);
  if (!f)
    return;
  CHECK(lsync_filter_count(f) == 0);
  CHECK(lsync_filter_add_rule(f, "- a") == 0);
  CHECK(lsync_filter_add_rule(f, "+ b") == 0);
  CHECK(lsync_filter_add_rule(f, "exclude c") == 0);
  CHECK(lsync_filter_add_rule(f, "include d") == 0);
  CHECK(lsync_filter_add_rule(f, "-_e") == 0);
  CHECK(lsync_filter_add_rule(f, "- g h ") == 0);
  CHECK(lsync_filter_add_rule(f, "-  sp") == 0);
  CHECK(lsync_filter_count(f) == 7);
  CHECK(lsync_filter_add_rule(f, "-") == LSYNC_EPATTERN);
  CHECK(lsync_filter_add_rule(f, "- ") == LSYNC_EPATTERN);
  CHECK(lsync_filter_add_rule(f, "") == LSYNC_EPATTERN);
  CHECK(lsync_filter_add_rule(f, "-foo") == LSYNC_EPATTERN);
  CHECK(lsync_filter_add_rule(f, "exclude") == LSYNC_EPATTERN);
  CHECK(lsync_filter_add_rule(f, "excludes foo") == LSYNC_EPATTERN);
  CHECK(lsync_filter_add_rule(f, "! ") == LSYNC_EPATTERN);
  CHECK(lsync_filter_add_rule(f, "* foo") == LSYNC_EPATTERN);
  CHECK(lsync_filter_add_rule(f, "- a[") == LSYNC_EPATTERN);
  CHECK(lsync_filter_add_rule(f, "+ [[:nope:]]") == LSYNC_EPATTERN);
  CHECK(lsync_filter_count(f) == 7);
  CHECK(lsync_filter_add(f, (lsync_rule_kind)7, "x") == LSYNC_EINVAL);
  CHECK(lsync_filter_add(f, LSYNC_EXCLUDE, NULL) == LSYNC_EINVAL);
  CHECK(lsync_filter_add(f, LSYNC_INCLUDE, "") == LSYNC_EPATTERN);
  CHECK(lsync_filter_count(f) == 7);
  EXCLUDED(f, "x/a", 0);
  INCLUDED(f, "b", 0);
  EXCLUDED(f, "c", 1);
  INCLUDED(f, "d", 0);
  EXCLUDED(f, "e", 0);
  EXCLUDED(f, "g h ", 0); /* the pattern keeps its spaces */
  INCLUDED(f, "g h", 0);
  EXCLUDED(f, " sp", 0);
  INCLUDED(f, "sp", 0);
  lsync_filter_free(f);
}

/* ---- API edges and cost ------------------------------------------------- */

static void test_api_edges(void) {
  lsync_filter *f = MAKE_FILTER("- /foo", "- *.o");
  /* Not NUL-terminated: the sanitizer catches any read past len. */
  static const char buf[3] = {'f', 'o', 'o'};

  lsync_filter_free(NULL);
  CHECK(lsync_filter_count(NULL) == 0);
  CHECK(lsync_filter_new(NULL) == LSYNC_EINVAL);
  CHECK(lsync_pattern_match(NULL, "x", 0) == LSYNC_EINVAL);
  if (!f)
    return;
  CHECK(lsync_filter_excludes(f, buf, sizeof buf, 0) == 1);
  CHECK(lsync_filter_excludes(f, "foo/bar", 3, 1) == 1);
  CHECK(lsync_filter_excludes(f, "x.o.c", 3, 0) == 1);
  CHECK(lsync_filter_excludes(f, "x.o.c", 5, 0) == 0);
  CHECK(lsync_filter_excludes(f, "", 0, 1) == 0);
  lsync_filter_free(f);
}

static void test_pathological(void) {
  char text[61], deep[64 * 4];
  clock_t start = clock();
  double secs;
  int i;

  memset(text, 'a', 60);
  text[60] = '\0';
  for (i = 0; i < 60; i++)
    memcpy(deep + i * 4, "aaa/", 4);
  deep[60 * 4 - 1] = '\0';
  NO_MATCH("*a*a*a*a*a*a*a*a*b", text, 0);
  NO_MATCH("/*a*a*a*a*a*a*a*a*b", text, 0);
  NO_MATCH("**a**a**a**a**a**a**a**a**b", text, 0);
  NO_MATCH("**a*a*a*a*a*a*a*a*b", deep, 0);
  NO_MATCH("a**a*a**a*a**a*a**a*a**b", deep, 0);
  MATCH("*a*a*a*a*a*a*a*a*a", text, 0);
  secs = (double)(clock() - start) / CLOCKS_PER_SEC;
  CHECK(secs < 1.0);
}

int main(void) {
  test_last_component();
  test_anchored();
  test_dir_only();
  test_inner_slash();
  test_double_star();
  test_triple_star();
  test_single_char_and_classes();
  test_backslash();
  test_odd_names();
  test_bad_patterns();
  test_first_match_wins();
  test_rsync_examples();
  test_add_rule();
  test_api_edges();
  test_pathological();
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
