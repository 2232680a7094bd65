/*
 * SSH sessions: libssh2 driven by the loop.  libssh2 runs non-blocking
 * on a socket of our own; whenever a call returns LIBSSH2_ERROR_EAGAIN,
 * libssh2_session_block_directions says whether it waits to read or to
 * write, a uv_poll_t on the socket waits for that, and the same step is
 * called again.  One timer bounds the whole connection.
 *
 * States: RESOLVE (uv_getaddrinfo) -> CONNECT (a non-blocking connect()
 * per address, until one answers) -> HANDSHAKE -> host key check (file
 * reads, no network) -> AUTHLIST -> AUTH (one identity file after the
 * other) -> READY, or FAILED from any of them.
 *
 * Memory: the struct holds two handles (the poll handle once a socket
 * exists, the timer) and maybe a pending getaddrinfo request; free closes
 * or cancels them and the struct goes when the last of them has called
 * back (`pending`).  The poll handle is re-initialised for each address
 * tried, after the previous one's close callback.
 */
#include <errno.h>
#include <fcntl.h>
#include <libssh2.h>
#include <netdb.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "internal.h"

#define DEFAULT_TIMEOUT_MS 30000
#define MAX_IDS 32

enum state {
  S_RESOLVE,
  S_CONNECT,
  S_HANDSHAKE,
  S_AUTHLIST,
  S_AUTH,
  S_READY,
  S_LIVE, /* connected: running commands */
  S_FAILED
};

/* The window a channel offers the server: what it may send before we
 * read.  libssh2's default (2 MiB) caps one channel at 2 MiB a round
 * trip; rsync over a WAN link wants more. */
#define CHAN_WINDOW (8u * 1024 * 1024)

/* A command on an exec channel: open, exec, feed stdin and read both
 * outputs, then close, wait for the server's close, free. */
enum cstate { C_OPEN, C_SPARE, C_EXEC, C_IO, C_CLOSE, C_WAIT, C_FREE };

struct lsync_ssh_chan {
  lsync_ssh_chan *next;
  lsync_ssh *s;
  LIBSSH2_CHANNEL *ch;
  enum cstate st;
  char *cmd;
  char *q; /* input not yet sent: q[q_off..q_len) */
  size_t q_off, q_len, q_cap;
  int eof_wanted, eof_sent;
  int paused, closing, abandoned;
  int dead; /* the session was freed: ECANCELED is reported from the loop */
  int exit_status;
  char *exit_signal; /* libssh2's allocation */
  lsync_ssh_data_cb on_data;
  lsync_ssh_exit_cb on_exit;
  lsync_ssh_drain_cb on_drain;
  void *ud;
};

struct lsync_ssh {
  lsync_ctx *ctx;
  lsync_ssh_ready_cb on_ready;
  void *ud;
  uv_timer_t timer;
  uv_poll_t poll;
  uv_getaddrinfo_t gai;
  int poll_open, gai_active, pending, closing, reported;
  enum state st;

  /* Options, copied. */
  char *host, *user, *known_hosts, *alias;
  char *ids[MAX_IDS];
  size_t nids, id_i;
  unsigned port, timeout_ms;
  int accept_new;
  int use_agent; /* no identity files given, and SSH_AUTH_SOCK set */
  LIBSSH2_AGENT *agent;
  struct libssh2_agent_publickey *ident; /* the agent key being tried */
  int agent_done;

  struct addrinfo *ai, *ai_next;
  int fd;
  int last_connect_err;
  LIBSSH2_SESSION *sess;
  lsync_ssh_chan *chans;
  lsync_ssh_chan *spare; /* opened ahead for the next command, or NULL */
  int prefetch;
  int driving, redrive;
  uint64_t bytes_in, bytes_out; /* channel data, both ways */

  char fingerprint[64];
  char tried[512]; /* the keys tried and why each failed */
  char errmsg[LSYNC__ERRMSG_MAX];
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;
static void init_libssh2(void) { init_rc = libssh2_init(0); }

static void step(lsync_ssh *s);
static void try_address(lsync_ssh *s);

/* ---- helpers ----------------------------------------------------------- */

static const char *home_dir(void) {
  const char *h = getenv("HOME");
  if (h && *h)
    return h;
  struct passwd *pw = getpwuid(getuid());
  return pw ? pw->pw_dir : "/";
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static char *home_path(const char *rel) {
  const char *h = home_dir();
  size_t n = strlen(h) + strlen(rel) + 2;
  char *p = malloc(n);
  if (p)
    snprintf(p, n, "%s/%s", h, rel);
  return p;
}

/* The session's own message (the context may serve other objects). */
static void set_msg(lsync_ssh *s, const char *fmt, va_list ap) {
  vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
}

static void release(lsync_ssh *s);

/* The one report: on_ready may free the session, so nothing touches it
 * after the call. */
static void report(lsync_ssh *s, int status) {
  if (s->reported || s->closing)
    return;
  s->reported = 1;
  uv_timer_stop(&s->timer);
  if (s->poll_open)
    uv_poll_stop(&s->poll);
  s->on_ready(s->ud, s, status);
}

static void fail(lsync_ssh *s, int code, const char *fmt, ...)
    LSYNC__PRINTF(3, 4);
static void fail(lsync_ssh *s, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  set_msg(s, fmt, ap);
  va_end(ap);
  s->st = S_FAILED;
  report(s, code);
}

static const char *ssh_error(lsync_ssh *s) {
  char *msg = NULL;
  if (!s->sess || libssh2_session_last_error(s->sess, &msg, NULL, 0) == 0 ||
      !msg)
    return "unknown error";
  return msg;
}

/* "SHA256:" and unpadded base64, as OpenSSH prints fingerprints. */
static void make_fingerprint(lsync_ssh *s) {
  static const char b64[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const unsigned char *h = (const unsigned char *)libssh2_hostkey_hash(
      s->sess, LIBSSH2_HOSTKEY_HASH_SHA256);
  if (!h)
    return;
  char *o = s->fingerprint + sprintf(s->fingerprint, "SHA256:");
  for (int i = 0; i < 32; i += 3) {
    unsigned v = (unsigned)h[i] << 16;
    if (i + 1 < 32)
      v |= (unsigned)h[i + 1] << 8;
    if (i + 2 < 32)
      v |= h[i + 2];
    *o++ = b64[(v >> 18) & 63];
    *o++ = b64[(v >> 12) & 63];
    if (i + 1 < 32)
      *o++ = b64[(v >> 6) & 63];
    if (i + 2 < 32)
      *o++ = b64[v & 63];
  }
  *o = '\0';
}

/* ---- host keys --------------------------------------------------------- */

static const struct {
  int hostkey_type;
  int knownhost_key;
  const char *name;
} key_types[] = {
    {LIBSSH2_HOSTKEY_TYPE_RSA, LIBSSH2_KNOWNHOST_KEY_SSHRSA, "ssh-rsa"},
    {LIBSSH2_HOSTKEY_TYPE_DSS, LIBSSH2_KNOWNHOST_KEY_SSHDSS, "ssh-dss"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_256, LIBSSH2_KNOWNHOST_KEY_ECDSA_256,
     "ecdsa-sha2-nistp256"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_384, LIBSSH2_KNOWNHOST_KEY_ECDSA_384,
     "ecdsa-sha2-nistp384"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_521, LIBSSH2_KNOWNHOST_KEY_ECDSA_521,
     "ecdsa-sha2-nistp521"},
    {LIBSSH2_HOSTKEY_TYPE_ED25519, LIBSSH2_KNOWNHOST_KEY_ED25519,
     "ssh-ed25519"},
};
#define NKEY_TYPES (sizeof key_types / sizeof *key_types)

/* Read known_hosts a line at a time: a line libssh2 cannot parse (a
 * marker such as @cert-authority, a key type it does not know) is
 * skipped rather than failing the whole file.  A missing file is empty. */
static int read_known_hosts(lsync_ssh *s, LIBSSH2_KNOWNHOSTS *kh,
                            const char *path) {
  FILE *f = fopen(path, "r");
  if (!f)
    return errno == ENOENT ? 0 : -errno;
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  while ((n = getline(&line, &cap, f)) > 0) {
    if (libssh2_knownhost_readline(kh, line, (size_t)n,
                                   LIBSSH2_KNOWNHOST_FILE_OPENSSH) < 0)
      lsync__log(s->ctx, LSYNC_LOG_DEBUG, "%s: a line ssh cannot use: %.60s",
                 path, line);
  }
  free(line);
  fclose(f);
  return 0;
}

/* Append the host's key to known_hosts, making the file (0600) and its
 * directory (0700) when missing. */
static int add_known_host(LIBSSH2_KNOWNHOSTS *kh, const char *path,
                          const char *name, const char *key, size_t len,
                          int typemask) {
  struct libssh2_knownhost *node;
  char line[16384];
  size_t out;
  if (libssh2_knownhost_addc(kh, name, NULL, key, len, NULL, 0, typemask,
                             &node) < 0 ||
      libssh2_knownhost_writeline(kh, node, line, sizeof line, &out,
                                  LIBSSH2_KNOWNHOST_FILE_OPENSSH) < 0)
    return -EINVAL;
  char *dir = strdup(path), *slash = dir ? strrchr(dir, '/') : NULL;
  if (slash && slash != dir) {
    *slash = '\0';
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
      int e = errno;
      free(dir);
      return -e;
    }
  }
  free(dir);
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    return -errno;
  ssize_t w = write(fd, line, out);
  int e = w == (ssize_t)out ? 0 : w < 0 ? errno : EIO;
  if (close(fd) < 0 && !e)
    e = errno;
  return -e;
}

/* 0, or the session failed (reported). */
static int check_host_key(lsync_ssh *s) {
  size_t len;
  int type;
  const char *key = libssh2_session_hostkey(s->sess, &len, &type);
  size_t ti = 0;
  while (ti < NKEY_TYPES && key_types[ti].hostkey_type != type)
    ti++;
  make_fingerprint(s);
  if (!key || ti == NKEY_TYPES) {
    fail(s, LSYNC_EHOSTKEY, "%s: the server's host key is of a type "
         "known_hosts cannot hold", s->host);
    return -1;
  }
  /* As OpenSSH: the alias if any, else the host, bracketed with the port
   * when it is not 22. */
  char name[1100];
  if (s->alias)
    snprintf(name, sizeof name, "%s", s->alias);
  else if (s->port == 22)
    snprintf(name, sizeof name, "%s", s->host);
  else
    snprintf(name, sizeof name, "[%s]:%u", s->host, s->port);
  char *path = s->known_hosts ? strdup(s->known_hosts)
                              : home_path(".ssh/known_hosts");
  LIBSSH2_KNOWNHOSTS *kh = libssh2_knownhost_init(s->sess);
  if (!path || !kh) {
    free(path);
    fail(s, LSYNC_ENOMEM, "out of memory");
    return -1;
  }
  int rc = read_known_hosts(s, kh, path), ret = -1;
  int base = LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW;
  if (rc < 0) {
    fail(s, LSYNC_EHOSTKEY, "cannot read %s: %s", path, strerror(-rc));
    goto out;
  }
  int check = libssh2_knownhost_checkp(kh, name, -1, key, len,
                                       base | key_types[ti].knownhost_key,
                                       NULL);
  /* Recorded with keys of other types only: the server now offers one we
   * cannot compare, which is as suspect as a changed key. */
  for (size_t j = 0; check == LIBSSH2_KNOWNHOST_CHECK_NOTFOUND &&
                     j < NKEY_TYPES; j++)
    if (j != ti &&
        libssh2_knownhost_checkp(kh, name, -1, key, len,
                                 base | key_types[j].knownhost_key, NULL) ==
            LIBSSH2_KNOWNHOST_CHECK_MISMATCH)
      check = LIBSSH2_KNOWNHOST_CHECK_MISMATCH;
  switch (check) {
  case LIBSSH2_KNOWNHOST_CHECK_MATCH:
    ret = 0;
    break;
  case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
    fail(s, LSYNC_EHOSTKEY,
         "host key for %s has changed: the server offers %s %s, which is "
         "not the key recorded in %s; refusing to connect",
         name, key_types[ti].name, s->fingerprint, path);
    break;
  case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
    if (!s->accept_new) {
      fail(s, LSYNC_EHOSTKEY,
           "host %s is not in %s (its key is %s %s); accept it explicitly "
           "(accept new hosts) or add it to known_hosts",
           name, path, key_types[ti].name, s->fingerprint);
      break;
    }
    rc = add_known_host(kh, path, name, key, len,
                        base | key_types[ti].knownhost_key);
    if (rc < 0) {
      fail(s, LSYNC_EHOSTKEY, "cannot add %s to %s: %s", name, path,
           strerror(-rc));
      break;
    }
    lsync__log(s->ctx, LSYNC_LOG_INFO, "added %s %s %s to %s", name,
               key_types[ti].name, s->fingerprint, path);
    ret = 0;
    break;
  default:
    fail(s, LSYNC_EHOSTKEY, "cannot check the host key of %s: %s", name,
         ssh_error(s));
  }
out:
  libssh2_knownhost_free(kh);
  free(path);
  return ret;
}

/* ---- authentication ---------------------------------------------------- */

static void note_tried(lsync_ssh *s, const char *path, const char *why) {
  size_t n = strlen(s->tried);
  snprintf(s->tried + n, sizeof s->tried - n, "%s%s (%s)", n ? ", " : "",
           path, why);
}

/* The agent's keys, one after the other, as OpenSSH offers them before
 * the key files.  Talking to the agent is local (a unix socket), the
 * server's answers come without blocking.  LIBSSH2_ERROR_EAGAIN, 0 when
 * authenticated, or 1 when the agent has no key left (or none at all). */
static int try_agent(lsync_ssh *s) {
  if (!s->agent) {
    if (!(s->agent = libssh2_agent_init(s->sess)) ||
        libssh2_agent_connect(s->agent) != 0 ||
        libssh2_agent_list_identities(s->agent) != 0) {
      note_tried(s, "ssh-agent", "cannot use it");
      s->agent_done = 1;
      return 1;
    }
    if (libssh2_agent_get_identity(s->agent, &s->ident, NULL) != 0) {
      note_tried(s, "ssh-agent", "no keys");
      s->agent_done = 1;
      return 1;
    }
  }
  for (;;) {
    int rc = libssh2_agent_userauth(s->agent, s->user, s->ident);
    if (rc == LIBSSH2_ERROR_EAGAIN || rc == 0)
      return rc;
    char what[96];
    snprintf(what, sizeof what, "agent key %.60s",
             s->ident->comment ? s->ident->comment : "");
    note_tried(s, what, "refused");
    struct libssh2_agent_publickey *prev = s->ident;
    if (libssh2_agent_get_identity(s->agent, &s->ident, prev) != 0) {
      s->agent_done = 1;
      return 1;
    }
  }
}

/* LIBSSH2_ERROR_EAGAIN, 0 when authenticated, or 1 when no key is left. */
static int try_keys(lsync_ssh *s) {
  if (s->use_agent && !s->agent_done) {
    int rc = try_agent(s);
    if (rc != 1)
      return rc;
  }
  for (; s->id_i < s->nids; s->id_i++) {
    const char *path = s->ids[s->id_i];
    if (access(path, R_OK) < 0) {
      if (errno != ENOENT)
        note_tried(s, path, strerror(errno));
      continue;
    }
    int rc = libssh2_userauth_publickey_fromfile_ex(
        s->sess, s->user, (unsigned)strlen(s->user), NULL, path, NULL);
    if (rc == LIBSSH2_ERROR_EAGAIN || rc == 0)
      return rc;
    note_tried(s, path,
               rc == LIBSSH2_ERROR_FILE ? "cannot load it (passphrase?)"
               : rc == LIBSSH2_ERROR_AUTHENTICATION_FAILED ||
                       rc == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED
                   ? "refused"
                   : ssh_error(s));
  }
  return 1;
}

/* ---- channels ---------------------------------------------------------- */

/* Input queued for a channel beyond this is compacted on the next write. */
#define QUEUE_COMPACT (256u * 1024)

static void chan_release(lsync_ssh *s, lsync_ssh_chan *c) {
  if (s->spare == c)
    s->spare = NULL;
  if (c->exit_signal && s->sess)
    libssh2_free(s->sess, c->exit_signal);
  free(c->cmd);
  free(c->q);
  free(c);
}

static void chan_unlink(lsync_ssh *s, lsync_ssh_chan *c) {
  lsync_ssh_chan **pp = &s->chans;
  while (*pp && *pp != c)
    pp = &(*pp)->next;
  if (*pp)
    *pp = c->next;
}

/* Take c off the session's list and report it (unless abandoned); the
 * callback may open channels or free the session. */
static void chan_end(lsync_ssh *s, lsync_ssh_chan *c, int rc) {
  chan_unlink(s, c);
  char sig[32] = "";
  if (c->exit_signal)
    snprintf(sig, sizeof sig, "%s", c->exit_signal);
  int status = c->exit_signal ? -1 : c->exit_status;
  lsync_ssh_exit_cb cb = c->abandoned ? NULL : c->on_exit;
  void *ud = c->ud;
  chan_release(s, c);
  if (cb)
    cb(ud, rc, status, sig[0] ? sig : NULL);
}

static void fail_chans(lsync_ssh *s, const char *why);

static int chan_fail(lsync_ssh *s, lsync_ssh_chan *c, const char *what) {
  int e_no = libssh2_session_last_errno(s->sess);
  if (e_no == LIBSSH2_ERROR_SOCKET_SEND || e_no == LIBSSH2_ERROR_SOCKET_RECV ||
      e_no == LIBSSH2_ERROR_SOCKET_DISCONNECT) {
    /* The connection is gone: every channel with it. */
    fail_chans(s, ssh_error(s));
    return 0;
  }
  snprintf(s->errmsg, sizeof s->errmsg, "%s: %s '%.200s': %s", s->host, what,
           c->cmd ? c->cmd : "(a channel opened ahead)", ssh_error(s));
  if (c->ch && c->st != C_FREE)
    libssh2_channel_free(c->ch); /* best effort; non-blocking */
  c->ch = NULL;
  chan_end(s, c, LSYNC_EIO);
  return 0;
}

/* Feed queued input, then end-of-file once asked; read what both outputs
 * have unless paused.  EAGAIN while the command runs, 1 once the server
 * sent end-of-file and all was read, 0 when the channel failed or the
 * session went (callbacks ran). */
static int chan_io(lsync_ssh *s, lsync_ssh_chan *c) {
  char buf[32768];
  int had_input = c->q_len > c->q_off;
  while (c->q_off < c->q_len) {
    ssize_t n = libssh2_channel_write(c->ch, c->q + c->q_off,
                                      c->q_len - c->q_off);
    if (n == LIBSSH2_ERROR_EAGAIN)
      break;
    if (n < 0)
      return chan_fail(s, c, "writing to");
    c->q_off += (size_t)n;
    s->bytes_out += (uint64_t)n;
  }
  if (c->q_off == c->q_len) {
    c->q_off = c->q_len = 0;
    if (had_input && c->on_drain && !c->abandoned) {
      c->on_drain(c->ud); /* may queue more, pause, close, free s */
      if (s->closing)
        return 0;
    }
  }
  if (c->q_off == c->q_len && c->eof_wanted && !c->eof_sent) {
    int rc = libssh2_channel_send_eof(c->ch);
    if (rc < 0 && rc != LIBSSH2_ERROR_EAGAIN)
      return chan_fail(s, c, "ending the input of");
    c->eof_sent = rc == 0;
  }
  for (int fd = 1; fd <= 2 && !c->paused; fd++) {
    while (!c->paused) {
      ssize_t n = libssh2_channel_read_ex(
          c->ch, fd == 2 ? SSH_EXTENDED_DATA_STDERR : 0, buf, sizeof buf);
      if (n == LIBSSH2_ERROR_EAGAIN || n == 0)
        break;
      if (n < 0)
        return chan_fail(s, c, "reading from");
      s->bytes_in += (uint64_t)n;
      if (!c->abandoned)
        c->on_data(c->ud, fd, buf, (size_t)n);
      if (s->closing)
        return 0;
      if (c->closing)
        return LIBSSH2_ERROR_EAGAIN; /* closed from on_data: go on there */
    }
  }
  if (c->paused)
    return LIBSSH2_ERROR_EAGAIN;
  return libssh2_channel_eof(c->ch) ? 1 : LIBSSH2_ERROR_EAGAIN;
}

/* EAGAIN while c waits on the socket, 0 once it ended (reported). */
static int chan_step(lsync_ssh *s, lsync_ssh_chan *c) {
  int rc;
  for (;;) {
    switch (c->st) {
    case C_OPEN:
      if (c->closing) { /* closed before it opened: nothing to tell */
        chan_end(s, c, 0);
        return 0;
      }
      c->ch = libssh2_channel_open_ex(s->sess, "session",
                                      sizeof "session" - 1, CHAN_WINDOW,
                                      LIBSSH2_CHANNEL_PACKET_DEFAULT, NULL,
                                      0);
      if (!c->ch) {
        if (libssh2_session_last_errno(s->sess) == LIBSSH2_ERROR_EAGAIN)
          return LIBSSH2_ERROR_EAGAIN;
        return chan_fail(s, c, "cannot open a channel for");
      }
      c->st = C_SPARE;
      break;
    case C_SPARE:
      if (c->closing) {
        c->st = C_CLOSE;
        break;
      }
      if (!c->cmd)
        return LIBSSH2_ERROR_EAGAIN; /* open, waiting for a command */
      c->st = C_EXEC;
      break;
    case C_EXEC:
      rc = libssh2_channel_exec(c->ch, c->cmd);
      if (rc == LIBSSH2_ERROR_EAGAIN)
        return rc;
      if (rc < 0)
        return chan_fail(s, c, "cannot run");
      c->st = C_IO;
      break;
    case C_IO:
      /* Closing early: the server closes the command's pipes, and the
       * command ends on its next read or write. */
      rc = c->closing ? 1 : chan_io(s, c);
      if (rc != 1)
        return rc;
      c->st = C_CLOSE;
      break;
    case C_CLOSE:
      rc = libssh2_channel_close(c->ch);
      if (rc == LIBSSH2_ERROR_EAGAIN)
        return rc;
      if (rc < 0)
        return chan_fail(s, c, "closing the channel of");
      c->st = C_WAIT;
      break;
    case C_WAIT:
      rc = libssh2_channel_wait_closed(c->ch);
      if (rc == LIBSSH2_ERROR_EAGAIN)
        return rc;
      if (rc < 0)
        return chan_fail(s, c, "closing the channel of");
      c->exit_status = libssh2_channel_get_exit_status(c->ch);
      libssh2_channel_get_exit_signal(c->ch, &c->exit_signal, NULL, NULL,
                                      NULL, NULL, NULL);
      c->st = C_FREE;
      break;
    case C_FREE:
      rc = libssh2_channel_free(c->ch);
      if (rc == LIBSSH2_ERROR_EAGAIN)
        return rc;
      c->ch = NULL;
      chan_end(s, c, 0);
      return 0;
    }
  }
}

static void on_poll(uv_poll_t *h, int status, int events);

/* Whether c needs what arrives on the socket: anything but a paused
 * channel with nothing to send (whose data waits in libssh2, bounded by
 * its window).  With every channel paused, a readable socket would
 * otherwise wake the loop for nothing, forever. */
static int chan_wants_read(const lsync_ssh_chan *c) {
  if (c->st == C_SPARE && !c->cmd)
    return 0;
  return c->st != C_IO || c->closing || !c->paused || c->q_off < c->q_len ||
         (c->eof_wanted && !c->eof_sent);
}

/* Step every channel; wait on the socket while any is left.  Callbacks
 * may open channels (they run in a further round) or free the session
 * (which ends this one). */
static void drive_chans(lsync_ssh *s) {
  if (s->driving) {
    s->redrive = 1;
    return;
  }
  s->driving = 1;
  do {
    s->redrive = 0;
    for (lsync_ssh_chan *c = s->chans, *next; c; c = next) {
      next = c->next;
      chan_step(s, c);
      if (s->closing || s->st != S_LIVE)
        return;
    }
  } while (s->redrive);
  s->driving = 0;
  int ev = 0;
  for (lsync_ssh_chan *c = s->chans; c && !ev; c = c->next)
    if (chan_wants_read(c))
      ev = UV_READABLE;
  if (libssh2_session_block_directions(s->sess) &
      LIBSSH2_SESSION_BLOCK_OUTBOUND)
    ev |= UV_WRITABLE;
  if (ev)
    uv_poll_start(&s->poll, ev, on_poll);
  else
    uv_poll_stop(&s->poll);
}

/* Step the channels again from the loop, never from inside the caller:
 * callbacks never run inside lsync_ssh_* calls. */
static void kick(lsync_ssh *s) {
  if (s->st != S_LIVE || s->closing)
    return;
  if (s->driving)
    s->redrive = 1;
  else
    uv_poll_start(&s->poll, UV_READABLE | UV_WRITABLE, on_poll);
}

/* The connection broke: the session is done, and each channel fails. */
static void fail_chans(lsync_ssh *s, const char *why) {
  snprintf(s->errmsg, sizeof s->errmsg, "%s: connection lost: %s", s->host,
           why);
  s->st = S_FAILED;
  s->driving = 0;
  uv_poll_stop(&s->poll);
  while (s->chans && !s->closing) {
    lsync_ssh_chan *c = s->chans;
    if (c->ch)
      libssh2_channel_free(c->ch);
    c->ch = NULL;
    chan_end(s, c, LSYNC_ECONNECT);
  }
}

/* A channel opened ahead, without a command: the next chan_open takes
 * it and skips the open's round trip.  It calls back no one until then
 * (abandoned); if it fails, the next command opens its own. */
static void make_spare(lsync_ssh *s) {
  if (!s->prefetch || s->spare || s->st != S_LIVE || s->closing)
    return;
  lsync_ssh_chan *c = calloc(1, sizeof *c);
  if (!c)
    return;
  c->s = s;
  c->abandoned = 1;
  c->next = s->chans;
  s->chans = c;
  s->spare = c;
  kick(s);
}

void lsync_ssh_prefetch(lsync_ssh *s, int on) {
  s->prefetch = on;
  if (on)
    make_spare(s);
  else if (s->spare) {
    lsync_ssh_chan *c = s->spare;
    s->spare = NULL;
    c->closing = 1; /* closed and freed without a word (abandoned) */
    kick(s);
  }
}

int lsync_ssh_chan_open(lsync_ssh *s, const lsync_ssh_chan_opts *o,
                        lsync_ssh_chan **out) {
  *out = NULL;
  if (!o || !o->cmd || !o->on_data || !o->on_exit)
    return lsync__fail(s->ctx, LSYNC_EINVAL,
                       "ssh: a command and callbacks needed");
  if (s->st != S_LIVE || s->closing)
    return lsync__fail(s->ctx, s->st == S_FAILED ? LSYNC_ECONNECT
                                                 : LSYNC_EINVAL,
                       "ssh: %s: %s", s->host,
                       s->st == S_FAILED ? s->errmsg : "not connected");
  char *cmd = strdup(o->cmd);
  lsync_ssh_chan *c = s->spare && !s->spare->closing ? s->spare : NULL;
  if (!c && cmd && (c = calloc(1, sizeof *c))) {
    c->s = s;
    c->next = s->chans;
    s->chans = c;
  }
  if (!c || !cmd) {
    free(cmd);
    return lsync__fail(s->ctx, LSYNC_ENOMEM, "ssh: out of memory");
  }
  if (c == s->spare)
    s->spare = NULL;
  c->cmd = cmd;
  c->abandoned = 0;
  c->on_data = o->on_data;
  c->on_exit = o->on_exit;
  c->on_drain = o->on_drain;
  c->ud = o->ud;
  make_spare(s);
  kick(s);
  *out = c;
  return 0;
}

int lsync_ssh_chan_write(lsync_ssh_chan *c, const void *buf, size_t len) {
  if (c->eof_wanted || c->closing)
    return lsync__fail(c->s->ctx, LSYNC_EINVAL,
                       "ssh: writing to a channel whose input has ended");
  if (len == 0)
    return 0;
  if (c->q_off >= QUEUE_COMPACT) {
    memmove(c->q, c->q + c->q_off, c->q_len - c->q_off);
    c->q_len -= c->q_off;
    c->q_off = 0;
  }
  if (c->q_len + len > c->q_cap) {
    size_t cap = c->q_cap ? c->q_cap : 65536;
    while (cap < c->q_len + len)
      cap *= 2;
    char *q = realloc(c->q, cap);
    if (!q)
      return lsync__fail(c->s->ctx, LSYNC_ENOMEM, "ssh: out of memory");
    c->q = q;
    c->q_cap = cap;
  }
  memcpy(c->q + c->q_len, buf, len);
  c->q_len += len;
  kick(c->s);
  return 0;
}

size_t lsync_ssh_chan_queued(const lsync_ssh_chan *c) {
  return c->q_len - c->q_off;
}

void lsync_ssh_chan_end_input(lsync_ssh_chan *c) {
  if (c->eof_wanted)
    return;
  c->eof_wanted = 1;
  kick(c->s);
}

void lsync_ssh_chan_pause(lsync_ssh_chan *c, int paused) {
  if (c->paused == !!paused)
    return;
  c->paused = !!paused;
  if (!paused)
    kick(c->s);
}

void lsync_ssh_chan_close(lsync_ssh_chan *c) {
  if (c->closing)
    return;
  c->closing = 1;
  kick(c->s);
}

void lsync_ssh_chan_abandon(lsync_ssh_chan *c) {
  lsync_ssh *s = c->s;
  c->abandoned = 1;
  if (c->dead) { /* the session went; its report has not run yet */
    chan_unlink(s, c);
    chan_release(s, c);
    return;
  }
  lsync_ssh_chan_close(c);
}

int lsync_ssh_exec(lsync_ssh *s, const char *cmd, const char *input,
                   size_t len, lsync_ssh_data_cb on_data,
                   lsync_ssh_exit_cb on_exit, void *ud) {
  lsync_ssh_chan_opts o = {cmd, on_data, on_exit, NULL, ud};
  lsync_ssh_chan *c;
  int rc = lsync_ssh_chan_open(s, &o, &c);
  if (rc < 0)
    return rc;
  if ((rc = lsync_ssh_chan_write(c, input, len)) < 0) {
    /* It may be a channel opened ahead, open at the server: closed and
     * freed from the loop, without a callback. */
    lsync_ssh_chan_abandon(c);
    return rc;
  }
  lsync_ssh_chan_end_input(c);
  return 0;
}

int lsync_ssh_alive(const lsync_ssh *s) {
  return s && s->st == S_LIVE && !s->closing;
}

void lsync_ssh_bytes(const lsync_ssh *s, uint64_t *sent, uint64_t *received) {
  if (sent)
    *sent = s->bytes_out;
  if (received)
    *received = s->bytes_in;
}

/* ---- the state machine ------------------------------------------------- */

/* Wait for what libssh2 is blocked on, then step again. */
static void wait_socket(lsync_ssh *s) {
  int dirs = libssh2_session_block_directions(s->sess), ev = 0;
  if (dirs & LIBSSH2_SESSION_BLOCK_INBOUND)
    ev |= UV_READABLE;
  if (dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND)
    ev |= UV_WRITABLE;
  uv_poll_start(&s->poll, ev ? ev : UV_READABLE, on_poll);
}

static void step(lsync_ssh *s) {
  int rc;
  for (;;) {
    switch (s->st) {
    case S_HANDSHAKE:
      rc = libssh2_session_handshake(s->sess, s->fd);
      if (rc == LIBSSH2_ERROR_EAGAIN)
        return wait_socket(s);
      if (rc) {
        fail(s, LSYNC_ECONNECT, "ssh handshake with %s:%u failed: %s",
             s->host, s->port, ssh_error(s));
        return;
      }
      if (check_host_key(s) < 0)
        return;
      s->st = S_AUTHLIST;
      break;
    case S_AUTHLIST: {
      const char *list =
          libssh2_userauth_list(s->sess, s->user, (unsigned)strlen(s->user));
      if (!list && libssh2_session_last_errno(s->sess) ==
                       LIBSSH2_ERROR_EAGAIN)
        return wait_socket(s);
      if (!list && libssh2_userauth_authenticated(s->sess)) {
        s->st = S_READY;
        break;
      }
      if (!list || !strstr(list, "publickey")) {
        fail(s, LSYNC_EAUTH, "%s@%s does not take public keys (offers: %s)",
             s->user, s->host, list ? list : ssh_error(s));
        return;
      }
      s->st = S_AUTH;
      break;
    }
    case S_AUTH:
      rc = try_keys(s);
      if (rc == LIBSSH2_ERROR_EAGAIN)
        return wait_socket(s);
      if (rc) {
        fail(s, LSYNC_EAUTH, "no key accepted for %s@%s (tried: %s)",
             s->user, s->host, s->tried[0] ? s->tried : "no key file found");
        return;
      }
      s->st = S_READY;
      break;
    case S_READY:
      s->st = S_LIVE;
      report(s, 0);
      return;
    case S_LIVE:
      return drive_chans(s);
    default:
      return;
    }
  }
}

static void on_poll(uv_poll_t *h, int status, int events) {
  lsync_ssh *s = h->data;
  (void)events;
  if (s->st == S_CONNECT) {
    /* A refused connect() may come as an error on the poll rather than
     * as writable: either way SO_ERROR says why. */
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
      err = errno;
    if (!err && status < 0)
      err = -status;
    if (err) {
      s->last_connect_err = err;
      uv_poll_stop(&s->poll);
      return try_address(s); /* the next address, if any */
    }
    if (!(s->sess = libssh2_session_init_ex(NULL, NULL, NULL, s))) {
      fail(s, LSYNC_ENOMEM, "out of memory");
      return;
    }
    libssh2_session_set_blocking(s->sess, 0);
    s->st = S_HANDSHAKE;
  } else if (status < 0 && s->st == S_LIVE) {
    fail_chans(s, uv_strerror(status));
    return;
  } else if (status < 0) {
    fail(s, LSYNC_ECONNECT, "connection to %s:%u: %s", s->host, s->port,
         uv_strerror(status));
    return;
  }
  step(s);
}

static void on_poll_closed_next(uv_handle_t *h) {
  lsync_ssh *s = h->data;
  s->pending--;
  s->poll_open = 0;
  close(s->fd);
  s->fd = -1;
  if (s->closing)
    return release(s);
  try_address(s);
}

/* Connect to the next resolved address; the poll handle of the previous
 * one is closed first. */
static void try_address(lsync_ssh *s) {
  if (s->poll_open) {
    s->pending++;
    uv_close((uv_handle_t *)&s->poll, on_poll_closed_next);
    return;
  }
  while (s->ai_next) {
    struct addrinfo *a = s->ai_next;
    s->ai_next = a->ai_next;
    int fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    0);
    if (fd < 0) {
      s->last_connect_err = errno;
      continue;
    }
    if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
      s->last_connect_err = errno;
      close(fd);
      continue;
    }
    s->fd = fd;
    uv_poll_init_socket(s->timer.loop, &s->poll, fd);
    s->poll.data = s;
    s->poll_open = 1;
    uv_poll_start(&s->poll, UV_WRITABLE, on_poll);
    return;
  }
  fail(s, LSYNC_ECONNECT, "cannot connect to %s:%u: %s", s->host, s->port,
       strerror(s->last_connect_err ? s->last_connect_err : EHOSTUNREACH));
}

static void on_resolved(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *ai) {
  lsync_ssh *s = req->data;
  s->gai_active = 0;
  s->ai = ai;
  if (s->closing) {
    s->pending--;
    return release(s);
  }
  if (status < 0) {
    fail(s, LSYNC_ECONNECT, "cannot resolve %s: %s", s->host,
         uv_strerror(status));
    return;
  }
  s->st = S_CONNECT;
  s->ai_next = ai;
  try_address(s);
}

static void on_timeout(uv_timer_t *t) {
  lsync_ssh *s = t->data;
  fail(s, LSYNC_ETIMEDOUT, "%s:%u did not answer within %u s", s->host,
       s->port, (s->timeout_ms + 999) / 1000);
}

/* ---- the interface ----------------------------------------------------- */

static int copy_opts(lsync_ssh *s, const lsync_ssh_opts *o) {
  struct passwd *pw = o->user ? NULL : getpwuid(getuid());
  s->host = strdup(o->host);
  s->user = o->user ? strdup(o->user) : pw ? strdup(pw->pw_name) : NULL;
  s->known_hosts = dup_or_null(o->known_hosts);
  s->alias = dup_or_null(o->host_key_alias);
  s->port = o->port ? o->port : 22;
  s->timeout_ms = o->timeout_ms ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
  s->accept_new = o->accept_new_host;
  static const char *const defaults[] = {".ssh/id_ed25519", ".ssh/id_ecdsa",
                                         ".ssh/id_rsa", NULL};
  if (o->identity_files) {
    for (size_t i = 0; o->identity_files[i] && s->nids < MAX_IDS; i++)
      if (!(s->ids[s->nids++] = strdup(o->identity_files[i])))
        return -1;
  } else {
    for (size_t i = 0; defaults[i]; i++)
      if (!(s->ids[s->nids++] = home_path(defaults[i])))
        return -1;
    const char *sock = getenv("SSH_AUTH_SOCK");
    s->use_agent = sock && *sock;
  }
  if (!s->host || !s->user || (o->known_hosts && !s->known_hosts) ||
      (o->host_key_alias && !s->alias))
    return -1;
  return 0;
}

static void free_fields(lsync_ssh *s) {
  free(s->host);
  free(s->user);
  free(s->known_hosts);
  free(s->alias);
  for (size_t i = 0; i < s->nids; i++)
    free(s->ids[i]);
  if (s->ai)
    uv_freeaddrinfo(s->ai);
}

int lsync_ssh_connect(lsync_ctx *ctx, const lsync_ssh_opts *o,
                      lsync_ssh_ready_cb on_ready, void *ud,
                      lsync_ssh **out) {
  *out = NULL;
  if (!o || !o->host || !*o->host || !on_ready || o->port > 65535)
    return lsync__fail(ctx, LSYNC_EINVAL,
                       "ssh: a host, a port up to 65535 and on_ready needed");
  pthread_once(&init_once, init_libssh2);
  if (init_rc)
    return lsync__fail(ctx, LSYNC_ESYS, "ssh: libssh2 cannot start");
  uv_loop_t *loop = lsync__loop(ctx);
  if (!loop)
    return LSYNC_ENOMEM;
  lsync_ssh *s = calloc(1, sizeof *s);
  if (!s || copy_opts(s, o) < 0) {
    if (s)
      free_fields(s);
    free(s);
    return lsync__fail(ctx, LSYNC_ENOMEM, "ssh: out of memory");
  }
  s->ctx = ctx;
  s->on_ready = on_ready;
  s->ud = ud;
  s->fd = -1;
  uv_timer_init(loop, &s->timer);
  s->timer.data = s;
  s->gai.data = s;
  char port[8];
  snprintf(port, sizeof port, "%u", s->port);
  struct addrinfo hints = {0};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int rc = uv_getaddrinfo(loop, &s->gai, on_resolved, s->host, port, &hints);
  if (rc < 0) {
    lsync__fail(ctx, LSYNC_ECONNECT, "ssh: cannot resolve %s: %s", s->host,
                uv_strerror(rc));
    lsync_ssh_free(s);
    return LSYNC_ECONNECT;
  }
  s->gai_active = 1;
  uv_timer_start(&s->timer, on_timeout, s->timeout_ms, 0);
  *out = s;
  return 0;
}

const char *lsync_ssh_errmsg(const lsync_ssh *s) {
  return s->errmsg;
}

const char *lsync_ssh_fingerprint(const lsync_ssh *s) {
  return s->fingerprint;
}

static void release(lsync_ssh *s) {
  if (s->pending)
    return;
  free_fields(s);
  free(s);
}

static void on_handle_closed(uv_handle_t *h) {
  lsync_ssh *s = h->data;
  if (h == (uv_handle_t *)&s->poll) {
    s->poll_open = 0;
    if (s->fd >= 0)
      close(s->fd);
    s->fd = -1;
  }
  s->pending--;
  release(s);
}

/* After free: the channels that were open learn it, then the timer goes.
 * The session's memory stays until then (`pending`), so they may still
 * read its message, or be abandoned. */
static void on_dead(uv_timer_t *t) {
  lsync_ssh *s = t->data;
  while (s->chans)
    chan_end(s, s->chans, LSYNC_ECANCELED);
  uv_close((uv_handle_t *)&s->timer, on_handle_closed);
}

void lsync_ssh_free(lsync_ssh *s) {
  if (!s || s->closing)
    return;
  s->closing = 1;
  if (s->sess) {
    /* One try at a polite goodbye, without waiting.  Then the socket is
     * shut so that libssh2, which frees in blocking mode, cannot wait on
     * a server that no longer answers (it would wait for each open
     * channel's close otherwise); then the session's memory, channels
     * included. */
    if (s->agent) {
      libssh2_agent_disconnect(s->agent);
      libssh2_agent_free(s->agent);
      s->agent = NULL;
    }
    if (s->st == S_LIVE)
      libssh2_session_disconnect(s->sess, "done");
    if (s->fd >= 0)
      shutdown(s->fd, SHUT_RDWR);
    for (lsync_ssh_chan *c = s->chans; c; c = c->next) {
      if (c->exit_signal)
        libssh2_free(s->sess, c->exit_signal);
      c->exit_signal = NULL;
    }
    libssh2_session_set_blocking(s->sess, 1);
    libssh2_session_free(s->sess);
    s->sess = NULL;
  }
  /* Channels still open end with ECANCELED, from the loop (on_dead). */
  for (lsync_ssh_chan **pp = &s->chans; *pp;) {
    lsync_ssh_chan *c = *pp;
    c->ch = NULL;
    c->dead = 1;
    if (c->abandoned) {
      *pp = c->next;
      chan_release(s, c);
    } else {
      pp = &c->next;
    }
  }
  snprintf(s->errmsg, sizeof s->errmsg, "%s: the session was closed",
           s->host);
  s->st = S_FAILED;
  s->pending++;
  if (s->chans)
    uv_timer_start(&s->timer, on_dead, 0, 0);
  else
    uv_close((uv_handle_t *)&s->timer, on_handle_closed);
  if (s->poll_open && !uv_is_closing((uv_handle_t *)&s->poll)) {
    s->pending++;
    uv_close((uv_handle_t *)&s->poll, on_handle_closed);
  } else if (!s->poll_open && s->fd >= 0) {
    close(s->fd);
    s->fd = -1;
  }
  if (s->gai_active) {
    s->pending++; /* on_resolved runs, with UV_ECANCELED or not */
    uv_cancel((uv_req_t *)&s->gai);
  }
}
