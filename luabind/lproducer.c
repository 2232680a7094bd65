#include "luabind.h"

void lb_producer_open(lua_State *L) { (void)L; }
