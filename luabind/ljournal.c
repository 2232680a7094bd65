/*
 * The journal userdata: syncplan.journal([dir]) and syncplan.state_dir().
 *
 *   local j = assert(syncplan.journal())          -- the default state dir
 *   local id = j:run_new{ source = "/src", dest = "host:/dst", plan = text }
 *   j:chunk_add(id, 0, "a\0b\0", 2, 4096)
 *   j:chunk_update(id, { index = 0, state = "done", attempts = 1 })
 *   for _, c in ipairs(j:chunks(id)) do print(c.index, c.state) end
 *
 * Methods: dir(), close(), run_new{source, dest [, plan]} -> id,
 * run_get(id), run_set_state(id, state [, exit_code = -1]),
 * run_set_scan_complete(id, bool), runs() (newest first), begin(),
 * commit(), chunk_add(id, index, list, files, bytes), chunk_update(id, t),
 * chunks(id [, with_lists]), chunk_get(id, index) (list included),
 * record_put(key, entries), record(key), record_count(key).
 *
 * File records (journal.h): record_put(key, entries) replaces key's
 * record with the array entries, all or nothing (inside begin/commit it
 * is part of that transaction), and returns true.  An entry is a table
 * with the fields of a scan entry, so a scan's entries are stored as
 * they are: path, type (a scan type name), size, mtime (seconds),
 * mtime_nsec, dev, ino, and optionally hash (a string of any bytes);
 * other fields are ignored, absent numbers are 0.  record(key) returns
 * the array of such tables in bytewise path order (hash only where one
 * was stored); record_count(key) the number of entries.  A key never
 * written is an empty record.
 *
 * Runs and chunks come back as plain tables (fields as lsync_run_rec and
 * lsync_chunk_rec; a chunk's state is its name).  chunk_update stores
 * every field, as the C call does: an absent field is stored as 0 (or ""
 * for host and error, "pending" for state), so pass the whole record.
 * Expected failures (unknown job, SQLite errors, a private-dir refusal)
 * return nil, message, code; misuse (wrong types, a closed journal)
 * raises.  The userdata is born closed; close is idempotent and serves
 * __gc, __close and :close().
 */
#include <limits.h>
#include <string.h>

#include "luabind.h"

#define LB_JOURNAL_MT "syncplan.journal"

typedef struct lb_journal {
  lsync_ctx *ctx;
  lsync_journal *j;
} lb_journal;

static lb_journal *check_journal(lua_State *L) {
  lb_journal *u = luaL_checkudata(L, 1, LB_JOURNAL_MT);
  if (!u->j)
    luaL_error(L, "attempt to use a closed journal");
  return u;
}

static int jfail(lua_State *L, lb_journal *u, int rc) {
  return lb_fail(L, rc, lsync_ctx_errmsg(u->ctx));
}

/* true, or nil, message, code. */
static int jresult(lua_State *L, lb_journal *u, int rc) {
  if (rc < 0)
    return jfail(L, u, rc);
  lua_pushboolean(L, 1);
  return 1;
}

static unsigned check_index(lua_State *L, int arg) {
  lua_Integer i = luaL_checkinteger(L, arg);
  luaL_argcheck(L, i >= 0 && i <= (lua_Integer)UINT_MAX, arg,
                "chunk index out of range");
  return (unsigned)i;
}

static void set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

static void set_num(lua_State *L, const char *k, double v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}

static void set_str(lua_State *L, const char *k, const char *v) {
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

static void push_run(lua_State *L, const lsync_run_rec *r) {
  lua_createtable(L, 0, 15);
  set_str(L, "id", r->id);
  set_str(L, "state", r->state);
  set_str(L, "source", r->source);
  set_str(L, "dest", r->dest);
  set_str(L, "plan", r->plan);
  lua_pushboolean(L, r->scan_complete);
  lua_setfield(L, -2, "scan_complete");
  set_int(L, "exit_code", r->exit_code);
  set_int(L, "pid", r->pid);
  set_num(L, "started", r->started);
  set_num(L, "finished", r->finished);
  set_int(L, "chunks", (lua_Integer)r->chunks);
  set_int(L, "chunks_done", (lua_Integer)r->chunks_done);
  set_int(L, "chunks_failed", (lua_Integer)r->chunks_failed);
  set_int(L, "files", (lua_Integer)r->files);
  set_int(L, "bytes", (lua_Integer)r->bytes);
}

static void push_chunk(lua_State *L, const lsync_chunk_rec *r) {
  lua_createtable(L, 0, 12);
  set_int(L, "index", r->index);
  set_str(L, "state", lsync_chunk_state_name(r->state));
  set_int(L, "attempts", r->attempts);
  set_int(L, "exit_code", r->exit_code);
  set_int(L, "term_signal", r->term_signal);
  set_str(L, "host", r->host);
  set_str(L, "error", r->error);
  set_int(L, "files", (lua_Integer)r->files);
  set_int(L, "bytes", (lua_Integer)r->bytes);
  if (r->list) {
    lua_pushlstring(L, r->list, r->list_len);
    lua_setfield(L, -2, "list");
  }
  set_num(L, "started", r->started);
  set_num(L, "finished", r->finished);
}

/* ---- iterations ----------------------------------------------------
 * The callbacks run inside libsync: nothing may unwind through it, so
 * building each table runs under pcall, and an error stops the listing
 * and is raised once libsync has returned. */

struct collect {
  lua_State *L;
  int tbl;    /* absolute index of the result array */
  int failed; /* the error message is on top of the stack */
  lua_Integer n;
};

static int add_run(lua_State *L) {
  push_run(L, lua_touserdata(L, 1));
  lua_rawseti(L, 2, lua_tointeger(L, 3));
  return 0;
}

static void push_record_entry(lua_State *L, const lsync_record_entry *e) {
  lua_createtable(L, 0, 8);
  lua_pushlstring(L, e->path, e->path_len);
  lua_setfield(L, -2, "path");
  set_str(L, "type", lsync_type_name(e->type));
  set_int(L, "size", (lua_Integer)e->size);
  set_int(L, "mtime", (lua_Integer)e->mtime);
  set_int(L, "mtime_nsec", (lua_Integer)e->mtime_nsec);
  set_int(L, "dev", (lua_Integer)e->dev);
  set_int(L, "ino", (lua_Integer)e->ino);
  if (e->hash) {
    lua_pushlstring(L, e->hash, e->hash_len);
    lua_setfield(L, -2, "hash");
  }
}

static int add_record_entry(lua_State *L) {
  push_record_entry(L, lua_touserdata(L, 1));
  lua_rawseti(L, 2, lua_tointeger(L, 3));
  return 0;
}

static int add_chunk(lua_State *L) {
  push_chunk(L, lua_touserdata(L, 1));
  lua_rawseti(L, 2, lua_tointeger(L, 3));
  return 0;
}

static int collect_one(struct collect *c, lua_CFunction fn, const void *rec) {
  lua_State *L = c->L;
  if (!lua_checkstack(L, 5)) {
    lua_pushliteral(L, "stack overflow");
    c->failed = 1;
    return 1;
  }
  lua_pushcfunction(L, fn);
  lua_pushlightuserdata(L, (void *)rec);
  lua_pushvalue(L, c->tbl);
  lua_pushinteger(L, ++c->n);
  if (lua_pcall(L, 3, 0, 0) != LUA_OK) {
    c->failed = 1;
    return 1;
  }
  return 0;
}

static int collect_run(void *ud, const lsync_run_rec *r) {
  return collect_one(ud, add_run, r);
}

static int collect_chunk(void *ud, const lsync_chunk_rec *r) {
  return collect_one(ud, add_chunk, r);
}

static int collect_record_entry(void *ud, const lsync_record_entry *e) {
  return collect_one(ud, add_record_entry, e);
}

/* The array on top, or nil, message, code; raises a callback error. */
static int collect_result(lua_State *L, lb_journal *u, struct collect *c,
                          int rc) {
  if (c->failed)
    return lua_error(L);
  if (rc < 0)
    return jfail(L, u, rc);
  lua_settop(L, c->tbl);
  return 1;
}

/* ---- methods ------------------------------------------------------- */

static int j_dir(lua_State *L) {
  lua_pushstring(L, lsync_journal_dir(check_journal(L)->j));
  return 1;
}

static int j_close(lua_State *L) {
  lb_journal *u = luaL_checkudata(L, 1, LB_JOURNAL_MT);
  lsync_journal_close(u->j);
  lsync_ctx_free(u->ctx);
  u->j = NULL;
  u->ctx = NULL;
  return 0;
}

static int j_tostring(lua_State *L) {
  lb_journal *u = luaL_checkudata(L, 1, LB_JOURNAL_MT);
  if (u->j)
    lua_pushfstring(L, "syncplan.journal (%s)", lsync_journal_dir(u->j));
  else
    lua_pushliteral(L, "syncplan.journal (closed)");
  return 1;
}

/* A string field of the table at idx: required, or default def. */
static const char *str_field(lua_State *L, int idx, const char *k,
                             const char *def) {
  int t = lua_getfield(L, idx, k);
  if (t == LUA_TNIL && def)
    return def; /* the nil stays on the stack, like the strings */
  if (t != LUA_TSTRING)
    luaL_error(L, "field '%s' must be a string", k);
  return lua_tostring(L, -1);
}

static int j_run_new(lua_State *L) {
  lb_journal *u = check_journal(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  const char *source = str_field(L, 2, "source", NULL);
  const char *dest = str_field(L, 2, "dest", NULL);
  const char *plan = str_field(L, 2, "plan", "");
  char id[LSYNC_JOB_ID_MAX];
  int rc = lsync_journal_run_new(u->j, source, dest, plan, id);
  if (rc < 0)
    return jfail(L, u, rc);
  lua_pushstring(L, id);
  return 1;
}

static int j_run_get(lua_State *L) {
  lb_journal *u = check_journal(L);
  lsync_run_rec r;
  int rc = lsync_journal_run_get(u->j, luaL_checkstring(L, 2), &r);
  if (rc < 0)
    return jfail(L, u, rc);
  push_run(L, &r);
  return 1;
}

static int j_run_set_state(lua_State *L) {
  lb_journal *u = check_journal(L);
  const char *id = luaL_checkstring(L, 2);
  const char *state = luaL_checkstring(L, 3);
  lua_Integer code = luaL_optinteger(L, 4, -1);
  luaL_argcheck(L, code >= INT_MIN && code <= INT_MAX, 4, "out of range");
  return jresult(L, u, lsync_journal_run_set_state(u->j, id, state, (int)code));
}

static int j_run_set_scan_complete(lua_State *L) {
  lb_journal *u = check_journal(L);
  const char *id = luaL_checkstring(L, 2);
  luaL_checkany(L, 3);
  return jresult(
      L, u, lsync_journal_run_set_scan_complete(u->j, id, lua_toboolean(L, 3)));
}

static int j_runs(lua_State *L) {
  lb_journal *u = check_journal(L);
  lua_settop(L, 1);
  lua_newtable(L);
  struct collect c = {L, lua_gettop(L), 0, 0};
  int rc = lsync_journal_runs(u->j, collect_run, &c);
  return collect_result(L, u, &c, rc);
}

static int j_begin(lua_State *L) {
  lb_journal *u = check_journal(L);
  return jresult(L, u, lsync_journal_begin(u->j));
}

static int j_commit(lua_State *L) {
  lb_journal *u = check_journal(L);
  return jresult(L, u, lsync_journal_commit(u->j));
}

static uint64_t check_count(lua_State *L, int arg) {
  lua_Integer v = luaL_checkinteger(L, arg);
  luaL_argcheck(L, v >= 0, arg, "must not be negative");
  return (uint64_t)v;
}

static int j_chunk_add(lua_State *L) {
  lb_journal *u = check_journal(L);
  const char *id = luaL_checkstring(L, 2);
  unsigned index = check_index(L, 3);
  size_t len;
  const char *list = luaL_checklstring(L, 4, &len);
  uint64_t files = check_count(L, 5), bytes = check_count(L, 6);
  return jresult(
      L, u, lsync_journal_chunk_add(u->j, id, index, list, len, files, bytes));
}

/* An integer field of the table at idx, 0 when absent. */
static lua_Integer int_field(lua_State *L, int idx, const char *k,
                             lua_Integer lo, lua_Integer hi) {
  lua_getfield(L, idx, k);
  int ok;
  lua_Integer v = lua_tointegerx(L, -1, &ok);
  if (lua_isnil(L, -1))
    v = 0, ok = 1;
  if (!ok || v < lo || v > hi)
    luaL_error(L, "field '%s' must be an integer in %I..%I", k, lo, hi);
  lua_pop(L, 1);
  return v;
}

static double num_field(lua_State *L, int idx, const char *k) {
  lua_getfield(L, idx, k);
  int ok;
  double v = lua_tonumberx(L, -1, &ok);
  if (lua_isnil(L, -1))
    v = 0, ok = 1;
  if (!ok)
    luaL_error(L, "field '%s' must be a number", k);
  lua_pop(L, 1);
  return v;
}

static int j_chunk_update(lua_State *L) {
  lb_journal *u = check_journal(L);
  const char *id = luaL_checkstring(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  lsync_chunk_rec r = {0};
  if (lua_getfield(L, 3, "index") == LUA_TNIL)
    return luaL_error(L, "chunk_update: field 'index' is required");
  lua_pop(L, 1);
  r.index = (unsigned)int_field(L, 3, "index", 0, UINT_MAX);
  const char *state = str_field(L, 3, "state", "pending");
  int s = lsync_chunk_state_parse(state);
  if (s < 0)
    return luaL_error(L,
                      "invalid chunk state '%s' (pending, running, done "
                      "or failed)",
                      state);
  r.state = (lsync_chunk_state)s;
  r.attempts = (unsigned)int_field(L, 3, "attempts", 0, UINT_MAX);
  r.exit_code = (int)int_field(L, 3, "exit_code", INT_MIN, INT_MAX);
  r.term_signal = (int)int_field(L, 3, "term_signal", 0, INT_MAX);
  r.host = str_field(L, 3, "host", "");
  r.error = str_field(L, 3, "error", "");
  r.started = num_field(L, 3, "started");
  r.finished = num_field(L, 3, "finished");
  return jresult(L, u, lsync_journal_chunk_update(u->j, id, &r));
}

static int j_chunks(lua_State *L) {
  lb_journal *u = check_journal(L);
  const char *id = luaL_checkstring(L, 2);
  int with_lists = lua_toboolean(L, 3);
  lua_settop(L, 2);
  lua_newtable(L);
  struct collect c = {L, lua_gettop(L), 0, 0};
  int rc = lsync_journal_chunks(u->j, id, with_lists, collect_chunk, &c);
  return collect_result(L, u, &c, rc);
}

static int j_chunk_get(lua_State *L) {
  lb_journal *u = check_journal(L);
  const char *id = luaL_checkstring(L, 2);
  lsync_chunk_rec r;
  int rc = lsync_journal_chunk_get(u->j, id, check_index(L, 3), &r);
  if (rc < 0)
    return jfail(L, u, rc);
  push_chunk(L, &r);
  return 1;
}

/* ---- file records ----------------------------------------------------
 * record_put reads the entries from inside lsync_journal_record_replace,
 * so each is read under pcall (bad fields raise), and an error abandons
 * the replacement and is raised once libsync has returned. */

struct feed {
  lua_State *L;
  int tbl; /* absolute index of the entries */
  lua_Integer i;
  lsync_record_entry *e;
  int failed; /* the error message is on top of the stack */
};

/* A string field read raw: the string stays referenced by the entry,
 * which the entries array keeps, after the value leaves the stack. */
static const char *raw_str(lua_State *L, int idx, const char *k, size_t *len,
                           int required) {
  lua_pushstring(L, k);
  int t = lua_rawget(L, idx);
  const char *v = t == LUA_TSTRING ? lua_tolstring(L, -1, len) : NULL;
  if (!v && (required || t != LUA_TNIL))
    luaL_error(L, "record_put: entry's '%s' must be a string", k);
  lua_pop(L, 1);
  return v;
}

/* Under pcall: (feed, entries) -> true with f->e filled, or false at the
 * end of the array. */
static int read_entry(lua_State *L) {
  struct feed *f = lua_touserdata(L, 1);
  if (lua_rawgeti(L, 2, f->i + 1) == LUA_TNIL) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (!lua_istable(L, 3))
    return luaL_error(L, "record_put: entry %I is not a table", f->i + 1);
  lsync_record_entry *e = f->e;
  e->path = raw_str(L, 3, "path", &e->path_len, 1);
  size_t tl;
  const char *type = raw_str(L, 3, "type", &tl, 1);
  int t = 0;
  while (t <= LSYNC_T_BLOCK && strcmp(lsync_type_name((lsync_type)t), type))
    t++;
  if (t > LSYNC_T_BLOCK)
    return luaL_error(L, "record_put: unknown type '%s'", type);
  e->type = (lsync_type)t;
  e->size = (uint64_t)int_field(L, 3, "size", 0, LUA_MAXINTEGER);
  e->mtime = (int64_t)int_field(L, 3, "mtime", LUA_MININTEGER, LUA_MAXINTEGER);
  e->mtime_nsec = (int32_t)int_field(L, 3, "mtime_nsec", 0, 999999999);
  e->dev = (uint64_t)int_field(L, 3, "dev", LUA_MININTEGER, LUA_MAXINTEGER);
  e->ino = (uint64_t)int_field(L, 3, "ino", LUA_MININTEGER, LUA_MAXINTEGER);
  e->hash = raw_str(L, 3, "hash", &e->hash_len, 0);
  if (!e->hash)
    e->hash_len = 0;
  f->i++;
  lua_pushboolean(L, 1);
  return 1;
}

static int feed_next(void *ud, lsync_record_entry *e) {
  struct feed *f = ud;
  lua_State *L = f->L;
  if (!lua_checkstack(L, 4))
    return LSYNC_ENOMEM;
  f->e = e;
  lua_pushcfunction(L, read_entry);
  lua_pushlightuserdata(L, f);
  lua_pushvalue(L, f->tbl);
  if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
    f->failed = 1;
    return LSYNC_ECANCELED;
  }
  int more = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return more;
}

static int j_record_put(lua_State *L) {
  lb_journal *u = check_journal(L);
  const char *key = luaL_checkstring(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  struct feed f = {L, 3, 0, NULL, 0};
  int rc = lsync_journal_record_replace(u->j, key, feed_next, &f);
  if (f.failed)
    return lua_error(L);
  return jresult(L, u, rc);
}

static int j_record(lua_State *L) {
  lb_journal *u = check_journal(L);
  const char *key = luaL_checkstring(L, 2);
  lua_settop(L, 2);
  lua_newtable(L);
  struct collect c = {L, lua_gettop(L), 0, 0};
  int rc = lsync_journal_record_each(u->j, key, collect_record_entry, &c);
  return collect_result(L, u, &c, rc);
}

static int j_record_count(lua_State *L) {
  lb_journal *u = check_journal(L);
  uint64_t n;
  int rc = lsync_journal_record_count(u->j, luaL_checkstring(L, 2), &n);
  if (rc < 0)
    return jfail(L, u, rc);
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}

/* ---- module functions ---------------------------------------------- */

static int lb_state_dir(lua_State *L) {
  char buf[4096];
  int rc = lsync_state_dir_default(buf, sizeof buf);
  if (rc < 0)
    return lb_fail(L, rc,
                   rc == LSYNC_ENOENT
                       ? "no state directory: set SYNCPLAN_STATE_DIR, "
                         "XDG_STATE_HOME or HOME"
                       : "state directory name is too long");
  lua_pushstring(L, buf);
  return 1;
}

static int lb_journal_new(lua_State *L) {
  const char *dir = luaL_optstring(L, 1, NULL);
  lb_journal *u = lua_newuserdatauv(L, sizeof *u, 0);
  memset(u, 0, sizeof *u);
  luaL_setmetatable(L, LB_JOURNAL_MT);
  if (lsync_ctx_new(&u->ctx) < 0)
    return luaL_error(L, "out of memory");
  int rc = lsync_journal_open(u->ctx, dir, &u->j);
  if (rc < 0) {
    int n = jfail(L, u, rc);
    lsync_ctx_free(u->ctx);
    u->ctx = NULL;
    return n;
  }
  return 1;
}

void lb_journal_open(lua_State *L) {
  static const luaL_Reg meta[] = {{"__gc", j_close},
                                  {"__close", j_close},
                                  {"__tostring", j_tostring},
                                  {NULL, NULL}};
  static const luaL_Reg methods[] = {
      {"dir", j_dir},
      {"close", j_close},
      {"run_new", j_run_new},
      {"run_get", j_run_get},
      {"run_set_state", j_run_set_state},
      {"run_set_scan_complete", j_run_set_scan_complete},
      {"runs", j_runs},
      {"begin", j_begin},
      {"commit", j_commit},
      {"chunk_add", j_chunk_add},
      {"chunk_update", j_chunk_update},
      {"chunks", j_chunks},
      {"chunk_get", j_chunk_get},
      {"record_put", j_record_put},
      {"record", j_record},
      {"record_count", j_record_count},
      {NULL, NULL}};
  static const luaL_Reg funcs[] = {
      {"state_dir", lb_state_dir}, {"journal", lb_journal_new}, {NULL, NULL}};
  lb_new_class(L, LB_JOURNAL_MT, meta, methods, NULL);
  luaL_setfuncs(L, funcs, 0);
}
