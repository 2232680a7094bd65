#include "luabind.h"

void lb_retry_open(lua_State *L) { (void)L; }
