/*
 * A small parallel-for for the serial tail of chunking (filling and
 * sorting the chunks of COUNT mode), which would otherwise leave all but
 * one core idle after a parallel crawl.  Threads take the next index from
 * a shared counter; the caller works too.  If no thread can be started the
 * caller does everything, so this never fails.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "internal.h"

struct pfor {
  void (*fn)(void *ctx, unsigned i);
  void *ctx;
  unsigned n;
  atomic_uint next;
};

static void *pfor_worker(void *arg) {
  struct pfor *p = arg;
  for (unsigned i; (i = atomic_fetch_add(&p->next, 1)) < p->n;)
    p->fn(p->ctx, i);
  return NULL;
}

#define MAX_WIDTH 16

unsigned lsync__parallel_width(void) {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  return cpus < 1 ? 1 : cpus > MAX_WIDTH ? MAX_WIDTH : (unsigned)cpus;
}

void lsync__parallel_for(unsigned n, void (*fn)(void *ctx, unsigned i),
                         void *ctx) {
  struct pfor p = {fn, ctx, n, 0};
  pthread_t th[MAX_WIDTH - 1];
  unsigned nth = 0, want = lsync__parallel_width() - 1;
  if (want > n / 2) /* a thread for fewer than two items is not worth it */
    want = n / 2;
  while (nth < want && pthread_create(&th[nth], NULL, pfor_worker, &p) == 0)
    nth++;
  pfor_worker(&p);
  for (unsigned i = 0; i < nth; i++)
    pthread_join(th[i], NULL);
}
