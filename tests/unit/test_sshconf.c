/*
 * Unit tests for libsync/sshconf.h: OpenSSH client-config files written
 * into a scratch directory (which is also $HOME, so ~ and ~/.ssh are
 * under it) and resolved for a host, the options compared field by field.
 * Expectations follow ssh_config(5).
 */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libsync/libsync.h>

#include "check.h"
#include "scratch.h"

static lsync_ctx *ctx;
static int match_logs;

/* Write text to the scratch file name; its full path. */
static const char *put(const char *name, const char *text) {
  const char *path = at(name);
  FILE *f = fopen(path, "w");
  if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
    perror(path);
    cleanup();
    exit(1);
  }
  return path;
}

static int streq(const char *a, const char *b) {
  return a && b && !strcmp(a, b);
}

static int contains(const char *s, const char *part) {
  return s && strstr(s, part) != NULL;
}

/* The options for host from the config at path, or NULL when the load
 * fails (the code in last_rc).  The config stays loaded until the next
 * call, since the options' strings belong to it.  The options start out
 * as junk so that a field the config fails to set shows. */
static lsync_sshconf *cur;
static int last_rc;

static const lsync_ssh_opts *resolve(const char *path, const char *host) {
  static const char *const junk_ids[] = {"junk", NULL};
  static lsync_ssh_opts o;

  lsync_sshconf_free(cur);
  cur = NULL;
  o = (lsync_ssh_opts){"junk", 77, "junk", junk_ids, "junk", "junk", 5, 7};
  last_rc = lsync_sshconf_load(ctx, path, host, &cur);
  if (last_rc != 0 || !cur)
    return NULL;
  lsync_sshconf_opts(cur, &o);
  return &o;
}

/* The identity list as one string, "a|b|c", for one comparison. */
static const char *ids(const lsync_ssh_opts *o) {
  static char buf[2048];
  size_t n = 0;
  buf[0] = '\0';
  if (!o)
    return "(failed)";
  if (!o->identity_files)
    return "(none)";
  for (const char *const *p = o->identity_files; *p; p++)
    n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", n ? "|" : "", *p);
  return buf;
}

static void test_alias(void) {
  const char *cfg = put("alias", "# an alias\n"
                                 "\n"
                                 "Host web\n"
                                 "  HostName web.example.com\n"
                                 "  User deploy\n"
                                 "  Port 2222\n"
                                 "  IdentityFile ~/.ssh/id_web\n"
                                 "  UserKnownHostsFile ~/kh ~/unused\n"
                                 "  HostKeyAlias webalias\n");
  char want[600];

  const lsync_ssh_opts *o = resolve(cfg, "web");
  CHECK(o && streq(o->host, "web.example.com"));
  CHECK(o && streq(o->user, "deploy") && o->port == 2222);
  snprintf(want, sizeof want, "%s/.ssh/id_web", scratch);
  CHECK(streq(ids(o), want));
  snprintf(want, sizeof want, "%s/kh", scratch);
  CHECK(o && streq(o->known_hosts, want));
  CHECK(o && streq(o->host_key_alias, "webalias"));
  CHECK(o && o->accept_new_host == 0 && o->timeout_ms == 0);

  /* Another name: nothing applies, every field says unset. */
  o = resolve(cfg, "other");
  CHECK(o && streq(o->host, "other"));
  CHECK(o && o->port == 0 && o->user == NULL && o->identity_files == NULL);
  CHECK(o && o->known_hosts == NULL && o->host_key_alias == NULL);
  CHECK(o && o->accept_new_host == 0 && o->timeout_ms == 0);
}

static void test_first_wins(void) {
  const char *cfg = put("first", "Host db\n"
                                 "  Port 1111\n"
                                 "  User first\n"
                                 "Host db d*\n"
                                 "  Port 2222\n"
                                 "  User second\n"
                                 "  HostName %h.internal\n"
                                 "Host *\n"
                                 "  User last\n"
                                 "  HostName fallback\n");

  const lsync_ssh_opts *o = resolve(cfg, "db");
  CHECK(o && o->port == 1111 && streq(o->user, "first"));
  CHECK(o && streq(o->host, "db.internal"));
  o = resolve(cfg, "dx");
  CHECK(o && o->port == 2222 && streq(o->user, "second"));
  CHECK(o && streq(o->host, "dx.internal"));
  o = resolve(cfg, "zzz");
  CHECK(o && o->port == 0 && streq(o->user, "last"));
  CHECK(o && streq(o->host, "fallback"));
}

static void test_identities(const char *me) {
  const char *cfg = put("ids", "IdentityFile ~/.ssh/id_%u\n"
                               "Host tok\n"
                               "  HostName real.example\n"
                               "  User bob\n"
                               "  IdentityFile %d/keys/%r@%h\n"
                               "  IdentityFile ~/.ssh/id_%u\n"
                               "  IdentityFile /abs/100%%\n"
                               "Host *\n"
                               "  IdentityFile ~/last\n");
  char want[2048];

  /* Every applying line adds one, in order; the repeated one is tried
   * once; %r is the User found after the line that uses it. */
  const lsync_ssh_opts *o = resolve(cfg, "tok");
  snprintf(want, sizeof want,
           "%s/.ssh/id_%s|%s/keys/bob@real.example|/abs/100%%|%s/last", scratch,
           me, scratch, scratch);
  CHECK(streq(ids(o), want));
  if (!streq(ids(o), want))
    fprintf(stderr, "  got %s\n  want %s\n", ids(o), want);

  /* No User: %r is the local user. */
  put("ids2", "IdentityFile %d/%r-%h\nIdentityFile ~/tk\n");
  o = resolve(at("ids2"), "plain");
  snprintf(want, sizeof want, "%s/%s-plain|%s/tk", scratch, me, scratch);
  CHECK(streq(ids(o), want));

  /* A % in the home directory's own name is not a token, whether the
   * home comes in by %d or by ~. */
  mkdir(at("h%d"), 0700);
  setenv("HOME", at("h%d"), 1);
  o = resolve(at("ids2"), "plain");
  snprintf(want, sizeof want, "%s/h%%d/%s-plain|%s/h%%d/tk", scratch, me,
           scratch);
  CHECK(streq(ids(o), want));
  setenv("HOME", scratch, 1);

  /* An unknown token on an applying line is an error at its line. */
  put("ids3", "Host *\nIdentityFile ~/id_%C\n");
  CHECK(!resolve(at("ids3"), "x") && last_rc == LSYNC_EINVAL);
  CHECK(contains(lsync_ctx_errmsg(ctx), "ids3:2: unknown token %C"));
}

static void test_patterns(void) {
  const char *cfg = put("pat", "Host *.corp !bad.corp\n"
                               "  User corpuser\n"
                               "Host ?ab\n"
                               "  Port 3000\n"
                               "Host WEB*\n"
                               "  HostKeyAlias upper\n");
  const lsync_ssh_opts *o;

  CHECK((o = resolve(cfg, "x.corp")) && streq(o->user, "corpuser"));
  CHECK((o = resolve(cfg, "bad.corp")) && o->user == NULL);
  CHECK((o = resolve(cfg, "BAD.Corp")) && o->user == NULL);
  CHECK((o = resolve(cfg, "tab")) && o->port == 3000);
  CHECK((o = resolve(cfg, "ab")) && o->port == 0);
  CHECK((o = resolve(cfg, "webserver")) && streq(o->host_key_alias, "upper"));
  CHECK((o = resolve(cfg, "myweb")) && o->host_key_alias == NULL);
}

static void test_syntax(void) {
  const char *cfg = put("syntax", "Host eq\n"
                                  "  Port=2200\n"
                                  "  USER = \"john smith\"\n"
                                  "  IdentityFile=\"~/.ssh/my key\"\n"
                                  "\thostname\teq.example   # a comment\n"
                                  "  HostKeyAlias a\"b c\"d\n"
                                  "  UnknownThing whatever it says\n");
  char want[600];

  const lsync_ssh_opts *o = resolve(cfg, "eq");
  CHECK(o && o->port == 2200);
  CHECK(o && streq(o->user, "john smith"));
  snprintf(want, sizeof want, "%s/.ssh/my key", scratch);
  CHECK(streq(ids(o), want));
  CHECK(o && streq(o->host, "eq.example"));
  CHECK(o && streq(o->host_key_alias, "ab cd"));
}

static void test_include(void) {
  char text[1024];
  const lsync_ssh_opts *o;

  mkdir(at(".ssh/conf.d"), 0700);
  mkdir(at("abs"), 0700);
  put(".ssh/conf.d/a.conf", "Host inc1\n  Port 4001\n");
  put(".ssh/conf.d/b.conf", "Host inc2\n  Port 4002\n");
  put(".ssh/conf.d/guarded.inc", "User guardeduser\n");
  put(".ssh/conf.d/hosty.inc", "Host *\n  Port 4444\n");
  put("abs/x.conf", "Host inc3\n  Port 4003\n");
  snprintf(text, sizeof text,
           "Include conf.d/*.conf\n"
           "HostKeyAlias after-include\n"
           "Include %s/abs/*.conf ~/.ssh/conf.d/none-*\n"
           "Host inc1\n"
           "  Port 9999\n"
           "Host guarded\n"
           "  Include conf.d/guarded.inc\n"
           "Host other-guard\n"
           "  Include conf.d/guarded.inc conf.d/hosty.inc\n",
           scratch);
  const char *cfg = put("inc", text);

  CHECK((o = resolve(cfg, "inc1")) && o->port == 4001);
  CHECK((o = resolve(cfg, "inc2")) && o->port == 4002);
  CHECK((o = resolve(cfg, "inc3")) && o->port == 4003);
  CHECK((o = resolve(cfg, "guarded")) && streq(o->user, "guardeduser"));
  o = resolve(cfg, "other-guard");
  CHECK(o && streq(o->user, "guardeduser") && o->port == 4444);
  /* The included file's Host blocks end with it: the including file's
   * top-level line after the Include applies to every host again, and
   * an Include inside a block that does not apply adds nothing, not even
   * through a Host block of its own that would match. */
  o = resolve(cfg, "zzz");
  CHECK(o && streq(o->host_key_alias, "after-include"));
  CHECK(o && o->user == NULL && o->port == 0);

  /* A file that includes itself stops at the depth limit. */
  snprintf(text, sizeof text, "Include %s/loop.conf\n", scratch);
  put("loop.conf", text);
  CHECK(!resolve(at("loop.conf"), "x") && last_rc == LSYNC_EINVAL);
  CHECK(contains(lsync_ctx_errmsg(ctx),
                 "loop.conf:1: Include nested too deeply"));
}

static void on_log(void *ud, lsync_log_level level, const char *msg) {
  (void)ud;
  if (level == LSYNC_LOG_DEBUG && strstr(msg, "Match"))
    match_logs++;
}

static void test_match(void) {
  const char *cfg = put("match", "Match host m\n"
                                 "  User matched\n"
                                 "Host m\n"
                                 "  Port 5000\n"
                                 "Match all\n"
                                 "  User matched-too\n"
                                 "Host m\n"
                                 "  User hostuser\n");

  lsync_ctx_set_log(ctx, on_log, NULL, LSYNC_LOG_DEBUG);
  match_logs = 0;
  const lsync_ssh_opts *o = resolve(cfg, "m");
  CHECK(o && streq(o->user, "hostuser") && o->port == 5000);
  CHECK(match_logs == 1);
  lsync_ctx_set_log(ctx, NULL, NULL, LSYNC_LOG_ERROR);
}

static void test_strict_timeout(void) {
  const char *cfg = put("strict", "Host s1\n"
                                  "  StrictHostKeyChecking accept-new\n"
                                  "  ConnectTimeout 15\n"
                                  "Host s2\n"
                                  "  StrictHostKeyChecking Yes\n"
                                  "  ConnectTimeout 1m30s\n"
                                  "Host *\n"
                                  "  StrictHostKeyChecking no\n"
                                  "  ConnectTimeout 60\n");
  const lsync_ssh_opts *o;

  o = resolve(cfg, "s1");
  CHECK(o && o->accept_new_host == 1 && o->timeout_ms == 15000);
  o = resolve(cfg, "s2");
  CHECK(o && o->accept_new_host == 0 && o->timeout_ms == 90000);
  o = resolve(cfg, "zzz");
  CHECK(o && o->accept_new_host == 1 && o->timeout_ms == 60000);
}

/* A config that fails to load: the code, and the message starts with
 * FILE:LINE where it should. */
static void expect_bad(const char *name, const char *text, int code,
                       const char *msg_part) {
  CHECK(!resolve(put(name, text), "somehost") && last_rc == code);
  CHECK(cur == NULL);
  CHECK(contains(lsync_ctx_errmsg(ctx), msg_part));
  if (!contains(lsync_ctx_errmsg(ctx), msg_part))
    fprintf(stderr, "  message: %s\n", lsync_ctx_errmsg(ctx));
}

static void test_errors(void) {
  char want[600];

  /* Checked even in a block that does not apply, as ssh does. */
  snprintf(want, sizeof want, "%s/badport:2: bad Port '70000'", scratch);
  expect_bad("badport", "Host other\n  Port 70000\n", LSYNC_EINVAL, want);
  expect_bad("badport2", "Port 22x\n", LSYNC_EINVAL, "badport2:1: bad Port");
  expect_bad("badport0", "Port 0\n", LSYNC_EINVAL, "badport0:1: bad Port");
  expect_bad("quote", "User \"abc\n", LSYNC_EINVAL,
             "quote:1: unterminated quote");
  expect_bad("strict", "\nStrictHostKeyChecking maybe\n", LSYNC_EINVAL,
             "strict:2: bad StrictHostKeyChecking 'maybe'");
  expect_bad("timeout", "ConnectTimeout soon\n", LSYNC_EINVAL,
             "timeout:1: bad ConnectTimeout 'soon'");
  expect_bad("noarg", "User\n", LSYNC_EINVAL, "noarg:1: missing argument");

  CHECK(!resolve(at("does-not-exist"), "h") && last_rc == LSYNC_ENOENT);
  CHECK(contains(lsync_ctx_errmsg(ctx), "does-not-exist"));
  CHECK(!resolve(at("alias"), "") && last_rc == LSYNC_EINVAL);
  lsync_sshconf_free(NULL);
}

static void test_default_path(void) {
  /* ~/.ssh/config when no path is given... */
  put(".ssh/config", "Host dflt\n  Port 1234\n");
  const lsync_ssh_opts *o = resolve(NULL, "dflt");
  CHECK(o && o->port == 1234);

  /* ...and a missing one is an empty config. */
  mkdir(at("empty"), 0700);
  setenv("HOME", at("empty"), 1);
  o = resolve(NULL, "dflt");
  CHECK(o && streq(o->host, "dflt"));
  CHECK(o && o->port == 0 && o->user == NULL && o->identity_files == NULL);
  CHECK(o && o->known_hosts == NULL && o->host_key_alias == NULL);
  CHECK(o && o->accept_new_host == 0 && o->timeout_ms == 0);
  setenv("HOME", scratch, 1);
}

int main(void) {
  struct passwd *pw = getpwuid(getuid());
  char *me = pw ? strdup(pw->pw_name) : NULL; /* the expected %u */

  if (!me) {
    fprintf(stderr, "no passwd entry for uid %u\n", (unsigned)getuid());
    return 1;
  }
  if (scratch_make("test_sshconf") < 0)
    return 1;
  if (lsync_ctx_new(&ctx) < 0)
    return 1;
  setenv("HOME", scratch, 1);
  mkdir(at(".ssh"), 0700);
  test_alias();
  test_first_wins();
  test_identities(me);
  test_patterns();
  test_syntax();
  test_include();
  test_match();
  test_strict_timeout();
  test_errors();
  test_default_path();
  lsync_sshconf_free(cur);
  lsync_ctx_free(ctx);
  free(me);
  cleanup();
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
