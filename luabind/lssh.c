/*
 * The ssh session userdata: one libssh2 connection on the module's loop,
 * running commands on exec channels.
 *
 *   local s = assert(syncplan.ssh{   -- in a task: returns once logged in
 *     host = "dtn1",                 -- as typed: a config alias or a name
 *     config = "/path/ssh_config",   -- nil: ~/.ssh/config; false: none
 *     user = "alice", port = 2222,   -- these win over the config
 *     identity_files = { "/path/key" }, known_hosts = "/path/known_hosts",
 *     host_key_alias = "name", accept_new_host = false, timeout = 30,
 *   })                               -- or nil, msg, code (EHOSTKEY, EAUTH,
 *                                    -- ECONNECT, ETIMEDOUT, ...)
 *   local r = s:exec("cmd", input)   -- in a task: { status, signal,
 *                                    -- stdout, stderr } | nil, msg, code
 *   s:fingerprint()                  -- "SHA256:..." of the host key
 *   s:alive()                        -- connected and not broken (as far
 *                                    -- as the session knows)
 *   s:bytes()                        -- channel bytes sent, received
 *   s:close()                        -- also __gc and __close
 *
 * Several tasks may run commands on one session at once.  A session
 * closed while commands run wakes their tasks with nil, msg, "ECANCELED".
 * While connecting, and while commands run, the userdata is anchored in
 * the registry.
 */
#include <stdlib.h>
#include <string.h>

#include "luabind.h"

#define SSH_MT "syncplan.ssh"

struct request;

typedef struct lssh {
  lsync_ssh *s;
  lb_sched *sched;
  lua_State *waiter; /* the task in syncplan.ssh{} */
  unsigned epoch;
  int connected;
  struct request *reqs; /* commands running */
  int anchors;          /* registry references held: connect + commands */
} lssh;

struct buf {
  char *p;
  size_t len, cap;
};

struct request {
  struct request *next;
  lssh *u;
  lua_State *co;
  unsigned epoch;
  struct buf out, err;
  int failed; /* out of memory while collecting output */
};

static void anchor(lua_State *L, lssh *u, int idx) {
  if (u->anchors++ == 0) {
    lua_pushvalue(L, idx);
    lua_rawsetp(L, LUA_REGISTRYINDEX, u);
  }
}

static void unanchor(lua_State *L, lssh *u) {
  if (--u->anchors == 0) {
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, u);
  }
}

static void on_ready(void *ud, lsync_ssh *s, int status) {
  lssh *u = ud;
  lua_State *L = lb_sched_state(u->sched), *co = u->waiter;
  u->waiter = NULL;
  u->connected = status == 0;
  if (!L)
    return;
  int nret = 0;
  if (co && u->epoch == lb_sched_epoch(u->sched)) {
    if (status == 0) {
      lua_rawgetp(co, LUA_REGISTRYINDEX, u); /* while still anchored */
      nret = 1;
    } else {
      nret = lb_fail(co, status, lsync_ssh_errmsg(s));
    }
  }
  /* Before the task resumes: it may close the session at once. */
  unanchor(L, u);
  if (nret)
    lb_wake(u->sched, co, nret);
}

static const char *opt_string(lua_State *L, int t, const char *k) {
  lua_getfield(L, t, k);
  const char *v = luaL_optstring(L, -1, NULL);
  lua_pop(L, 1); /* the table keeps the string alive */
  return v;
}

static int l_ssh(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lb_task_check(L, "syncplan.ssh");
  const char *host = opt_string(L, 1, "host");
  if (!host)
    return luaL_error(L, "ssh: host is required");
  lsync_ctx *ctx = lb_ctx(L);
  lsync_ssh_opts o = {0};
  lsync_sshconf *conf = NULL;
  lua_getfield(L, 1, "config");
  if (lua_toboolean(L, -1) || lua_isnil(L, -1)) {
    int rc = lsync_sshconf_load(ctx, luaL_optstring(L, -1, NULL), host, &conf);
    if (rc < 0)
      return lb_fail(L, rc, lsync_ctx_errmsg(ctx));
    lsync_sshconf_opts(conf, &o);
  } else {
    o.host = host;
  }
  const char *v;
  if ((v = opt_string(L, 1, "user")))
    o.user = v;
  if ((v = opt_string(L, 1, "known_hosts")))
    o.known_hosts = v;
  if ((v = opt_string(L, 1, "host_key_alias")))
    o.host_key_alias = v;
  lua_getfield(L, 1, "port");
  if (!lua_isnil(L, -1))
    o.port = (unsigned)luaL_checkinteger(L, -1);
  lua_getfield(L, 1, "timeout");
  if (!lua_isnil(L, -1))
    o.timeout_ms = (unsigned)(luaL_checknumber(L, -1) * 1000.0);
  lua_getfield(L, 1, "accept_new_host");
  if (!lua_isnil(L, -1))
    o.accept_new_host = lua_toboolean(L, -1);
  if (lua_getfield(L, 1, "identity_files") == LUA_TTABLE)
    o.identity_files = lb_string_array(L, lua_gettop(L), "identity_files");

  lssh *u = lua_newuserdatauv(L, sizeof *u, 0);
  memset(u, 0, sizeof *u);
  luaL_setmetatable(L, SSH_MT);
  u->sched = lb_sched_get(L);
  int rc = lsync_ssh_connect(ctx, &o, on_ready, u, &u->s);
  lsync_sshconf_free(conf); /* the session copied what it needs */
  if (rc < 0)
    return lb_fail(L, rc, lsync_ctx_errmsg(ctx));
  anchor(L, u, -1);
  u->waiter = L;
  u->epoch = lb_sched_epoch(u->sched);
  return lua_yield(L, 0);
}

static lssh *check(lua_State *L) { return luaL_checkudata(L, 1, SSH_MT); }

lsync_ssh *lb_ssh_session(lua_State *L, int idx) {
  lssh *u = luaL_testudata(L, idx, SSH_MT);
  return u && u->connected ? u->s : NULL;
}

static void buf_add(struct request *r, struct buf *b, const char *p,
                    size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n)
      cap *= 2;
    char *q = realloc(b->p, cap);
    if (!q) {
      r->failed = 1;
      return;
    }
    b->p = q;
    b->cap = cap;
  }
  memcpy(b->p + b->len, p, n);
  b->len += n;
}

static void on_data(void *ud, int fd, const char *p, size_t n) {
  struct request *r = ud;
  buf_add(r, fd == 2 ? &r->err : &r->out, p, n);
}

/* Off the session's list, buffers freed. */
static void request_free(struct request *r) {
  struct request **pp = &r->u->reqs;
  while (*pp != r)
    pp = &(*pp)->next;
  *pp = r->next;
  free(r->out.p);
  free(r->err.p);
  free(r);
}

/* The result goes onto the task's stack, the request is freed, and only
 * then the task resumes: it may close the session at once. */
static void on_exit_cb(void *ud, int rc, int status, const char *sig) {
  struct request *r = ud;
  lssh *u = r->u;
  lua_State *L = lb_sched_state(u->sched), *co = r->co;
  int nret = 0;
  if (L && co && r->epoch == lb_sched_epoch(u->sched)) {
    if (rc < 0) {
      nret = lb_fail(co, rc, u->s ? lsync_ssh_errmsg(u->s)
                                  : "ssh: the session was closed");
    } else if (r->failed) {
      nret = lb_fail(co, LSYNC_ENOMEM,
                     "ssh: out of memory for a command's output");
    } else {
      lua_createtable(co, 0, 4);
      lua_pushinteger(co, status);
      lua_setfield(co, -2, "status");
      lua_pushstring(co, sig);
      lua_setfield(co, -2, "signal");
      lua_pushlstring(co, r->out.p ? r->out.p : "", r->out.len);
      lua_setfield(co, -2, "stdout");
      lua_pushlstring(co, r->err.p ? r->err.p : "", r->err.len);
      lua_setfield(co, -2, "stderr");
      nret = 1;
    }
  }
  request_free(r);
  if (L)
    unanchor(L, u);
  if (nret)
    lb_wake(u->sched, co, nret);
}

static int s_exec(lua_State *L) {
  lssh *u = check(L);
  const char *cmd = luaL_checkstring(L, 2);
  size_t len = 0;
  const char *input = luaL_optlstring(L, 3, NULL, &len);
  lb_task_check(L, "ssh:exec");
  if (!u->s || !u->connected)
    return lb_fail(L, LSYNC_EINVAL, "ssh:exec: the session is not connected");
  struct request *r = calloc(1, sizeof *r);
  if (!r)
    return lb_fail(L, LSYNC_ENOMEM, "ssh: out of memory");
  r->u = u;
  r->co = L;
  r->epoch = lb_sched_epoch(u->sched);
  r->next = u->reqs;
  u->reqs = r;
  int rc = lsync_ssh_exec(u->s, cmd, input, len, on_data, on_exit_cb, r);
  if (rc < 0) {
    request_free(r);
    return lb_fail(L, rc, lsync_ctx_errmsg(lb_ctx(L)));
  }
  anchor(L, u, 1);
  return lua_yield(L, 0);
}

static int s_alive(lua_State *L) {
  lssh *u = check(L);
  lua_pushboolean(L, u->s && u->connected && lsync_ssh_alive(u->s));
  return 1;
}

static int s_bytes(lua_State *L) {
  lssh *u = check(L);
  uint64_t sent = 0, received = 0;
  if (u->s)
    lsync_ssh_bytes(u->s, &sent, &received);
  lua_pushinteger(L, (lua_Integer)sent);
  lua_pushinteger(L, (lua_Integer)received);
  return 2;
}

static int s_fingerprint(lua_State *L) {
  lssh *u = check(L);
  lua_pushstring(L, u->s ? lsync_ssh_fingerprint(u->s) : "");
  return 1;
}

/* Idempotent: __gc, __close and close.  A task still connecting wakes
 * with an error now; tasks waiting on commands wake from the loop, when
 * the session reports their channels cancelled (a collected session has
 * none: they would hold it). */
static int s_close(lua_State *L) {
  lssh *u = check(L);
  if (!u->s)
    return 0;
  lsync_ssh_free(u->s);
  u->s = NULL;
  u->connected = 0;
  if (u->waiter) { /* on_ready will not run */
    if (lb_sched_state(u->sched) && u->epoch == lb_sched_epoch(u->sched)) {
      lb_fail(u->waiter, LSYNC_ECANCELED, "ssh: the session was closed");
      lb_wake_later(u->sched, u->waiter, 3);
    }
    u->waiter = NULL;
    unanchor(L, u);
  }
  return 0;
}

void lb_ssh_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"exec", s_exec},
                                     {"alive", s_alive},
                                     {"bytes", s_bytes},
                                     {"fingerprint", s_fingerprint},
                                     {"close", s_close},
                                     {NULL, NULL}};
  lb_new_class(L, SSH_MT, NULL, methods, s_close);
  lua_pushcfunction(L, l_ssh);
  lua_setfield(L, -2, "ssh");
}
