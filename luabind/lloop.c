#include "luabind.h"

void lb_loop_open(lua_State *L) { (void)L; }
lsync_ctx *lb_ctx(lua_State *L) { (void)L; return NULL; }
