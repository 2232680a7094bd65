/*
 * Retry policy and rate limits for plans: syncplan.classify, exit_text,
 * parse_duration, and the backoff and bucket userdata.
 *
 *   syncplan.classify("rsync", 23, 0, false, false)   --> "partial"
 *   local b = syncplan.backoff{ attempts = 5, backoff = "2s..5m", seed = 1 }
 *   syncplan.sleep(b:delay(2))
 *   local bw = syncplan.bucket{ rate = "40M" }
 *   syncplan.sleep(bw:take(65536))
 *
 * A bucket's clock is CLOCK_MONOTONIC in seconds unless the caller passes
 * its own `now` to bucket{}, take, set_rate and available (a simulated
 * clock in tests); rate and burst are bytes or size strings, "off" or 0
 * for unlimited.  available() is math.huge when unlimited.
 *
 * Backoff and bucket specs are checked when the object is made and a bad
 * one raises: the plan validator calls these before anything runs, so a
 * typo stops the plan with a clear message.  Both userdata hold plain
 * values and need no close.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "luabind.h"

#define LB_BACKOFF_MT "syncplan.backoff"
#define LB_BUCKET_MT "syncplan.bucket"

static lsync_tool check_tool(lua_State *L, int arg) {
  static const char *const names[] = {"rsync", "rclone", NULL};
  static const lsync_tool tools[] = {LSYNC_TOOL_RSYNC, LSYNC_TOOL_RCLONE};
  return tools[luaL_checkoption(L, arg, NULL, names)];
}

static int check_int(lua_State *L, int arg) {
  lua_Integer v = luaL_checkinteger(L, arg);
  luaL_argcheck(L, v >= INT32_MIN && v <= INT32_MAX, arg, "out of range");
  return (int)v;
}

/* classify(tool, exit_status [, term_signal [, stopped [, timed_out]]]);
 * a nil status is -1 (killed: no status), as in lsync_worker_result. */
static int lb_classify(lua_State *L) {
  lsync_tool tool = check_tool(L, 1);
  int status = lua_isnoneornil(L, 2) ? -1 : check_int(L, 2);
  int sig = lua_isnoneornil(L, 3) ? 0 : check_int(L, 3);
  lsync_outcome o = lsync_classify(tool, status, sig, lua_toboolean(L, 4),
                                   lua_toboolean(L, 5));
  lua_pushstring(L, lsync_outcome_name(o));
  return 1;
}

static int lb_exit_text(lua_State *L) {
  lsync_tool tool = check_tool(L, 1);
  int status = lua_isnoneornil(L, 2) ? -1 : check_int(L, 2);
  lua_pushstring(L, lsync_exit_text(tool, status));
  return 1;
}

/* Seconds from a number (as is) or a duration string; 0 or LSYNC_EINVAL. */
static int to_seconds(lua_State *L, int idx, double *out) {
  if (lua_type(L, idx) == LUA_TNUMBER) {
    *out = lua_tonumber(L, idx);
    return *out >= 0 && isfinite(*out) ? 0 : LSYNC_EINVAL;
  }
  if (lua_type(L, idx) != LUA_TSTRING)
    return LSYNC_EINVAL;
  return lsync_parse_duration(lua_tostring(L, idx), out);
}

static int lb_parse_duration(lua_State *L) {
  double s;
  if (lua_type(L, 1) != LUA_TNUMBER)
    luaL_checkstring(L, 1);
  if (to_seconds(L, 1, &s) < 0) {
    lua_pushfstring(L,
                    "invalid duration '%s' (e.g. 90, 1.5s, 250ms, 10m, 1h, "
                    "2d, 1d2h30m15s)",
                    luaL_tolstring(L, 1, NULL));
    return lb_fail(L, LSYNC_EINVAL, lua_tostring(L, -1));
  }
  if (lua_type(L, 1) == LUA_TNUMBER)
    lua_settop(L, 1); /* as is, integer or float */
  else
    lua_pushnumber(L, s);
  return 1;
}

/* ---- backoff ------------------------------------------------------- */

typedef struct lb_backoff {
  lsync_backoff b;
  uint64_t rng;
} lb_backoff;

/* A duration field (number or string) of the spec table, if present. */
static int duration_field(lua_State *L, const char *k, double *out) {
  if (lua_getfield(L, 1, k) == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  if (to_seconds(L, -1, out) < 0)
    luaL_error(L, "backoff: invalid %s '%s' (a duration such as 2s or 5m)", k,
               luaL_tolstring(L, -1, NULL));
  lua_pop(L, 1);
  return 1;
}

static void backoff_spec(lua_State *L, lsync_backoff *b, uint64_t *seed) {
  if (lua_getfield(L, 1, "attempts") != LUA_TNIL) {
    int ok;
    lua_Integer n = lua_tointegerx(L, -1, &ok);
    if (!ok || n < 1 || n > 1000000)
      luaL_error(L, "backoff: attempts must be an integer from 1 to 1000000");
    b->attempts = (unsigned)n;
  }
  int has_spec = lua_getfield(L, 1, "backoff") != LUA_TNIL;
  if (has_spec) {
    /* Type first: lua_tostring would turn a number into a string. */
    if (lua_type(L, -1) != LUA_TSTRING ||
        lsync_backoff_parse(b, lua_tostring(L, -1)) < 0)
      luaL_error(L,
                 "backoff: invalid spec '%s' (BASE..MAX or one duration, "
                 "e.g. \"2s..5m\"; base > 0, max >= base)",
                 luaL_tolstring(L, -1, NULL));
  }
  double base = b->base, max = b->max;
  int has_base = duration_field(L, "base", &base);
  int has_max = duration_field(L, "max", &max);
  if ((has_base || has_max) && has_spec)
    luaL_error(L, "backoff: give either backoff = \"BASE..MAX\" or base/max");
  if (has_base && !has_max && max < base)
    max = base;
  if (!(base > 0) || !(max >= base))
    luaL_error(L, "backoff: base must be > 0 and max >= base (got %f..%f)",
               base, max);
  b->base = base;
  b->max = max;
  if (lua_getfield(L, 1, "jitter") != LUA_TNIL) {
    int ok;
    double j = lua_tonumberx(L, -1, &ok);
    if (!ok || !(j >= 0 && j <= 1))
      luaL_error(L, "backoff: jitter must be a number from 0 to 1");
    b->jitter = j;
  }
  if (lua_getfield(L, 1, "seed") != LUA_TNIL) {
    int ok;
    *seed = (uint64_t)lua_tointegerx(L, -1, &ok);
    if (!ok)
      luaL_error(L, "backoff: seed must be an integer");
  }
}

static int lb_backoff_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lsync_backoff b;
  lsync_backoff_init(&b);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t seed = (uint64_t)ts.tv_sec * 1000000007u + (uint64_t)ts.tv_nsec;
  backoff_spec(L, &b, &seed);
  lb_backoff *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->b = b;
  u->rng = seed;
  luaL_setmetatable(L, LB_BACKOFF_MT);
  return 1;
}

static int backoff_delay(lua_State *L) {
  lb_backoff *u = luaL_checkudata(L, 1, LB_BACKOFF_MT);
  lua_Integer a = luaL_checkinteger(L, 2);
  luaL_argcheck(L, a >= 0 && a <= UINT32_MAX, 2, "attempt out of range");
  lua_pushnumber(L, lsync_backoff_delay(&u->b, (unsigned)a, &u->rng));
  return 1;
}

static int backoff_index(lua_State *L) {
  lb_backoff *u = luaL_checkudata(L, 1, LB_BACKOFF_MT);
  const char *k = luaL_checkstring(L, 2);
  if (!strcmp(k, "attempts"))
    lua_pushinteger(L, u->b.attempts);
  else if (!strcmp(k, "base"))
    lua_pushnumber(L, u->b.base);
  else if (!strcmp(k, "max"))
    lua_pushnumber(L, u->b.max);
  else if (!strcmp(k, "jitter"))
    lua_pushnumber(L, u->b.jitter);
  else if (!strcmp(k, "delay"))
    lua_pushcfunction(L, backoff_delay);
  else
    lua_pushnil(L);
  return 1;
}

static int backoff_tostring(lua_State *L) {
  lb_backoff *u = luaL_checkudata(L, 1, LB_BACKOFF_MT);
  lua_pushfstring(L, "syncplan.backoff (%d attempts, %fs..%fs, jitter %f)",
                  (int)u->b.attempts, u->b.base, u->b.max, u->b.jitter);
  return 1;
}

/* ---- bucket -------------------------------------------------------- */

static double mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Bytes per second (or bytes) from a number or a size string ("40M");
 * 0 or "off" means unlimited.  Raises on anything else. */
static double check_rate(lua_State *L, int idx, const char *what) {
  if (lua_type(L, idx) == LUA_TNUMBER) {
    double v = lua_tonumber(L, idx);
    if (!(v >= 0) || isinf(v))
      luaL_error(L, "bucket: %s must be >= 0", what);
    return v;
  }
  uint64_t v;
  const char *s = lua_tostring(L, idx);
  if (lua_type(L, idx) == LUA_TSTRING && !strcmp(s, "off"))
    return 0;
  if (lua_type(L, idx) != LUA_TSTRING || lsync_parse_size(s, &v) < 0)
    luaL_error(L,
               "bucket: invalid %s '%s' (bytes, a size such as \"40M\", or "
               "\"off\")",
               what, luaL_tolstring(L, idx, NULL));
  return (double)v;
}

static double opt_now(lua_State *L, int arg) {
  return lua_isnoneornil(L, arg) ? mono_now() : luaL_checknumber(L, arg);
}

static int lb_bucket_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  double rate = 0, burst = 0, now;
  if (lua_getfield(L, 1, "rate") != LUA_TNIL)
    rate = check_rate(L, -1, "rate");
  if (lua_getfield(L, 1, "burst") != LUA_TNIL)
    burst = check_rate(L, -1, "burst");
  /* A caller driving its own clock starts the bucket on it. */
  if (lua_getfield(L, 1, "now") == LUA_TNIL)
    now = mono_now();
  else if (lua_type(L, -1) == LUA_TNUMBER)
    now = lua_tonumber(L, -1);
  else
    return luaL_error(L, "bucket: now must be a number (seconds)");
  lsync_bucket *b = lua_newuserdatauv(L, sizeof *b, 0);
  lsync_bucket_init(b, rate, burst, now);
  luaL_setmetatable(L, LB_BUCKET_MT);
  return 1;
}

static int bucket_take(lua_State *L) {
  lsync_bucket *b = luaL_checkudata(L, 1, LB_BUCKET_MT);
  double n = luaL_checknumber(L, 2);
  lua_pushnumber(L, lsync_bucket_take(b, n, opt_now(L, 3)));
  return 1;
}

static int bucket_set_rate(lua_State *L) {
  lsync_bucket *b = luaL_checkudata(L, 1, LB_BUCKET_MT);
  luaL_checkany(L, 2);
  lsync_bucket_set_rate(b, check_rate(L, 2, "rate"), opt_now(L, 3));
  return 0;
}

static int bucket_available(lua_State *L) {
  lsync_bucket *b = luaL_checkudata(L, 1, LB_BUCKET_MT);
  lua_pushnumber(L, lsync_bucket_available(b, opt_now(L, 2)));
  return 1;
}

static int bucket_index(lua_State *L) {
  lsync_bucket *b = luaL_checkudata(L, 1, LB_BUCKET_MT);
  const char *k = luaL_checkstring(L, 2);
  static const luaL_Reg methods[] = {{"take", bucket_take},
                                     {"set_rate", bucket_set_rate},
                                     {"available", bucket_available},
                                     {NULL, NULL}};
  if (!strcmp(k, "rate"))
    lua_pushnumber(L, b->rate);
  else if (!strcmp(k, "burst"))
    lua_pushnumber(L, b->burst);
  else {
    lua_pushnil(L);
    for (const luaL_Reg *m = methods; m->name; m++)
      if (!strcmp(k, m->name)) {
        lua_pushcfunction(L, m->func);
        break;
      }
  }
  return 1;
}

static int bucket_tostring(lua_State *L) {
  lsync_bucket *b = luaL_checkudata(L, 1, LB_BUCKET_MT);
  if (b->rate > 0)
    lua_pushfstring(L, "syncplan.bucket (%f bytes/s, burst %f)", b->rate,
                    b->burst);
  else
    lua_pushliteral(L, "syncplan.bucket (unlimited)");
  return 1;
}

void lb_retry_open(lua_State *L) {
  static const luaL_Reg funcs[] = {{"classify", lb_classify},
                                   {"exit_text", lb_exit_text},
                                   {"parse_duration", lb_parse_duration},
                                   {"backoff", lb_backoff_new},
                                   {"bucket", lb_bucket_new},
                                   {NULL, NULL}};
  luaL_newmetatable(L, LB_BACKOFF_MT);
  lua_pushcfunction(L, backoff_index);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, backoff_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  luaL_newmetatable(L, LB_BUCKET_MT);
  lua_pushcfunction(L, bucket_index);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, bucket_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  luaL_setfuncs(L, funcs, 0);
}
