/*
 * Tasks on the context's event loop: coroutines that sleep, wait for
 * workers, producers and each other without blocking the loop.
 *
 *   syncplan.run(fn, ...)      run fn as the main task; the loop turns
 *                              until it returns; returns its results
 *   syncplan.spawn(fn, ...)    start another task -> task; task:join()
 *   syncplan.sleep(seconds)    suspend the calling task
 *   syncplan.condition()       cond:wait([timeout]) -> true | false on
 *                              timeout; cond:notify() wakes every waiter
 *   syncplan.timer(s, fn [, repeat_s]) -> handle; handle:stop()
 *   syncplan.on_signal("INT"|"TERM"|"HUP", fn) -> handle; handle:stop()
 *   syncplan.clock()  monotonic seconds;  syncplan.time()  epoch seconds
 *
 * How it works: a blocking call checks that it runs in a task, registers
 * a waker (a timer, a worker's exit, a producer's readiness) and yields;
 * the waker's callback, running inside the loop, pushes the results on
 * the task's stack and resumes it.  Wakes that do not come from a loop
 * callback (notify, join, spawn) go through a ready queue drained by a
 * zero-delay timer, so a task never resumes another one from inside
 * itself.  An error in any task (or in a timer or signal function) stops
 * the loop and run() raises it with the task's traceback: a plan's bug
 * must not be silently lost in a background task.
 *
 * Plain functions called from the loop (timer, signal, worker progress)
 * run on the state that called run(), under pcall, and cannot yield.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "luabind.h"

#define TASK_MT "syncplan.task"
#define COND_MT "syncplan.condition"
#define HANDLE_MT "syncplan.timer"

typedef struct ready {
  lua_State *co;
  int nargs;
} ready;

struct lb_sched {
  lsync_ctx *ctx;
  lua_State *L; /* the state running syncplan.run, NULL outside it */
  int running;
  int failed;          /* an error is stored in the registry */
  unsigned epoch;      /* bumped when a run fails: stale wakes are dropped */
  lsync_timer *kick;   /* drains the ready queue */
  ready *q;
  size_t qlen, qcap;
  lua_State *main_co;  /* the main task's thread */
  struct sleeper *sleepers; /* pending sleeps and timed waits */
};

static const char SCHED_KEY = 'S'; /* registry: the lb_sched userdata */
static const char TASKS_KEY = 'T'; /* registry: thread -> task userdata */
static const char ERROR_KEY = 'E'; /* registry: the failing error */

typedef struct task {
  int done;
} task;

static void drain(void *ud, lsync_timer *t);

static void log_to_stderr(void *ud, lsync_log_level level, const char *msg) {
  (void)ud;
  fprintf(stderr, "syncplan: %s%s\n",
          level == LSYNC_LOG_ERROR  ? "error: "
          : level == LSYNC_LOG_WARN ? "warning: "
                                    : "",
          msg);
}

static int sched_gc(lua_State *L) {
  lb_sched *s = lua_touserdata(L, 1);
  if (s->ctx) {
    lsync_timer_close(s->kick);
    lsync_ctx_free(s->ctx); /* runs the loop until every handle is closed */
    s->ctx = NULL;
  }
  free(s->q);
  s->q = NULL;
  return 0;
}

lb_sched *lb_sched_get(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &SCHED_KEY) == LUA_TUSERDATA) {
    lb_sched *s = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return s;
  }
  lua_pop(L, 1);
  lb_sched *s = lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, sched_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  if (lsync_ctx_new(&s->ctx) < 0 || lsync_timer_new(s->ctx, drain, s,
                                                    &s->kick) < 0)
    luaL_error(L, "out of memory");
  lsync_ctx_set_log(s->ctx, log_to_stderr, NULL, LSYNC_LOG_WARN);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &SCHED_KEY);
  lua_newtable(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &TASKS_KEY);
  return s;
}

lsync_ctx *lb_ctx(lua_State *L) {
  return lb_sched_get(L)->ctx;
}

lua_State *lb_sched_state(lb_sched *s) {
  return s->L;
}

unsigned lb_sched_epoch(lb_sched *s) {
  return s->epoch;
}

/* Remember the first error and stop the loop; run() raises it. */
static void fail(lb_sched *s, lua_State *L) {
  if (!s->failed) {
    s->failed = 1;
    lua_rawsetp(L, LUA_REGISTRYINDEX, &ERROR_KEY);
  } else {
    lua_pop(L, 1);
  }
  lsync_stop(s->ctx);
}

/* The task finished with nres results on co's stack: keep them for
 * join(), wake its joiners. */
static void finish_task(lb_sched *s, lua_State *co, int nres) {
  lua_State *L = s->L;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &TASKS_KEY);
  lua_pushthread(co);
  lua_xmove(co, L, 1);
  lua_rawget(L, -2); /* tasks, task */
  task *t = lua_touserdata(L, -1);
  if (t) {
    t->done = 1;
    luaL_checkstack(L, nres + 2, "too many results");
    lua_createtable(L, nres, 1);
    int rt = lua_gettop(L);
    lua_xmove(co, L, nres);
    for (int i = nres; i >= 1; i--)
      lua_rawseti(L, rt, i);
    lua_pushinteger(L, nres);
    lua_setfield(L, rt, "n");
    lua_setiuservalue(L, rt - 1, 1);
    lua_getiuservalue(L, -1, 2); /* joiners */
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
      lua_geti(L, -1, i);
      lb_wake_later(s, lua_tothread(L, -1), 0);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  } else {
    lua_pop(co, nres);
  }
  lua_pop(L, 1);
  lua_pushthread(co);
  lua_xmove(co, L, 1);
  lua_pushnil(L);
  lua_rawset(L, -3); /* tasks[co] = nil */
  lua_pop(L, 1);
  if (co == s->main_co)
    lsync_stop(s->ctx);
}

void lb_wake(lb_sched *s, lua_State *co, int nargs) {
  if (s->failed || !s->L) {
    lua_pop(co, nargs);
    return;
  }
  int nres;
  int st = lua_resume(co, s->L, nargs, &nres);
  if (st == LUA_YIELD) {
    lua_pop(co, nres);
  } else if (st == LUA_OK) {
    finish_task(s, co, nres);
  } else {
    const char *msg = lua_tostring(co, -1);
    luaL_traceback(s->L, co, msg ? msg : "(error object is not a string)",
                   0);
    fail(s, s->L);
  }
}

void lb_wake_later(lb_sched *s, lua_State *co, int nargs) {
  if (s->qlen == s->qcap) {
    size_t cap = s->qcap ? s->qcap * 2 : 16;
    ready *q = realloc(s->q, cap * sizeof *q);
    if (!q) {
      lua_pushliteral(s->L, "out of memory queueing a task");
      fail(s, s->L);
      return;
    }
    s->q = q;
    s->qcap = cap;
  }
  s->q[s->qlen].co = co;
  s->q[s->qlen].nargs = nargs;
  s->qlen++;
  lsync_timer_start(s->kick, 0, 0);
}

static void drain(void *ud, lsync_timer *t) {
  (void)t;
  lb_sched *s = ud;
  /* Wakes queued while draining wait for the next turn of the loop, so a
   * notify loop cannot starve timers and I/O. */
  size_t n = s->qlen;
  ready *batch = malloc(n * sizeof *batch);
  if (!batch && n) {
    lua_pushliteral(s->L, "out of memory");
    fail(s, s->L);
    return;
  }
  if (n)
    memcpy(batch, s->q, n * sizeof *batch);
  s->qlen = 0;
  for (size_t i = 0; i < n; i++)
    lb_wake(s, batch[i].co, batch[i].nargs);
  free(batch);
}

/* Is L a task (a coroutine made by run/spawn, not a plan's own)? */
static int is_task(lua_State *L) {
  if (!lua_isyieldable(L))
    return 0;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &TASKS_KEY);
  lua_pushthread(L);
  int t = lua_rawget(L, -2);
  lua_pop(L, 2);
  return t == LUA_TUSERDATA;
}

void lb_task_check(lua_State *L, const char *what) {
  if (!is_task(L))
    luaL_error(L, "%s must be called from a task (inside syncplan.run)",
               what);
}

/* Make a task of the function at index fidx and the n values after it
 * (moved off L), leaving the task userdata on L. */
static lua_State *new_task(lua_State *L, int fidx, int n) {
  lua_State *co = lua_newthread(L);
  lua_pushvalue(L, fidx);
  lua_xmove(L, co, 1);
  for (int i = 1; i <= n; i++) {
    lua_pushvalue(L, fidx + i);
    lua_xmove(L, co, 1);
  }
  task *t = lua_newuserdatauv(L, sizeof *t, 2);
  t->done = 0;
  luaL_setmetatable(L, TASK_MT);
  lua_newtable(L);
  lua_setiuservalue(L, -2, 2);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &TASKS_KEY);
  lua_pushvalue(L, -3); /* thread */
  lua_pushvalue(L, -3); /* task */
  lua_rawset(L, -3);
  lua_pop(L, 1);
  lua_remove(L, -2); /* the thread stays referenced by TASKS */
  return co;
}

static void drop_sleepers(lb_sched *s);

static int l_run(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lb_sched *s = lb_sched_get(L);
  if (s->running)
    return luaL_error(L, "syncplan.run is already running");
  int nargs = lua_gettop(L) - 1;
  lua_State *co = new_task(L, 1, nargs);
  int tidx = lua_gettop(L);
  s->running = 1;
  s->failed = 0;
  s->L = L;
  s->main_co = co;
  lb_wake(s, co, nargs);
  task *t = lua_touserdata(L, tidx);
  while (!t->done && !s->failed) {
    int more = lsync_run(s->ctx, LSYNC_RUN_DEFAULT);
    if (!t->done && !s->failed && !more && !s->qlen) {
      lua_pushliteral(L, "syncplan.run: every task is waiting and nothing "
                         "can wake them (deadlock)");
      fail(s, L);
    }
  }
  s->running = 0;
  s->L = NULL;
  s->main_co = NULL;
  if (s->failed) {
    /* Tasks left waiting belong to the failed run: forget them. */
    s->epoch++;
    drop_sleepers(s);
    s->qlen = 0;
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &TASKS_KEY);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &ERROR_KEY);
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &ERROR_KEY);
    s->failed = 0;
    return lua_error(L);
  }
  lua_getiuservalue(L, tidx, 1);
  int n = (int)(lua_getfield(L, -1, "n"), lua_tointeger(L, -1));
  lua_pop(L, 1);
  luaL_checkstack(L, n, "too many results");
  for (int i = 1; i <= n; i++)
    lua_geti(L, tidx + 1, i);
  return n;
}

static int l_spawn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lb_sched *s = lb_sched_get(L);
  if (!s->running)
    return luaL_error(L, "syncplan.spawn must be called inside syncplan.run");
  int nargs = lua_gettop(L) - 1;
  lua_State *co = new_task(L, 1, nargs);
  lb_wake_later(s, co, nargs);
  return 1;
}

static int task_join(lua_State *L);

static int join_k(lua_State *L, int status, lua_KContext k) {
  (void)status;
  (void)k;
  return task_join(L);
}

static int task_join(lua_State *L) {
  task *t = luaL_checkudata(L, 1, TASK_MT);
  if (!t->done) {
    lb_task_check(L, "task:join");
    lua_getiuservalue(L, 1, 2);
    lua_pushthread(L);
    lua_rawseti(L, -2, luaL_len(L, -2) + 1);
    lua_pop(L, 1);
    /* Woken with no values: the loop below reads the results. */
    return lua_yieldk(L, 0, 0, join_k);
  }
  lua_getiuservalue(L, 1, 1);
  int idx = lua_gettop(L);
  int n = (int)(lua_getfield(L, idx, "n"), lua_tointeger(L, -1));
  lua_pop(L, 1);
  luaL_checkstack(L, n, "too many results");
  for (int i = 1; i <= n; i++)
    lua_geti(L, idx, i);
  return n;
}

static int task_done(lua_State *L) {
  lua_pushboolean(L, ((task *)luaL_checkudata(L, 1, TASK_MT))->done);
  return 1;
}

/* --- sleep and timed waits ------------------------------------------ */

typedef struct sleeper {
  struct sleeper *prev_all, *next_all; /* every pending sleeper */
  lb_sched *s;
  lua_State *co;
  unsigned epoch;
  struct cond *cond; /* for timed cond:wait, else NULL */
  lsync_timer *t;
  struct sleeper *next; /* in the condition's waiter list */
} sleeper;

static void sleep_fire(void *ud, lsync_timer *t);

static void sleeper_free(sleeper *w) {
  if (w->prev_all)
    w->prev_all->next_all = w->next_all;
  else
    w->s->sleepers = w->next_all;
  if (w->next_all)
    w->next_all->prev_all = w->prev_all;
  free(w);
}

static sleeper *sleeper_new(lua_State *L, lb_sched *s, double sec) {
  sleeper *w = calloc(1, sizeof *w);
  if (!w)
    luaL_error(L, "out of memory");
  w->s = s;
  w->co = L;
  w->epoch = s->epoch;
  w->next_all = s->sleepers;
  if (s->sleepers)
    s->sleepers->prev_all = w;
  s->sleepers = w;
  if (sec >= 0) {
    if (lsync_timer_new(s->ctx, sleep_fire, w, &w->t) < 0) {
      sleeper_free(w);
      luaL_error(L, "out of memory");
    }
    lsync_timer_start(w->t, (uint64_t)(sec * 1000.0 + 0.5), 0);
  }
  return w;
}

typedef struct cond {
  sleeper *head;
} cond;

static void cond_unlink(cond *c, sleeper *w) {
  for (sleeper **p = &c->head; *p; p = &(*p)->next)
    if (*p == w) {
      *p = w->next;
      return;
    }
}

static void sleep_fire(void *ud, lsync_timer *t) {
  sleeper *w = ud;
  lsync_timer_close(t);
  if (w->cond)
    cond_unlink(w->cond, w);
  lb_sched *s = w->s;
  lua_State *co = w->co;
  int stale = w->epoch != s->epoch;
  int timed_wait = w->cond != NULL;
  sleeper_free(w);
  if (stale)
    return;
  if (timed_wait) {
    lua_pushboolean(co, 0);
    lb_wake(s, co, 1);
  } else {
    lb_wake(s, co, 0);
  }
}

static int l_sleep(lua_State *L) {
  double sec = luaL_checknumber(L, 1);
  luaL_argcheck(L, sec >= 0, 1, "negative duration");
  lb_task_check(L, "syncplan.sleep");
  sleeper_new(L, lb_sched_get(L), sec);
  return lua_yield(L, 0);
}

static int l_condition(lua_State *L) {
  cond *c = lua_newuserdatauv(L, sizeof *c, 0);
  c->head = NULL;
  luaL_setmetatable(L, COND_MT);
  return 1;
}

static int cond_wait(lua_State *L) {
  cond *c = luaL_checkudata(L, 1, COND_MT);
  double sec = luaL_optnumber(L, 2, -1);
  lb_task_check(L, "condition:wait");
  sleeper *w = sleeper_new(L, lb_sched_get(L), sec);
  w->cond = c;
  w->next = c->head;
  c->head = w;
  return lua_yield(L, 0);
}

static int cond_notify(lua_State *L) {
  cond *c = luaL_checkudata(L, 1, COND_MT);
  lb_sched *s = lb_sched_get(L);
  int n = 0;
  while (c->head) {
    sleeper *w = c->head;
    c->head = w->next;
    if (w->t)
      lsync_timer_close(w->t);
    if (w->epoch == s->epoch && s->running) {
      lua_pushboolean(w->co, 1);
      lb_wake_later(s, w->co, 1);
      n++;
    }
    sleeper_free(w);
  }
  lua_pushinteger(L, n);
  return 1;
}

/* A failed run's tasks never resume: drop their sleeps, so a stale timer
 * neither fires into a dead task nor keeps the next run's loop busy. */
static void drop_sleepers(lb_sched *s) {
  while (s->sleepers) {
    sleeper *w = s->sleepers;
    if (w->t)
      lsync_timer_close(w->t);
    if (w->cond)
      cond_unlink(w->cond, w);
    sleeper_free(w);
  }
}

/* --- timers and signals that call functions ------------------------- */

typedef struct handle {
  lb_sched *s;
  int repeat;
  lsync_timer *t;
  lsync_signal *sig;
  int fn_ref; /* registry ref of the function; LUA_NOREF when stopped */
} handle;

static void call_fn(handle *h, int arg) {
  lb_sched *s = h->s;
  lua_State *L = s->L;
  if (!L || s->failed || h->fn_ref == LUA_NOREF)
    return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->fn_ref);
  lua_pushinteger(L, arg);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK)
    fail(s, L);
}

static void timer_fn(void *ud, lsync_timer *t) {
  (void)t;
  handle *h = ud;
  lua_State *L = h->s->L;
  call_fn(h, 0);
  if (!h->repeat && L) {
    /* A one-shot timer is garbage once it fired. */
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, h);
  }
}

static void signal_fn(void *ud, int signum) {
  call_fn(ud, signum);
}

static handle *handle_new(lua_State *L, int fidx) {
  luaL_checktype(L, fidx, LUA_TFUNCTION);
  handle *h = lua_newuserdatauv(L, sizeof *h, 0);
  memset(h, 0, sizeof *h);
  h->fn_ref = LUA_NOREF;
  luaL_setmetatable(L, HANDLE_MT);
  h->s = lb_sched_get(L);
  lua_pushvalue(L, fidx);
  h->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return h;
}

static int handle_stop(lua_State *L) {
  handle *h = luaL_checkudata(L, 1, HANDLE_MT);
  if (h->t)
    lsync_timer_close(h->t);
  if (h->sig)
    lsync_signal_close(h->sig);
  h->t = NULL;
  h->sig = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, h->fn_ref);
  h->fn_ref = LUA_NOREF;
  return 0;
}

/* The function stays referenced until stop(): a timer the plan forgot
 * keeps firing, as the plan asked. */
static int l_timer(lua_State *L) {
  double sec = luaL_checknumber(L, 1);
  double rep = luaL_optnumber(L, 3, 0);
  luaL_argcheck(L, sec >= 0 && rep >= 0, 1, "negative duration");
  handle *h = handle_new(L, 2);
  h->repeat = rep > 0;
  if (lsync_timer_new(h->s->ctx, timer_fn, h, &h->t) < 0)
    return luaL_error(L, "out of memory");
  lsync_timer_start(h->t, (uint64_t)(sec * 1000 + 0.5),
                    (uint64_t)(rep * 1000 + 0.5));
  /* Anchor the handle itself while it can fire. */
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, h);
  return 1;
}

static int l_on_signal(lua_State *L) {
  static const char *const names[] = {"INT", "TERM", "HUP", NULL};
  static const int nums[] = {SIGINT, SIGTERM, SIGHUP};
  int which = luaL_checkoption(L, 1, NULL, names);
  handle *h = handle_new(L, 2);
  if (lsync_signal_new(h->s->ctx, nums[which], signal_fn, h, &h->sig) < 0)
    return luaL_error(L, "%s", lsync_ctx_errmsg(h->s->ctx));
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, h);
  return 1;
}

static int handle_stop_unanchor(lua_State *L) {
  handle *h = luaL_checkudata(L, 1, HANDLE_MT);
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, h);
  return handle_stop(L);
}

static int l_clock(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
  return 1;
}

static int l_time(lua_State *L) {
  lua_pushnumber(L, lb_time());
  return 1;
}

void lb_loop_open(lua_State *L) {
  static const luaL_Reg task_methods[] = {
      {"join", task_join}, {"done", task_done}, {NULL, NULL}};
  static const luaL_Reg cond_methods[] = {
      {"wait", cond_wait}, {"notify", cond_notify}, {NULL, NULL}};
  static const luaL_Reg handle_methods[] = {{"stop", handle_stop_unanchor},
                                            {NULL, NULL}};
  luaL_newmetatable(L, HANDLE_MT);
  lua_pushcfunction(L, handle_stop);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  static const struct {
    const char *mt;
    const luaL_Reg *methods;
  } types[] = {{TASK_MT, task_methods},
               {COND_MT, cond_methods},
               {HANDLE_MT, handle_methods}};
  for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
    luaL_newmetatable(L, types[i].mt);
    lua_newtable(L);
    luaL_setfuncs(L, types[i].methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
  }
  static const luaL_Reg funcs[] = {
      {"run", l_run},         {"spawn", l_spawn},   {"sleep", l_sleep},
      {"condition", l_condition}, {"timer", l_timer},
      {"on_signal", l_on_signal}, {"clock", l_clock}, {"time", l_time},
      {NULL, NULL}};
  luaL_setfuncs(L, funcs, 0);
  lb_sched_get(L);
}
