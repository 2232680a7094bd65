/*
 * The chunk userdata and syncplan.chunk(dir, opts).
 *
 *   local chunks, stats = syncplan.chunk(dir, { count = 8 })
 *   for _, c in ipairs(chunks) do print(c.index, c.files, c.bytes) end
 *   chunks[1]:write("/tmp/list.1")          -- NUL-separated by default
 *
 * Fields: index, files (entries), bytes (hard links once), list (a new
 * table of paths).  Methods: paths() iterator, items() table of
 * {path, size, type}, write(file [, terminator]).  #c is the entry count.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "luabind.h"

typedef struct lb_chunk {
  lsync_chunk *c;
} lb_chunk;

static lsync_chunk *check_chunk(lua_State *L, int idx) {
  lb_chunk *u = luaL_checkudata(L, idx, LB_CHUNK_MT);
  luaL_argcheck(L, u->c != NULL, idx, "chunk is freed");
  return u->c;
}

static void push_list(lua_State *L, const lsync_chunk *c) {
  size_t n = lsync_chunk_len(c);
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lsync_chunk_item it;
    lsync_chunk_item_at(c, i, &it);
    lua_pushlstring(L, it.path, it.path_len);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

static int chunk_index(lua_State *L) {
  lsync_chunk *c = check_chunk(L, 1);
  const char *k = luaL_checkstring(L, 2);
  if (!strcmp(k, "index"))
    lua_pushinteger(L, lsync_chunk_index(c));
  else if (!strcmp(k, "files"))
    lua_pushinteger(L, (lua_Integer)lsync_chunk_len(c));
  else if (!strcmp(k, "bytes"))
    lua_pushinteger(L, (lua_Integer)lsync_chunk_bytes(c));
  else if (!strcmp(k, "list"))
    push_list(L, c);
  else {
    luaL_getmetafield(L, 1, "methods");
    lua_getfield(L, -1, k);
  }
  return 1;
}

static int chunk_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)lsync_chunk_len(check_chunk(L, 1)));
  return 1;
}

static int paths_next(lua_State *L) {
  lsync_chunk *c = check_chunk(L, lua_upvalueindex(1));
  lua_Integer i = lua_tointeger(L, lua_upvalueindex(2));
  if ((size_t)i >= lsync_chunk_len(c))
    return 0;
  lsync_chunk_item it;
  lsync_chunk_item_at(c, (size_t)i, &it);
  lua_pushinteger(L, i + 1);
  lua_replace(L, lua_upvalueindex(2));
  lua_pushlstring(L, it.path, it.path_len);
  lua_pushinteger(L, (lua_Integer)it.size);
  lua_pushstring(L, lsync_type_name(it.type));
  return 3;
}

/* for path, size, type in c:paths() do ... end */
static int chunk_paths(lua_State *L) {
  check_chunk(L, 1);
  lua_settop(L, 1);
  lua_pushinteger(L, 0);
  lua_pushcclosure(L, paths_next, 2);
  return 1;
}

static int chunk_items(lua_State *L) {
  lsync_chunk *c = check_chunk(L, 1);
  size_t n = lsync_chunk_len(c);
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lsync_chunk_item it;
    lsync_chunk_item_at(c, i, &it);
    lua_createtable(L, 0, 3);
    lua_pushlstring(L, it.path, it.path_len);
    lua_setfield(L, -2, "path");
    lua_pushinteger(L, (lua_Integer)it.size);
    lua_setfield(L, -2, "size");
    lua_pushstring(L, lsync_type_name(it.type));
    lua_setfield(L, -2, "type");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

/* c:write(file [, terminator]) -> true | nil, msg, code */
static int chunk_write(lua_State *L) {
  lsync_chunk *c = check_chunk(L, 1);
  const char *file = luaL_checkstring(L, 2);
  size_t tlen = 1;
  const char *term = lua_isnoneornil(L, 3) ? "" /* its NUL */
                                           : luaL_checklstring(L, 3, &tlen);
  luaL_argcheck(L, tlen == 1, 3, "terminator must be one character");
  int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) {
    int code = lsync_err_from_errno(errno);
    lua_pushnil(L);
    lua_pushfstring(L, "cannot create '%s': %s", file, strerror(errno));
    lua_pushstring(L, lsync_err_name(code));
    return 3;
  }
  lsync_ctx *ctx;
  if (lsync_ctx_new(&ctx) < 0) {
    close(fd);
    return luaL_error(L, "out of memory");
  }
  int rc = lsync_chunk_write(ctx, c, fd, term[0]);
  if (close(fd) < 0 && rc == 0)
    rc = lsync_err_from_errno(errno);
  int n = 1;
  if (rc < 0)
    n = lb_fail(L, rc, lsync_ctx_errmsg(ctx));
  else
    lua_pushboolean(L, 1);
  lsync_ctx_free(ctx);
  return n;
}

static int chunk_gc(lua_State *L) {
  lb_chunk *u = luaL_checkudata(L, 1, LB_CHUNK_MT);
  lsync_chunk_free(u->c);
  u->c = NULL;
  return 0;
}

static int chunk_tostring(lua_State *L) {
  lb_chunk *u = luaL_checkudata(L, 1, LB_CHUNK_MT);
  if (!u->c)
    lua_pushliteral(L, "syncplan.chunk (freed)");
  else
    lua_pushfstring(L, "syncplan.chunk %d (%d entries)",
                    (int)lsync_chunk_index(u->c), (int)lsync_chunk_len(u->c));
  return 1;
}

struct collect {
  lua_State *L;
  int table;
  int failed; /* a Lua error is on the stack, to raise after libsync returns */
};

/* Wrap the chunk (lightuserdata at 1) in a userdata and append it to the
 * table at 2.  Run under lua_pcall: a memory error must not unwind
 * through libsync.  The pointer is handed over last, when nothing can
 * fail any more, so exactly one of Lua's GC and on_chunk frees it. */
static int append_chunk(lua_State *L) {
  lb_chunk *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->c = NULL;
  luaL_setmetatable(L, LB_CHUNK_MT);
  lua_rawseti(L, 2, (lua_Integer)luaL_len(L, 2) + 1);
  u->c = lua_touserdata(L, 1);
  return 0;
}

void lb_chunk_push(lua_State *L, lsync_chunk *c) {
  luaL_checkstack(L, 2, NULL);
  lua_createtable(L, 0, 0); /* append_chunk's table; replaced below */
  lua_pushcfunction(L, append_chunk);
  lua_pushlightuserdata(L, c);
  lua_pushvalue(L, -3);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    lsync_chunk_free(c);
    lua_error(L);
  }
  lua_rawgeti(L, -1, 1);
  lua_remove(L, -2);
}

/* c:data([terminator [, type]]) -> the paths joined, each followed by the
 * terminator ("\0" by default): what a worker reads on stdin.  With a
 * type ("dir", "file", ...) only entries of that type. */
static int chunk_data(lua_State *L) {
  lsync_chunk *c = check_chunk(L, 1);
  size_t tl;
  const char *term = luaL_optlstring(L, 2, "", &tl);
  char t = tl ? term[0] : '\0';
  const char *only = luaL_optstring(L, 3, NULL);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  size_t n = lsync_chunk_len(c);
  for (size_t i = 0; i < n; i++) {
    lsync_chunk_item it;
    lsync_chunk_item_at(c, i, &it);
    if (only && strcmp(lsync_type_name(it.type), only))
      continue;
    luaL_addlstring(&b, it.path, it.path_len);
    luaL_addchar(&b, t);
  }
  luaL_pushresult(&b);
  return 1;
}

/* c:dirs([terminator]) -> the directories a transfer of this chunk may
 * change: its directory entries and every ancestor of every entry (the
 * root excepted), each followed by the terminator.  Entries of one
 * directory come together, so ancestors are added once per run of equal
 * parents; the caller removes the repeats that remain across runs and
 * chunks.  A final pass resets exactly these directories' times. */
static int chunk_dirs(lua_State *L) {
  lsync_chunk *c = check_chunk(L, 1);
  size_t tl;
  const char *term = luaL_optlstring(L, 2, "", &tl);
  char t = tl ? term[0] : '\0';
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  const char *prev = NULL;
  size_t prev_len = 0;
  size_t n = lsync_chunk_len(c);
  for (size_t i = 0; i < n; i++) {
    lsync_chunk_item it;
    lsync_chunk_item_at(c, i, &it);
    if (it.type == LSYNC_T_DIR) {
      luaL_addlstring(&b, it.path, it.path_len);
      luaL_addchar(&b, t);
    }
    size_t plen = it.path_len;
    while (plen > 0 && it.path[plen - 1] != '/')
      plen--;
    if (plen == 0)
      continue; /* a top-level entry: its parent is the root */
    plen--;     /* drop the slash */
    if (prev && plen == prev_len && memcmp(prev, it.path, plen) == 0)
      continue;
    prev = it.path;
    prev_len = plen;
    for (size_t k = plen; k > 0; k--) {
      if (k == plen || it.path[k] == '/') {
        luaL_addlstring(&b, it.path, k);
        luaL_addchar(&b, t);
      }
    }
  }
  luaL_pushresult(&b);
  return 1;
}

static int on_chunk(void *ud, lsync_chunk *c) {
  struct collect *col = ud;
  lua_State *L = col->L;
  if (!lua_checkstack(L, 4)) {
    lsync_chunk_free(c);
    return 1;
  }
  lua_pushcfunction(L, append_chunk);
  lua_pushlightuserdata(L, c);
  lua_pushvalue(L, col->table);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    lsync_chunk_free(c); /* append_chunk never handed it over */
    col->failed = 1;
    return 1;
  }
  return 0;
}

void lb_chunk_opts(lua_State *L, int idx, lsync_chunk_opts *o) {
  memset(o, 0, sizeof *o);
  o->mode = LSYNC_CHUNK_COUNT;
  o->count = 1;
  if (!lua_istable(L, idx))
    return;
  int modes = 0;
  if (lua_getfield(L, idx, "count") != LUA_TNIL) {
    modes++;
    lua_Integer n = luaL_checkinteger(L, -1);
    luaL_argcheck(L, n >= 1 && n <= 1000000, idx, "count must be 1..1000000");
    o->count = (unsigned)n;
  }
  int by = lua_getfield(L, idx, "by");
  if (by != LUA_TNIL) {
    const char *s = luaL_checkstring(L, -1);
    luaL_argcheck(L, !strcmp(s, "topdir") || !strcmp(s, "top"), idx,
                  "by must be \"topdir\"");
    o->mode = LSYNC_CHUNK_TOPLEVEL;
    modes++;
  }
  const char *keys[2] = {"files", "bytes"};
  uint64_t *dst[2] = {&o->max_files, &o->max_bytes};
  for (int i = 0; i < 2; i++) {
    if (lua_getfield(L, idx, keys[i]) == LUA_TNIL)
      continue;
    if (lua_isinteger(L, -1) && lua_tointeger(L, -1) > 0)
      *dst[i] = (uint64_t)lua_tointeger(L, -1);
    else if (lua_type(L, -1) != LUA_TSTRING ||
             lsync_parse_size(lua_tostring(L, -1), dst[i]) < 0 || !*dst[i])
      luaL_error(L, "option '%s' must be a positive number or size", keys[i]);
    if (o->mode != LSYNC_CHUNK_LIMITS)
      modes++;
    o->mode = LSYNC_CHUNK_LIMITS;
  }
  if (modes > 1)
    luaL_error(L, "give one of count, files/bytes or by");
  lua_pop(L, 4);
  if (lua_getfield(L, idx, "spread") != LUA_TNIL) {
    lua_Integer n = luaL_checkinteger(L, -1);
    luaL_argcheck(L, n >= 0 && n <= 1000000, idx, "spread must be 0..1000000");
    if (o->mode != LSYNC_CHUNK_LIMITS)
      luaL_error(L, "spread goes with files/bytes limits");
    o->spread = (unsigned)n;
  }
  lua_pop(L, 1);
}

static void set_int(lua_State *L, const char *k, uint64_t v) {
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, k);
}

/* syncplan.chunk(dir [, opts]) -> chunks, stats | nil, msg, code */
int lb_chunk_tree(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  lua_settop(L, 2);
  lsync_chunk_opts copts;
  lb_chunk_opts(L, 2, &copts);
  lsync_scan_opts sopts;
  lb_scan_opts(L, 2, &sopts, lb_filter_holder(L)); /* 3: frees the filter */
  lsync_ctx *ctx = NULL;
  if (lsync_ctx_new(&ctx) < 0)
    return luaL_error(L, "out of memory");
  lua_newtable(L); /* 4: the chunks */
  struct collect col = {L, 4, 0};
  lsync_scan_stats st;
  int rc = lsync_chunk_tree(ctx, dir, &sopts, &copts, on_chunk, &col, &st);
  if (col.failed) {
    lsync_ctx_free(ctx);
    return lua_error(L); /* the error from append_chunk, on top */
  }
  if (rc < 0) {
    int n = lb_fail(L, rc, lsync_ctx_errmsg(ctx));
    lsync_ctx_free(ctx);
    return n;
  }
  lsync_ctx_free(ctx);
  lua_createtable(L, 0, 6);
  set_int(L, "entries", st.entries);
  set_int(L, "dirs", st.dirs);
  set_int(L, "bytes", st.bytes);
  set_int(L, "excluded", st.excluded);
  set_int(L, "errors", st.errors);
  set_int(L, "dirs_unwritable", st.dirs_unwritable);
  return 2;
}

void lb_chunk_register(lua_State *L) {
  static const luaL_Reg meta[] = {{"__index", chunk_index},
                                  {"__len", chunk_len},
                                  {"__gc", chunk_gc},
                                  {"__close", chunk_gc},
                                  {"__tostring", chunk_tostring},
                                  {NULL, NULL}};
  static const luaL_Reg methods[] = {{"paths", chunk_paths},
                                     {"data", chunk_data}, {"dirs", chunk_dirs},
                                     {"items", chunk_items},
                                     {"write", chunk_write},
                                     {"free", chunk_gc},
                                     {NULL, NULL}};
  luaL_newmetatable(L, LB_CHUNK_MT);
  luaL_setfuncs(L, meta, 0);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "methods");
  lua_pop(L, 1);
}
