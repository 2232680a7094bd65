/*
 * Schedules, bandwidth timetables and the module's wall clock (see
 * libsync/sched.h for the syntax and the rules).
 *
 *   local s = assert(syncplan.schedule("every 6h"))   -- or nil, msg, code
 *   s:next([last_start [, now]]) -- epoch seconds of the next run start,
 *                                -- or nil when none within ~5 years
 *   s:describe()                 -- "every 6h", "cron 0 *\/6 * * *"
 *   local t = assert(syncplan.timetable("08:00,512k 18:00,30M 23:00,off"))
 *   t:at([when]) -- up, down, next_change: bytes per second in force at
 *                -- when, nil for off (unlimited); the epoch second of the
 *                -- next change, nil when the rates never change
 *   syncplan.time() -- seconds since the epoch, a float (lloop.c
 *                   -- registers it; lb_time() here is its clock)
 *
 * Times are seconds since the epoch; fractions are dropped (floor).
 * last_start nil means there was no run before (an interval schedule is
 * due at once); now and when default to syncplan.time().  timetable()
 * takes a string of blank-separated entries or a list of them.  Both
 * userdata can be closed (close, __gc, __close); a closed one raises.
 *
 * The clock hook: when SYNCPLAN_FAKE_TIME holds epoch seconds (a
 * fraction allowed) as the module is first loaded in the process,
 * syncplan.time() reports that value at that moment and advances from
 * there with the monotonic clock, so a test can start a job at 07:59:58
 * and see the 08:00 switch two seconds later.  It is the only clock hook:
 * everything that asks the module for the time asks syncplan.time().  A
 * value that is not a number raises at require, so a typo cannot go
 * unnoticed as the real time.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "luabind.h"

#define SCHED_MT "syncplan.schedule"
#define TIMETABLE_MT "syncplan.timetable"

/* The fake clock: process-wide, read once. */
static int fake_loaded, fake_on;
static double fake_base, fake_mono;

static double monotonic(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fake_clock_load(lua_State *L) {
  if (fake_loaded)
    return;
  const char *s = getenv("SYNCPLAN_FAKE_TIME");
  if (s && *s) {
    char *end;
    double v = strtod(s, &end);
    if (*end || !isfinite(v) || fabs(v) > 9e15)
      luaL_error(L,
                 "SYNCPLAN_FAKE_TIME: expected seconds since the epoch "
                 "(e.g. 1718006398.5), got '%s'",
                 s);
    fake_base = v;
    fake_mono = monotonic();
    fake_on = 1;
  }
  fake_loaded = 1;
}

double lb_time(void) {
  return fake_on ? fake_base + (monotonic() - fake_mono) : lsync_wall_time();
}

/* The time argument at idx, whole seconds; syncplan.time() when absent. */
static int64_t opt_time(lua_State *L, int idx) {
  double t = luaL_optnumber(L, idx, lb_time());
  luaL_argcheck(L, isfinite(t) && fabs(t) < 9e15, idx, "time out of range");
  return (int64_t)floor(t);
}

/* Both userdata hold one pointer, NULL once closed. */
static void *check_open(lua_State *L, const char *mt, const char *what) {
  void **slot = luaL_checkudata(L, 1, mt);
  if (!*slot)
    luaL_error(L, "attempt to use a closed %s", what);
  return *slot;
}

static void **new_slot(lua_State *L, const char *mt) {
  void **slot = lua_newuserdatauv(L, sizeof *slot, 0);
  *slot = NULL;
  luaL_setmetatable(L, mt);
  return slot;
}

static int l_schedule(lua_State *L) {
  const char *spec = luaL_checkstring(L, 1);
  char err[256];
  lsync_sched *s;
  void **slot = new_slot(L, SCHED_MT); /* raises before s exists */
  int rc = lsync_sched_parse(spec, &s, err, sizeof err);
  if (rc < 0)
    return lb_fail(L, rc, rc == LSYNC_EINVAL ? err : NULL);
  *slot = s;
  return 1;
}

static int s_close(lua_State *L) {
  void **slot = luaL_checkudata(L, 1, SCHED_MT);
  lsync_sched_free(*slot);
  *slot = NULL;
  return 0;
}

static int s_next(lua_State *L) {
  const lsync_sched *s = check_open(L, SCHED_MT, "schedule");
  int64_t last = lua_isnoneornil(L, 2) ? INT64_MIN : opt_time(L, 2);
  int64_t next = lsync_sched_next(s, last, opt_time(L, 3));
  if (next < 0)
    lua_pushnil(L);
  else
    lua_pushinteger(L, (lua_Integer)next);
  return 1;
}

static int s_describe(lua_State *L) {
  lua_pushstring(L, lsync_sched_describe(check_open(L, SCHED_MT, "schedule")));
  return 1;
}

static int s_tostring(lua_State *L) {
  void **slot = luaL_checkudata(L, 1, SCHED_MT);
  if (*slot)
    lua_pushfstring(L, "syncplan.schedule (%s)", lsync_sched_describe(*slot));
  else
    lua_pushliteral(L, "syncplan.schedule (closed)");
  return 1;
}

static int l_timetable(lua_State *L) {
  const char **list, *one;
  size_t n = 0;
  if (lua_type(L, 1) == LUA_TTABLE) {
    list = lb_string_array(L, 1, "timetable");
    while (list[n])
      n++;
  } else {
    one = luaL_checkstring(L, 1);
    list = &one;
    n = 1;
  }
  char err[256];
  lsync_timetable *t;
  void **slot = new_slot(L, TIMETABLE_MT);
  int rc = lsync_timetable_parse(list, n, &t, err, sizeof err);
  if (rc < 0)
    return lb_fail(L, rc, rc == LSYNC_EINVAL ? err : NULL);
  *slot = t;
  return 1;
}

static int t_close(lua_State *L) {
  void **slot = luaL_checkudata(L, 1, TIMETABLE_MT);
  lsync_timetable_free(*slot);
  *slot = NULL;
  return 0;
}

static void push_rate(lua_State *L, int64_t v) {
  if (v < 0)
    lua_pushnil(L);
  else
    lua_pushinteger(L, (lua_Integer)v);
}

static int t_at(lua_State *L) {
  const lsync_timetable *t = check_open(L, TIMETABLE_MT, "timetable");
  int64_t up, down, next;
  int rc = lsync_timetable_at(t, opt_time(L, 2), &up, &down, &next);
  if (rc < 0)
    return luaL_argerror(L, 2, "time out of range");
  push_rate(L, up);
  push_rate(L, down);
  push_rate(L, next);
  return 3;
}

void lb_schedule_open(lua_State *L) {
  static const luaL_Reg s_meta[] = {{"__gc", s_close},
                                    {"__close", s_close},
                                    {"__tostring", s_tostring},
                                    {NULL, NULL}};
  static const luaL_Reg s_methods[] = {{"next", s_next},
                                       {"describe", s_describe},
                                       {"close", s_close},
                                       {NULL, NULL}};
  static const luaL_Reg t_meta[] = {
      {"__gc", t_close}, {"__close", t_close}, {NULL, NULL}};
  static const luaL_Reg t_methods[] = {
      {"at", t_at}, {"close", t_close}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {
      {"schedule", l_schedule}, {"timetable", l_timetable}, {NULL, NULL}};
  fake_clock_load(L);
  lb_new_class(L, SCHED_MT, s_meta, s_methods, NULL);
  lb_new_class(L, TIMETABLE_MT, t_meta, t_methods, NULL);
  luaL_setfuncs(L, funcs, 0);
}
