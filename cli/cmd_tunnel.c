/*
 * syncplan tunnel SOCKET SLOT [-l USER] [-4|-6] HOST COMMAND...
 *
 * rsync's remote shell while a job runs (the job passes
 * `-e "syncplan tunnel SOCKET SLOT"`): rsync appends what it gives any
 * remote shell, maybe "-l USER" and "-4"/"-6", then the host and the
 * command's words.  The words are joined with spaces, as ssh joins them,
 * and the job runs the command on the slot's connection (tunnel.h).
 * The host and user are those of the slot's connection already; they
 * are only checked for presence.  Exit status: the command's, or 255.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *out) {
  fprintf(out, "usage: syncplan tunnel SOCKET SLOT [-l USER] [-4|-6] HOST "
               "COMMAND...\n"
               "\n"
               "The remote shell a running job gives rsync (rsync -e): runs\n"
               "COMMAND over the job's ssh connection for worker slot SLOT.\n"
               "Not for use by hand.  Exits with COMMAND's status, or 255.\n");
}

int cmd_tunnel(int argc, char **argv) {
  if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    usage(stdout);
    return EXIT_OK;
  }
  if (argc < 5) {
    usage(stderr);
    return 255;
  }
  const char *sock = argv[1];
  char *end;
  unsigned long slot = strtoul(argv[2], &end, 10);
  if (!*argv[2] || *end || slot > 65535) {
    cli_error("tunnel: bad slot '%s'", argv[2]);
    return 255;
  }
  int i = 3;
  while (i < argc && argv[i][0] == '-') {
    if (!strcmp(argv[i], "-l") && i + 1 < argc)
      i += 2;
    else if (!strcmp(argv[i], "-4") || !strcmp(argv[i], "-6"))
      i++;
    else {
      cli_error("tunnel: unknown option '%s'", argv[i]);
      return 255;
    }
  }
  if (argc - i < 2) { /* the host, then at least one word */
    usage(stderr);
    return 255;
  }
  size_t len = 0;
  for (int k = i + 1; k < argc; k++)
    len += strlen(argv[k]) + 1;
  char *cmd = malloc(len);
  if (!cmd) {
    cli_error("tunnel: out of memory");
    return 255;
  }
  char *p = cmd;
  for (int k = i + 1; k < argc; k++) {
    size_t n = strlen(argv[k]);
    memcpy(p, argv[k], n);
    p += n;
    *p++ = k + 1 < argc ? ' ' : '\0';
  }
  char err[512] = "";
  int rc = lsync_tunnel_client(sock, (unsigned)slot, cmd, err, sizeof err);
  free(cmd);
  if (err[0])
    cli_error("tunnel: %s: %s", argv[i], err);
  return rc;
}
