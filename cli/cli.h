/*
 * The syncplan host binary: shared definitions of its subcommands.
 * The cli uses libsync's public headers only.
 */
#ifndef SYNCPLAN_CLI_H
#define SYNCPLAN_CLI_H

#include <libsync/libsync.h>

/* Exit codes, documented in README.md and --help. */
enum {
  EXIT_OK = 0,
  EXIT_PARTIAL = 1,     /* finished, but some chunks or paths failed */
  EXIT_USAGE = 2,       /* usage or plan error: nothing was done */
  EXIT_INTERRUPTED = 3, /* interrupted; the journal can resume it */
  EXIT_CONNECT = 4      /* could not connect */
};

extern const char *cli_prog;

/* Print "syncplan: MESSAGE" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The log callback every subcommand installs: warnings and errors go to
 * stderr prefixed with the program name. */
void cli_log(void *ud, lsync_log_level level, const char *msg);

int cmd_chunk(int argc, char **argv);
int cmd_checkkey(int argc, char **argv);
int cmd_tunnel(int argc, char **argv);

/* Run a subcommand written in Lua (run, copy, resume, list): argv[0] is
 * the subcommand's name. */
int cli_lua_main(int argc, char **argv);
/* The demo's job: sync src to dst with the embedded default plan. */
int cli_lua_demo(const char *src, const char *dst, const char *state_dir);
int cmd_demo(int argc, char **argv);

#endif
