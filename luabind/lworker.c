#include "luabind.h"

void lb_worker_open(lua_State *L) { (void)L; }
