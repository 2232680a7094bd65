/* syncplan: dispatch to a subcommand. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

const char *cli_prog = "syncplan";

void cli_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: ", cli_prog);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

void cli_log(void *ud, lsync_log_level level, const char *msg) {
  (void)ud;
  fprintf(stderr, "%s: %s%s\n", cli_prog,
          level == LSYNC_LOG_ERROR ? "error: " : "", msg);
}

static const struct {
  const char *name;
  int (*run)(int, char **);
  const char *summary;
} commands[] = {
    {"run", cli_lua_main, "run a plan (PLAN.lua) in the foreground"},
    {"start", cli_lua_main, "run a plan detached; print the job's id"},
    {"status", cli_lua_main, "show a job's progress (running or finished)"},
    {"stop", cli_lua_main, "stop a running job (it stays resumable)"},
    {"copy", cli_lua_main, "copy SRC to DST with parallel workers"},
    {"resume", cli_lua_main, "run the unfinished chunks of a job again"},
    {"list", cli_lua_main, "list the jobs in the journal (history)"},
    {"log", cli_lua_main, "print a job's log, or a chunk's"},
    {"bwlimit", cli_lua_main, "change a running job's bandwidth cap"},
    {"check-key", cmd_checkkey,
     "whether a key logs in to HOST without a password (true/false)"},
    {"tunnel", cmd_tunnel,
     "rsync's remote shell through a running job's connection (internal)"},
    {"chunk", cmd_chunk,
     "partition a tree into chunk lists (fpart-compatible)"},
    {"demo", cmd_demo, "generate a sample tree and sync it with the default plan"},
};

static void usage(FILE *out) {
  fprintf(out, "usage: syncplan COMMAND [ARGS]\n"
               "\n"
               "commands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
    fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fprintf(out, "\n"
               "Run 'syncplan COMMAND --help' for a command's options.\n"
               "Exit status: 0 done, 1 finished with failures, 2 usage error,\n"
               "3 interrupted (resumable), 4 could not connect.\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return EXIT_USAGE;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
    usage(stdout);
    return EXIT_OK;
  }
  if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
    printf("syncplan %s\n", lsync_version());
    return EXIT_OK;
  }
  for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
    if (!strcmp(cmd, commands[i].name))
      return commands[i].run(argc - 1, argv + 1);
  cli_error("unknown command '%s' (try 'syncplan --help')", cmd);
  return EXIT_USAGE;
}
