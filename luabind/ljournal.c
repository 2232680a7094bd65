#include "luabind.h"

void lb_journal_open(lua_State *L) { (void)L; }
