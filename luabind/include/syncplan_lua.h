/*
 * The `syncplan` Lua 5.4 module, for programs that embed Lua: call
 * luaL_requiref(L, "syncplan", luaopen_syncplan, 0) to make
 * require "syncplan" (and its embedded helpers syncplan.plan,
 * syncplan.runner and syncplan.cli) available without a .so on disk.
 */
#ifndef SYNCPLAN_LUA_H
#define SYNCPLAN_LUA_H

#include <lua.h>

#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
int luaopen_syncplan(lua_State *L);

#endif
