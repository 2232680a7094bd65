/* luaopen_syncplan: the module table, the helpers shared by the userdata
 * types (scan options, error returns), small file-system helpers the
 * runner needs, and the embedded Lua helpers (syncplan.plan, .runner,
 * .cli) registered in package.preload. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <dirent.h>
#include <ftw.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "luabind.h"
#include "syncplan_lua.h"

int lb_fail(lua_State *L, int code, const char *msg) {
  lua_pushnil(L);
  lua_pushstring(L, msg && *msg ? msg : lsync_strerror(code));
  lua_pushstring(L, lsync_err_name(code));
  return 3;
}

int lb_fail_errno(lua_State *L, int e) {
  return lb_fail(L, lsync_err_from_errno(e), strerror(e));
}

void lb_new_class(lua_State *L, const char *mt, const luaL_Reg *meta,
                  const luaL_Reg *methods, lua_CFunction close) {
  luaL_newmetatable(L, mt);
  if (meta)
    luaL_setfuncs(L, meta, 0);
  if (close) {
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__close");
  }
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

/* Rules from a string or an array of strings at the table field `key`. */
static void add_rules(lua_State *L, int opts, const char *key, lsync_filter *f,
                      int kind) {
  int t = lua_getfield(L, opts, key);
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  if (t == LUA_TSTRING)
    lua_createtable(L, 1, 0), lua_insert(L, -2), lua_rawseti(L, -2, 1);
  else if (t != LUA_TTABLE)
    luaL_error(L, "option '%s' must be a string or a list of strings", key);
  lua_Integer n = luaL_len(L, -1);
  for (lua_Integer i = 1; i <= n; i++) {
    if (lua_geti(L, -1, i) != LUA_TSTRING)
      luaL_error(L, "option '%s'[%d] must be a string", key, (int)i);
    const char *pat = lua_tostring(L, -1);
    int rc = kind < 0 ? lsync_filter_add_rule(f, pat)
                      : lsync_filter_add(f, (lsync_rule_kind)kind, pat);
    if (rc < 0)
      luaL_error(L, "option '%s': invalid pattern or rule '%s'", key, pat);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

void lb_scan_opts(lua_State *L, int idx, lsync_scan_opts *opts,
                  lsync_filter **filter) {
  lsync_scan_opts_init(opts);
  *filter = NULL;
  if (lua_isnoneornil(L, idx))
    return;
  luaL_checktype(L, idx, LUA_TTABLE);
  idx = lua_absindex(L, idx);
  if (lua_getfield(L, idx, "threads") != LUA_TNIL) {
    lua_Integer n = luaL_checkinteger(L, -1);
    luaL_argcheck(L, n >= 1 && n <= 64, idx, "threads must be 1..64");
    opts->threads = (unsigned)n;
  }
  lua_pop(L, 1);
  lua_getfield(L, idx, "one_filesystem");
  opts->one_filesystem = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (lsync_filter_new(filter) < 0)
    luaL_error(L, "out of memory");
  /* Rules apply first-match-wins in the order: filter, include, exclude;
   * for finer ordering use `filter = { "+ a", "- *" }`. */
  add_rules(L, idx, "filter", *filter, -1);
  add_rules(L, idx, "include", *filter, LSYNC_INCLUDE);
  add_rules(L, idx, "exclude", *filter, LSYNC_EXCLUDE);
  if (lsync_filter_count(*filter))
    opts->filter = *filter;
}

static int filter_gc(lua_State *L) {
  lsync_filter **slot = luaL_checkudata(L, 1, LB_FILTER_MT);
  lsync_filter_free(*slot);
  *slot = NULL;
  return 0;
}

lsync_filter **lb_filter_holder(lua_State *L) {
  lsync_filter **slot = lua_newuserdatauv(L, sizeof *slot, 0);
  *slot = NULL;
  if (luaL_newmetatable(L, LB_FILTER_MT)) {
    lua_pushcfunction(L, filter_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return slot;
}

static int lb_parse_size(lua_State *L) {
  uint64_t v;
  if (lua_isinteger(L, 1) && lua_tointeger(L, 1) >= 0) {
    lua_settop(L, 1);
    return 1;
  }
  int rc = lsync_parse_size(luaL_checkstring(L, 1), &v);
  if (rc < 0)
    return lb_fail(L, rc, "invalid size");
  lua_pushinteger(L, (lua_Integer)v);
  return 1;
}

static int lb_strerror(lua_State *L) {
  lua_pushstring(L, lsync_strerror((int)luaL_checkinteger(L, 1)));
  return 1;
}

static int lb_match(lua_State *L) {
  int rc = lsync_pattern_match(luaL_checkstring(L, 1), luaL_checkstring(L, 2),
                               lua_toboolean(L, 3));
  if (rc < 0)
    return lb_fail(L, rc, "invalid pattern");
  lua_pushboolean(L, rc);
  return 1;
}

const char **lb_string_array(lua_State *L, int t, const char *what) {
  lua_Integer n = luaL_len(L, t);
  if (n < 0 || n > 100000)
    luaL_error(L, "%s: too many strings", what);
  const char **a = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *a, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    if (lua_geti(L, t, i) != LUA_TSTRING)
      luaL_error(L, "%s[%d] must be a string", what, (int)i);
    a[i - 1] = lua_tostring(L, -1);
    lua_pop(L, 1); /* still referenced by the table */
  }
  a[n] = NULL;
  return a;
}

static int lb_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
  return 1;
}

/* syncplan.term_width(fd) -> the columns of the terminal on fd, or nil:
 * a progress line longer than that would wrap and not redraw in place. */
static int lb_term_width(lua_State *L) {
  struct winsize ws;
  if (ioctl((int)luaL_checkinteger(L, 1), TIOCGWINSZ, &ws) < 0 ||
      ws.ws_col == 0)
    return 0;
  lua_pushinteger(L, ws.ws_col);
  return 1;
}

/* syncplan.file_type(path) -> "dir", "file", ... (symlinks followed) or
 * nil, msg, code */
static const char *type_name(mode_t mode) {
  return S_ISDIR(mode) ? "dir" : S_ISREG(mode) ? "file" : "other";
}

static int lb_file_type(lua_State *L) {
  struct stat st;
  const char *path = luaL_checkstring(L, 1);
  if (stat(path, &st) < 0)
    return lb_fail_errno(L, errno);
  lua_pushstring(L, type_name(st.st_mode));
  return 1;
}

/* syncplan.stat(path [, nofollow]) -> { type, perms, uid, gid, mtime,
 * mtime_nsec, size, nlink } | nil, msg, code.  A symlink is followed, as
 * rsync follows the root of a transfer, unless nofollow; perms are the
 * mode's low twelve bits. */
static int lb_stat(lua_State *L) {
  struct stat st;
  const char *path = luaL_checkstring(L, 1);
  int nofollow = lua_toboolean(L, 2);
  if ((nofollow ? lstat(path, &st) : stat(path, &st)) < 0)
    return lb_fail_errno(L, errno);
  lua_createtable(L, 0, 8);
  lua_pushinteger(L, (lua_Integer)st.st_size);
  lua_setfield(L, -2, "size");
  lua_pushinteger(L, (lua_Integer)st.st_nlink);
  lua_setfield(L, -2, "nlink");
  lua_pushstring(L, type_name(st.st_mode));
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, (lua_Integer)(st.st_mode & 07777));
  lua_setfield(L, -2, "perms");
  lua_pushinteger(L, (lua_Integer)st.st_uid);
  lua_setfield(L, -2, "uid");
  lua_pushinteger(L, (lua_Integer)st.st_gid);
  lua_setfield(L, -2, "gid");
  lua_pushinteger(L, (lua_Integer)st.st_mtim.tv_sec);
  lua_setfield(L, -2, "mtime");
  lua_pushinteger(L, (lua_Integer)st.st_mtim.tv_nsec);
  lua_setfield(L, -2, "mtime_nsec");
  return 1;
}

/* syncplan.set_mtime(path, sec, nsec) -> true | nil, msg, code: the
 * modification time only (the access time stays), symlinks followed. */
static int lb_set_mtime(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Integer nsec = luaL_checkinteger(L, 3);
  luaL_argcheck(L, nsec >= 0 && nsec < 1000000000, 3, "not in [0, 1e9)");
  struct timespec ts[2] = {{0, UTIME_OMIT},
                           {(time_t)luaL_checkinteger(L, 2), (long)nsec}};
  if (utimensat(AT_FDCWD, path, ts, 0) < 0)
    return lb_fail_errno(L, errno);
  lua_pushboolean(L, 1);
  return 1;
}

/* syncplan.mkdir(path, mode [, parents]) -> true | nil, msg, code.  An
 * existing directory is not an error; its mode is left alone. */
static int lb_mkdir(lua_State *L) {
  size_t len;
  const char *path = luaL_checklstring(L, 1, &len);
  mode_t mode = (mode_t)luaL_checkinteger(L, 2);
  int parents = lua_toboolean(L, 3);
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, len + 1);
  memcpy(p, path, len + 1);
  for (size_t i = 1; parents && i < len; i++) {
    if (p[i] != '/')
      continue;
    p[i] = '\0';
    if (mkdir(p, mode) < 0 && errno != EEXIST)
      return lb_fail_errno(L, errno);
    p[i] = '/';
  }
  if (mkdir(p, mode) < 0 && errno != EEXIST)
    return lb_fail_errno(L, errno);
  lua_pushboolean(L, 1);
  return 1;
}

/* syncplan.mkdtemp(template) -> path | nil, msg, code: a new directory
 * only the user can enter (0700); the template ends in "XXXXXX". */
static int lb_mkdtemp(lua_State *L) {
  size_t len;
  const char *tmpl = luaL_checklstring(L, 1, &len);
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, len + 1);
  memcpy(p, tmpl, len + 1);
  if (!mkdtemp(p))
    return lb_fail_errno(L, errno);
  luaL_pushresultsize(&b, len);
  return 1;
}

/* syncplan.geteuid() -> the effective user id: whether rsync here can
 * preserve owners. */
static int lb_geteuid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)geteuid());
  return 1;
}

/* syncplan.arg_max() -> how many bytes of arguments and environment a
 * program started here may get (sysconf's ARG_MAX; Linux counts the
 * strings and their pointers against it): whether a list fits on a
 * command line. */
static int lb_arg_max(lua_State *L) {
  long n = sysconf(_SC_ARG_MAX);
  lua_pushinteger(L, n > 0 ? (lua_Integer)n : 131072);
  return 1;
}

/* free_port() -> a TCP port of 127.0.0.1 free a moment ago (for a
 * child's own listener, such as rclone's remote control), or nil, msg. */
static int lb_free_port(lua_State *L) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa;
  socklen_t len = sizeof sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
    int e = errno;
    if (fd >= 0)
      close(fd);
    return lb_fail(L, LSYNC_EIO, strerror(e));
  }
  close(fd);
  lua_pushinteger(L, ntohs(sa.sin_port));
  return 1;
}

/* random_hex(n) -> 2n hex digits from the kernel's random source (for
 * passwords that live as long as a child process). */
static int lb_random_hex(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n > 0 && n <= 64, 1, "1 to 64 bytes");
  unsigned char b[64];
  size_t k = n < 64 ? (size_t)n : 64;
  if (getrandom(b, k, 0) != (ssize_t)k)
    return lb_fail(L, LSYNC_EIO, strerror(errno));
  char hex[129];
  for (size_t i = 0; i < k; i++)
    snprintf(hex + 2 * i, 3, "%02x", b[i]);
  lua_pushlstring(L, hex, 2 * k);
  return 1;
}

/* create_private(path) -> true | nil, msg, code: the file exists, and a
 * new one is 0600 whatever the umask (logs are state files). */
static int lb_create_private(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY,
                0600);
  if (fd < 0)
    return lb_fail_errno(L, errno);
  close(fd);
  lua_pushboolean(L, 1);
  return 1;
}

/* listdir(path) -> { names } (no "." or "..") | nil, msg, code */
static int lb_listdir(lua_State *L) {
  DIR *d = opendir(luaL_checkstring(L, 1));
  if (!d)
    return lb_fail_errno(L, errno);
  lua_newtable(L);
  lua_Integer n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    lua_pushstring(L, e->d_name);
    lua_rawseti(L, -2, ++n);
  }
  closedir(d);
  return 1;
}

/* nftw has no user pointer: the walks below are short and run on the
 * main thread only. */
static uint64_t walk_bytes;

static int add_size(const char *p, const struct stat *st, int flag,
                    struct FTW *f) {
  (void)p, (void)f;
  if (flag == FTW_F)
    walk_bytes += (uint64_t)st->st_size;
  return 0;
}

/* tree_size(path) -> bytes of the regular files under path (symlinks not
 * followed) | nil, msg, code */
static int lb_tree_size(lua_State *L) {
  walk_bytes = 0;
  if (nftw(luaL_checkstring(L, 1), add_size, 16, FTW_PHYS) < 0)
    return lb_fail_errno(L, errno);
  lua_pushinteger(L, (lua_Integer)walk_bytes);
  return 1;
}

static int remove_one(const char *p, const struct stat *st, int flag,
                      struct FTW *f) {
  (void)st, (void)f;
  return (flag == FTW_DP ? rmdir(p) : unlink(p)) < 0 && errno != ENOENT
             ? -1
             : 0;
}

/* remove_tree(path) -> true | nil, msg, code: path and all under it,
 * symlinks removed, never followed, and no other file system entered. */
static int lb_remove_tree(lua_State *L) {
  if (nftw(luaL_checkstring(L, 1), remove_one, 16,
           FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0)
    return lb_fail_errno(L, errno);
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg funcs[] = {
    {"scan", lb_scan_new},         {"chunk", lb_chunk_tree},
    {"parse_size", lb_parse_size}, {"strerror", lb_strerror},
    {"match", lb_match},           {"isatty", lb_isatty},
    {"term_width", lb_term_width},
    {"file_type", lb_file_type},   {"mkdir", lb_mkdir},
    {"mkdtemp", lb_mkdtemp},       {"geteuid", lb_geteuid},
    {"arg_max", lb_arg_max},       {"stat", lb_stat},
    {"set_mtime", lb_set_mtime},   {"free_port", lb_free_port},
    {"random_hex", lb_random_hex}, {"create_private", lb_create_private},
    {"listdir", lb_listdir},       {"tree_size", lb_tree_size},
    {"remove_tree", lb_remove_tree}, {NULL, NULL}};

extern const struct lb_embedded {
  const char *name;
  const char *src;
  size_t len;
} lb_embedded[];

static int load_embedded(lua_State *L) {
  const struct lb_embedded *e = lua_touserdata(L, lua_upvalueindex(1));
  const char *name = luaL_checkstring(L, 1);
  if (luaL_loadbufferx(L, e->src, e->len, name, "t") != LUA_OK)
    return lua_error(L);
  lua_pushstring(L, name);
  lua_call(L, 1, 1);
  return 1;
}

/* package.preload[name] for each embedded helper, unless a program put
 * its own there first. */
static void preload_embedded(lua_State *L) {
  if (lua_getglobal(L, "package") != LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  lua_getfield(L, -1, "preload");
  for (const struct lb_embedded *e = lb_embedded; e->name; e++) {
    if (lua_getfield(L, -1, e->name) == LUA_TNIL) {
      lua_pushlightuserdata(L, (void *)e);
      lua_pushcclosure(L, load_embedded, 1);
      lua_setfield(L, -3, e->name);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
}

int luaopen_syncplan(lua_State *L) {
  luaL_checkversion(L);
  preload_embedded(L);
  lb_scan_register(L);
  lb_chunk_register(L);
  luaL_newlib(L, funcs);
  lb_loop_open(L);
  lb_worker_open(L);
  lb_producer_open(L);
  lb_journal_open(L);
  lb_retry_open(L);
  lb_ssh_open(L);
  lb_tunnel_open(L);
  lb_control_open(L);
  lb_schedule_open(L);
  lb_watch_open(L);
  lb_process_open(L);
  lua_pushstring(L, lsync_version());
  lua_setfield(L, -2, "version");
  return 1;
}
