/*
 * syncplan check-key: whether key authentication to a host works without
 * a password, as a script asks before it starts a transfer.  Prints
 * "true" or "false" on stdout; the reason for false goes to stderr.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define MAX_KEYS 16

static void usage(FILE *out) {
  fprintf(out,
          "usage: syncplan check-key [USER@]HOST[:PORT] [-i KEY]... "
          "[-F CONFIG]\n"
          "                          [--accept-new-host] [--known-hosts FILE]"
          " [--timeout SECONDS]\n"
          "\n"
          "Print true and exit 0 when a private key logs in to HOST without\n"
          "a password; else print false, the reason on stderr, and exit 1\n"
          "(no key accepted, or the host key not verified) or 4 (could not\n"
          "connect).  HOST may be an alias of the ssh configuration\n"
          "(~/.ssh/config, or -F CONFIG): HostName, User, Port, IdentityFile,\n"
          "UserKnownHostsFile, HostKeyAlias, StrictHostKeyChecking and\n"
          "ConnectTimeout are honoured.  The host key is checked against\n"
          "known_hosts; a changed key is always refused, an unknown host\n"
          "unless --accept-new-host (or StrictHostKeyChecking accept-new)\n"
          "records it.\n"
          "\n"
          "  -i, --identity KEY   a private key to try (repeatable; default:\n"
          "                       the config's IdentityFile, else the keys\n"
          "                       of the ssh-agent at $SSH_AUTH_SOCK, then\n"
          "                       ~/.ssh/id_ed25519, id_ecdsa, id_rsa)\n"
          "  -F, --config FILE    ssh configuration file\n"
          "  --accept-new-host    record an unknown host's key\n"
          "  --known-hosts FILE   known_hosts file (default: the config's,\n"
          "                       else ~/.ssh/known_hosts)\n"
          "  --timeout SECONDS    give up after this long (default 30)\n");
}

/* Split [USER@]HOST[:PORT] (HOST may be [v6-address]) in place. */
static int parse_target(char *t, char **user, char **host, unsigned *port) {
  char *at = strrchr(t, '@');
  *user = NULL;
  if (at) {
    *at = '\0';
    *user = t;
    t = at + 1;
  }
  char *colon = NULL;
  if (*t == '[') {
    char *end = strchr(t, ']');
    if (!end)
      return -1;
    *end = '\0';
    *host = t + 1;
    if (end[1] == ':')
      colon = end + 1;
    else if (end[1])
      return -1;
  } else {
    *host = t;
    colon = strchr(t, ':');
  }
  *port = 0;
  if (colon) {
    *colon = '\0';
    char *e;
    unsigned long p = strtoul(colon + 1, &e, 10);
    if (!colon[1] || *e || p == 0 || p > 65535)
      return -1;
    *port = (unsigned)p;
  }
  return **host && (!*user || **user) ? 0 : -1;
}

struct check {
  int status;
  const char *msg;
};

static void on_ready(void *ud, lsync_ssh *s, int status) {
  struct check *c = ud;
  c->status = status;
  if (status < 0)
    c->msg = strdup(lsync_ssh_errmsg(s));
}

int cmd_checkkey(int argc, char **argv) {
  static const struct option longopts[] = {
      {"identity", required_argument, NULL, 'i'},
      {"config", required_argument, NULL, 'F'},
      {"accept-new-host", no_argument, NULL, 'a'},
      {"known-hosts", required_argument, NULL, 'k'},
      {"timeout", required_argument, NULL, 't'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *keys[MAX_KEYS + 1] = {0};
  size_t nkeys = 0;
  const char *config = NULL, *known_hosts = NULL;
  int accept_new = 0, c;
  unsigned timeout_s = 0;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "i:F:h", longopts, NULL)) != -1) {
    switch (c) {
    case 'i':
      if (nkeys == MAX_KEYS) {
        cli_error("check-key: at most %d keys", MAX_KEYS);
        return EXIT_USAGE;
      }
      keys[nkeys++] = optarg;
      break;
    case 'F':
      config = optarg;
      break;
    case 'a':
      accept_new = 1;
      break;
    case 'k':
      known_hosts = optarg;
      break;
    case 't': {
      char *e;
      unsigned long v = strtoul(optarg, &e, 10);
      if (!*optarg || *e || v == 0 || v > 86400) {
        cli_error("check-key: --timeout takes seconds, 1 to 86400, not '%s'",
                  optarg);
        return EXIT_USAGE;
      }
      timeout_s = (unsigned)v;
      break;
    }
    case 'h':
      usage(stdout);
      return EXIT_OK;
    default:
      cli_error("check-key: bad option '%s' (try 'syncplan check-key --help')",
                argv[optind - 1]);
      return EXIT_USAGE;
    }
  }
  char *user, *host;
  unsigned port;
  if (optind != argc - 1 || parse_target(argv[optind], &user, &host, &port)) {
    usage(stderr);
    return EXIT_USAGE;
  }

  lsync_ctx *ctx;
  if (lsync_ctx_new(&ctx) < 0)
    return EXIT_PARTIAL;
  lsync_ctx_set_log(ctx, cli_log, NULL, LSYNC_LOG_WARN);
  lsync_sshconf *conf = NULL;
  struct check chk = {1, NULL};
  int rc = lsync_sshconf_load(ctx, config, host, &conf);
  if (rc < 0) {
    cli_error("check-key: %s", lsync_ctx_errmsg(ctx));
    lsync_ctx_free(ctx);
    return EXIT_USAGE;
  }
  /* The configuration first, then what the command line says. */
  lsync_ssh_opts o = {0};
  lsync_sshconf_opts(conf, &o);
  if (user)
    o.user = user;
  if (port)
    o.port = port;
  if (nkeys)
    o.identity_files = keys;
  if (known_hosts)
    o.known_hosts = known_hosts;
  if (accept_new)
    o.accept_new_host = 1;
  if (timeout_s)
    o.timeout_ms = timeout_s * 1000;
  lsync_ssh *s = NULL;
  rc = lsync_ssh_connect(ctx, &o, on_ready, &chk, &s);
  if (rc == 0) {
    while (chk.status == 1 && lsync_run(ctx, LSYNC_RUN_ONCE) >= 0)
      ;
    rc = chk.status;
    lsync_ssh_free(s);
  } else {
    chk.msg = strdup(lsync_ctx_errmsg(ctx));
  }
  lsync_sshconf_free(conf);
  lsync_ctx_free(ctx);
  puts(rc == 0 ? "true" : "false");
  if (rc == 0)
    return EXIT_OK;
  cli_error("check-key: %s", chk.msg ? chk.msg : lsync_strerror(rc));
  free((char *)chk.msg);
  return rc == LSYNC_ECONNECT || rc == LSYNC_ETIMEDOUT ? EXIT_CONNECT
                                                       : EXIT_PARTIAL;
}
