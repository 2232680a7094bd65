/*
 * The Lua host: `syncplan run`, `copy`, `resume`, `list` and the demo's
 * job are policy written in Lua (the embedded syncplan.cli and
 * syncplan.runner modules); this file makes a Lua state with the module
 * linked in and calls them under pcall with a traceback, as lua.c does.
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>

#include <syncplan_lua.h>

#include "cli.h"

static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (!msg)
    msg = luaL_tolstring(L, 1, NULL);
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* Call syncplan.cli[fn] with the strings in args; its integer result is
 * the exit status. */
static int call_cli(const char *fn, const char *first, int n,
                    const char *const *args) {
  lua_State *L = luaL_newstate();
  if (!L) {
    cli_error("cannot create a Lua state: out of memory");
    return EXIT_PARTIAL;
  }
  luaL_openlibs(L);
  luaL_requiref(L, "syncplan", luaopen_syncplan, 0);
  lua_pop(L, 1);
  lua_pushcfunction(L, traceback);
  int msgh = lua_gettop(L);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "syncplan.cli");
  int rc = lua_pcall(L, 1, 1, msgh);
  if (rc == LUA_OK) {
    lua_getfield(L, -1, fn);
    int nargs = 0;
    if (first) {
      lua_pushstring(L, first);
      nargs++;
      lua_createtable(L, n, 0);
      for (int i = 0; i < n; i++) {
        lua_pushstring(L, args[i]);
        lua_rawseti(L, -2, i + 1);
      }
      nargs++;
    } else {
      for (int i = 0; i < n; i++)
        lua_pushstring(L, args[i]);
      nargs = n;
    }
    rc = lua_pcall(L, nargs, 1, msgh);
  }
  int status;
  if (rc != LUA_OK) {
    /* A bug in the Lua side: report it whole, never as success. */
    cli_error("internal error: %s", lua_tostring(L, -1));
    status = EXIT_PARTIAL;
  } else {
    status = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : EXIT_PARTIAL;
  }
  lua_close(L);
  fflush(stdout);
  return status;
}

int cli_lua_main(int argc, char **argv) {
  return call_cli("main", argv[0], argc - 1, (const char *const *)argv + 1);
}

int cli_lua_demo(const char *src, const char *dst, const char *state_dir) {
  const char *args[] = {src, dst, state_dir};
  return call_cli("demo", NULL, 3, args);
}
