/*
 * The producer userdata: chunks made on a background thread while the
 * loop runs workers.
 *
 *   local p = assert(syncplan.producer{
 *     root = "/data/src",                 -- or list_argv = { "ssh", ... }
 *     chunks = { count = 8 },             -- or { files = N, bytes = S }
 *     exclude = { "*.tmp" }, include = ..., filter = ...,
 *     one_filesystem = false, threads = nil, max_queued = 4,
 *     -- quick check: drop entries rsync -a would leave alone
 *     dest_root = "/data/dst",            -- or dest_list_argv = { ... }
 *     check_uid = false, check_gid = false,
 *     keep_dir_times = false,             -- a listing: for set_dir_times
 *   })
 *   while true do
 *     local c, err = p:next()             -- in a task; waits for a chunk
 *     if not c then break end             -- nil: done (nil, msg: failed)
 *   end
 *   p:stats()  -- { entries, dirs, bytes, excluded, errors,
 *              --   dirs_unwritable, and the quick
 *              --   check's: compared, unchanged, unchanged_bytes,
 *              --   extraneous, dest_entries, dest_errors, root_changed }
 *
 *   p:set_dir_times(dest_root, list, check_uid, check_gid)
 *              -- once p:next() returned nil: set the listed directories'
 *              -- times (list: NUL-terminated paths, "." the root) ->
 *              -- count | nil, msg, code (see lsync_producer_set_dir_times)
 *
 * The quick check's counts are zeros (compared and root_changed false)
 * without a destination; extraneous and root_changed are final once
 * p:next() has returned nil.
 */
#include <string.h>

#include "luabind.h"

#define PRODUCER_MT "syncplan.producer"

typedef struct lproducer {
  lsync_producer *p;
  lb_sched *s;
  lua_State *waiter;
  unsigned epoch; /* the run the waiter belongs to */
} lproducer;

/* Push what p:next() returns now: a chunk, nil (done), nil + message
 * (failed); 0 when the caller must wait. */
static int next_now(lua_State *L, lproducer *u) {
  lsync_chunk *c;
  if (lsync_producer_take(u->p, &c) == 1) {
    lb_chunk_push(L, c);
    return 1;
  }
  int status;
  if (!lsync_producer_done(u->p, &status))
    return 0;
  if (status < 0)
    return lb_fail(L, status, lsync_producer_errmsg(u->p));
  lua_pushnil(L);
  return 1;
}

static void on_ready(void *ud, lsync_producer *p) {
  (void)p;
  lproducer *u = ud;
  lua_State *co = u->waiter;
  if (!co || !lb_sched_state(u->s))
    return;
  if (u->epoch != lb_sched_epoch(u->s)) {
    u->waiter = NULL; /* its run failed */
    return;
  }
  int n = next_now(co, u);
  if (n) {
    u->waiter = NULL;
    lb_wake(u->s, co, n);
  }
}

static int l_producer(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lsync_producer_opts o;
  lsync_producer_opts_init(&o);
  lsync_filter **filter = lb_filter_holder(L); /* index 2 */
  lb_scan_opts(L, 1, &o.scan, filter);
  if (lua_getfield(L, 1, "chunks") == LUA_TTABLE)
    lb_chunk_opts(L, lua_gettop(L), &o.chunk);
  else
    lb_chunk_opts(L, 0, &o.chunk);
  lua_getfield(L, 1, "root");
  o.root = luaL_optstring(L, -1, NULL);
  if (lua_getfield(L, 1, "list_argv") == LUA_TTABLE)
    o.list_argv = lb_string_array(L, lua_gettop(L), "list_argv");
  if ((o.root == NULL) == (o.list_argv == NULL))
    return luaL_error(L, "producer: give one of root or list_argv");
  lua_getfield(L, 1, "dest_root");
  o.dest_root = luaL_optstring(L, -1, NULL);
  if (lua_getfield(L, 1, "dest_list_argv") == LUA_TTABLE)
    o.dest_list_argv = lb_string_array(L, lua_gettop(L), "dest_list_argv");
  if (o.dest_root && o.dest_list_argv)
    return luaL_error(L, "producer: give at most one of dest_root or "
                         "dest_list_argv");
  lua_getfield(L, 1, "check_uid");
  o.check_uid = lua_toboolean(L, -1);
  lua_getfield(L, 1, "check_gid");
  o.check_gid = lua_toboolean(L, -1);
  lua_getfield(L, 1, "keep_dir_times");
  o.keep_dir_times = lua_toboolean(L, -1);
  lua_getfield(L, 1, "max_queued");
  o.max_queued = (unsigned)luaL_optinteger(L, -1, 0);

  lproducer *u = lua_newuserdatauv(L, sizeof *u, 1);
  memset(u, 0, sizeof *u);
  luaL_setmetatable(L, PRODUCER_MT);
  lua_pushvalue(L, 2); /* the filter must outlive the producer */
  lua_setiuservalue(L, -2, 1);
  u->s = lb_sched_get(L);
  o.on_ready = on_ready;
  o.ud = u;
  lsync_ctx *ctx = lb_ctx(L);
  int rc = lsync_producer_start(ctx, &o, &u->p);
  if (rc < 0)
    return lb_fail(L, rc, lsync_ctx_errmsg(ctx));
  return 1;
}

static lproducer *check(lua_State *L) {
  lproducer *u = luaL_checkudata(L, 1, PRODUCER_MT);
  luaL_argcheck(L, u->p != NULL, 1, "producer is closed");
  return u;
}

static int p_next(lua_State *L) {
  lproducer *u = check(L);
  int n = next_now(L, u);
  if (n)
    return n;
  lb_task_check(L, "producer:next");
  if (u->waiter)
    return luaL_error(L, "producer:next: another task is already waiting");
  u->waiter = L;
  u->epoch = lb_sched_epoch(u->s);
  return lua_yield(L, 0);
}

static int p_stats(lua_State *L) {
  lproducer *u = check(L);
  lsync_scan_stats st;
  lsync_compare_stats cs;
  lsync_producer_stats(u->p, &st);
  lsync_producer_compare_stats(u->p, &cs);
  lua_createtable(L, 0, 13);
  const struct {
    const char *k;
    uint64_t v;
  } f[] = {{"entries", st.entries},
           {"dirs", st.dirs},
           {"bytes", st.bytes},
           {"excluded", st.excluded},
           {"errors", st.errors},
           {"dirs_unwritable", st.dirs_unwritable},
           {"unchanged", cs.unchanged},
           {"unchanged_bytes", cs.unchanged_bytes},
           {"extraneous", cs.extraneous},
           {"dest_entries", cs.dest_entries},
           {"dest_errors", cs.dest_errors}};
  for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
    lua_pushinteger(L, (lua_Integer)f[i].v);
    lua_setfield(L, -2, f[i].k);
  }
  lua_pushboolean(L, cs.root_changed);
  lua_setfield(L, -2, "root_changed");
  lua_pushboolean(L, cs.enabled);
  lua_setfield(L, -2, "compared");
  return 1;
}

/* p:set_dir_times(dest_root, list [, check_uid, check_gid]) -> count |
 * nil, msg, code */
static int p_set_dir_times(lua_State *L) {
  lproducer *u = check(L);
  const char *root = luaL_checkstring(L, 2);
  size_t len;
  const char *list = luaL_checklstring(L, 3, &len);
  uint64_t n;
  int rc = lsync_producer_set_dir_times(u->p, root, list, len,
                                        lua_toboolean(L, 4),
                                        lua_toboolean(L, 5), &n);
  if (rc < 0)
    return lb_fail(L, rc, lsync_ctx_errmsg(lb_ctx(L)));
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}

static int p_close(lua_State *L) {
  lproducer *u = luaL_checkudata(L, 1, PRODUCER_MT);
  if (u->p) {
    lsync_producer_free(u->p);
    u->p = NULL;
  }
  return 0;
}

void lb_producer_open(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"next", p_next},
      {"stats", p_stats},
      {"set_dir_times", p_set_dir_times},
      {"close", p_close},
      {NULL, NULL}};
  lb_new_class(L, PRODUCER_MT, NULL, methods, p_close);
  lua_pushcfunction(L, l_producer);
  lua_setfield(L, -2, "producer");
}
