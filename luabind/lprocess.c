/* The process side of job management: detaching a job from the terminal
 * (`syncplan start`), the per-job lock that tells a live job from a dead
 * one, and signals to a job's process.
 *
 *   syncplan.detach() -> "parent", id|nil, status | "child", ready
 *     Fork.  The child starts a new session with stdin on /dev/null and
 *     gets ready(id, out_path): its stdout and stderr are then appended
 *     to out_path (created 0600) and id is handed to the parent, which
 *     was blocked until then and returns it.  A child that exits before
 *     calling ready gives the parent nil and its exit status (its errors
 *     went to the terminal, which it still had).
 *   syncplan.lock(path) -> lock | nil, msg, code
 *     An exclusive flock on path (created 0600), "EBUSY" when another
 *     open file holds it.  The kernel drops it when the process dies,
 *     kill -9 included, which is what makes it a liveness test: a job
 *     holds its lock for its life.  lock:close() releases it.
 *   syncplan.lock(path, true) probes: no file is created ("ENOENT").
 *   syncplan.nap(seconds): a blocking sleep (the command line's polls)
 *   syncplan.getpid() -> pid
 *   syncplan.kill(pid, signame) -> true | nil, msg, code
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "luabind.h"

#define LOCK_MT "syncplan.lock"
#define READY_MT "syncplan.detach_ready"

/* ---- detach --------------------------------------------------------- */

typedef struct {
  int fd; /* the pipe's write end, -1 once used */
} ready_ud;

static int ready_gc(lua_State *L) {
  ready_ud *r = luaL_checkudata(L, 1, READY_MT);
  if (r->fd >= 0)
    close(r->fd);
  r->fd = -1;
  return 0;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    p += w, n -= (size_t)w;
  }
  return 0;
}

/* ready(id, out_path): output to the job's log, then the id to the
 * parent.  The order matters: once the parent has the id it exits, and
 * the terminal may be gone. */
static int ready_call(lua_State *L) {
  ready_ud *r = luaL_checkudata(L, 1, READY_MT);
  size_t idlen;
  const char *id = luaL_checklstring(L, 2, &idlen);
  const char *out = luaL_checkstring(L, 3);
  if (r->fd < 0)
    return luaL_error(L, "detach: ready called twice");
  int fd = open(out, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY,
                0600);
  if (fd < 0)
    return lb_fail_errno(L, errno);
  fflush(stdout);
  fflush(stderr);
  if (dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0) {
    int e = errno;
    close(fd);
    return lb_fail_errno(L, e);
  }
  close(fd);
  int rc = write_all(r->fd, id, idlen) || write_all(r->fd, "\n", 1);
  int e = errno;
  close(r->fd);
  r->fd = -1;
  if (rc)
    return lb_fail_errno(L, e);
  lua_pushboolean(L, 1);
  return 1;
}

static int parent_wait(lua_State *L, int rfd, pid_t pid) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  char buf[128];
  for (;;) {
    ssize_t n = read(rfd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    luaL_addlstring(&b, buf, (size_t)n);
  }
  close(rfd);
  luaL_pushresult(&b);
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  lua_pushstring(L, "parent");
  if (len > 0 && s[len - 1] == '\n') {
    /* The child runs on; it is init's to reap. */
    lua_pushlstring(L, s, len - 1);
    lua_pushnil(L);
    return 3;
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
    ;
  lua_pushnil(L);
  lua_pushinteger(L, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
  return 3;
}

static int l_detach(lua_State *L) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0)
    return lb_fail_errno(L, errno);
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(p[0]), close(p[1]);
    return lb_fail_errno(L, e);
  }
  if (pid > 0) {
    close(p[1]);
    return parent_wait(L, p[0], pid);
  }
  close(p[0]);
  /* A session of its own: no controlling terminal, so closing the
   * terminal sends it no SIGHUP, and the shell's job control leaves it
   * alone. */
  setsid();
  int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null >= 0) {
    dup2(null, STDIN_FILENO);
    close(null);
  }
  lua_pushstring(L, "child");
  ready_ud *r = lua_newuserdatauv(L, sizeof *r, 0);
  r->fd = p[1];
  luaL_setmetatable(L, READY_MT);
  return 2;
}

/* ---- lock ----------------------------------------------------------- */

typedef struct {
  int fd;
} lock_ud;

static int l_lock(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int probe = lua_toboolean(L, 2);
  int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | (probe ? 0 : O_CREAT),
                0600);
  if (fd < 0)
    return lb_fail_errno(L, errno);
  if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    int e = errno;
    close(fd);
    if (e == EWOULDBLOCK)
      return lb_fail(L, LSYNC_EBUSY, "held by a running process");
    return lb_fail_errno(L, e);
  }
  lock_ud *k = lua_newuserdatauv(L, sizeof *k, 0);
  k->fd = fd;
  luaL_setmetatable(L, LOCK_MT);
  return 1;
}

static int lock_close(lua_State *L) {
  lock_ud *k = luaL_checkudata(L, 1, LOCK_MT);
  if (k->fd >= 0)
    close(k->fd);
  k->fd = -1;
  return 0;
}

/* ---- signals -------------------------------------------------------- */

static int l_getpid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}

/* nap(seconds): a blocking sleep, for the command line's polling outside
 * any loop (in a task, use syncplan.sleep). */
static int l_nap(lua_State *L) {
  double s = luaL_checknumber(L, 1);
  luaL_argcheck(L, s >= 0 && s < 86400, 1, "0 to 86400 seconds");
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
    ;
  return 0;
}

static int l_kill(lua_State *L) {
  lua_Integer pid = luaL_checkinteger(L, 1);
  static const char *const names[] = {"TERM", "INT", "KILL", "0", NULL};
  static const int sigs[] = {SIGTERM, SIGINT, SIGKILL, 0};
  int sig = sigs[luaL_checkoption(L, 2, "TERM", names)];
  luaL_argcheck(L, pid > 0, 1, "not a process id");
  if (kill((pid_t)pid, sig) < 0)
    return lb_fail_errno(L, errno);
  lua_pushboolean(L, 1);
  return 1;
}

void lb_process_open(lua_State *L) {
  static const luaL_Reg ready_meta[] = {{"__call", ready_call},
                                        {"__gc", ready_gc},
                                        {NULL, NULL}};
  static const luaL_Reg none[] = {{NULL, NULL}};
  lb_new_class(L, READY_MT, ready_meta, none, NULL);
  static const luaL_Reg lock_methods[] = {{"close", lock_close},
                                          {NULL, NULL}};
  lb_new_class(L, LOCK_MT, NULL, lock_methods, lock_close);
  static const luaL_Reg f[] = {{"detach", l_detach},
                               {"lock", l_lock},
                               {"getpid", l_getpid},
                               {"kill", l_kill},
                               {"nap", l_nap},
                               {NULL, NULL}};
  luaL_setfuncs(L, f, 0);
}
