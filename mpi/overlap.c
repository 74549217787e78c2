/* overlap.c - gradient averaging, and optim_mpi_grad_ready, which starts
 * reducing gradient buckets while the caller's backward pass is still
 * producing the others.
 *
 * The averaging is laid out as a list of pieces (packed buckets of small
 * gradients in registration order, bucket-sized chunks of large ones), in
 * the same order on every rank: by the first grad_ready of a step, or by
 * optim_mpi_step when there was none.  A piece starts, with a
 * nonblocking collective, once all its parameters are ready and every
 * earlier piece has started, so all ranks start collectives in the same
 * order whatever order they mark gradients in.  optim_mpi_step starts the
 * rest, waits, and finishes each piece (unpack) as the blocking path
 * does, so the results are the same bits.  The pieces hold sums: the
 * step applies 1/p as it reads them (optim_step_scaled), which costs no
 * pass over memory. */
#include <stdlib.h>
#include <string.h>

#include "mpi-internal.h"

enum { P_PACKED, P_ALL, P_OWNER, P_RANGES, P_ORDERED };

typedef struct piece {
  int kind, dtype;
  int first_seg, nseg;   /* packed: segments in d->ov_seg* */
  int param;             /* in place: the parameter */
  size_t off, cnt;       /* in place: element range; packed: elements */
  int missing;           /* parameters not ready yet */
  unsigned char *buf;    /* packed: the bucket; ranges: this rank's block */
  int flat;              /* packed, but the segments lie back to back in the
                          * caller's memory (a flat arena): buf points there
                          * and nothing is copied */
  int *counts;           /* ranges: per-rank block sizes */
  size_t mine, at;       /* ranges: this rank's block size and offset */
  MPI_Request req;
} piece;

struct optim_mpi_overlap {
  piece *p;
  int n, cap, next;
  int *seg_idx;
  size_t *seg_off, *seg_len;
  int nseg, cap_seg;
  unsigned char *ready;
  int *first, *last;     /* pieces of each parameter: [first, last] */
  int blocking;          /* no grad_ready this step: blocking collectives */
};

static void ov_free(struct optim_mpi_overlap *o)
{
  if (!o) return;
  for (int k = 0; k < o->n; k++) free(o->p[k].counts); /* (bufs are the pool's) */
  free(o->p);
  free(o->seg_idx);
  free(o->seg_off);
  free(o->seg_len);
  free(o->ready);
  free(o->first);
  free(o->last);
  free(o);
}

void optim_mpi__overlap_free(optim_mpi *d)
{
  ov_free(d->ov);
  d->ov = NULL;
}

/* The pool's buffer k, of at least bytes bytes. */
static unsigned char *pool_get(optim_mpi *d, int k, size_t bytes)
{
  if (k >= d->npool) {
    int n = k + 16;
    unsigned char **a = realloc(d->pool, sizeof *a * (size_t)n);
    if (a) d->pool = a;
    size_t *b = realloc(d->pool_size, sizeof *b * (size_t)n);
    if (b) d->pool_size = b;
    if (!a || !b) return NULL;
    for (int j = d->npool; j < n; j++) {
      d->pool[j] = NULL;
      d->pool_size[j] = 0;
    }
    d->npool = n;
  }
  if (d->pool_size[k] < bytes) {
    free(d->pool[k]);
    d->pool[k] = malloc(bytes);
    d->pool_size[k] = d->pool[k] ? bytes : 0;
  }
  return d->pool[k];
}

static piece *add_piece(struct optim_mpi_overlap *o)
{
  if (o->n == o->cap) {
    int cap = o->cap ? 2 * o->cap : 16;
    piece *p = realloc(o->p, sizeof *p * (size_t)cap);
    if (!p) return NULL;
    o->p = p;
    o->cap = cap;
  }
  piece *p = &o->p[o->n++];
  memset(p, 0, sizeof *p);
  p->req = MPI_REQUEST_NULL;
  return p;
}

static int add_seg(struct optim_mpi_overlap *o, int param, size_t off, size_t len)
{
  if (o->nseg == o->cap_seg) {
    int cap = o->cap_seg ? 2 * o->cap_seg : 64;
    int *a = realloc(o->seg_idx, sizeof *a * (size_t)cap);
    size_t *b = realloc(o->seg_off, sizeof *b * (size_t)cap);
    size_t *c = realloc(o->seg_len, sizeof *c * (size_t)cap);
    if (a) o->seg_idx = a;
    if (b) o->seg_off = b;
    if (c) o->seg_len = c;
    if (!a || !b || !c) return -1;
    o->cap_seg = cap;
  }
  o->seg_idx[o->nseg] = param;
  o->seg_off[o->nseg] = off;
  o->seg_len[o->nseg] = len;
  o->nseg++;
  return 0;
}

static void note_param(struct optim_mpi_overlap *o, int param, int k)
{
  if (o->first[param] < 0) o->first[param] = k;
  o->last[param] = k;
}

/* The plan: exactly the pieces optim_mpi__average would reduce. */
static int plan(optim_mpi *d)
{
  struct optim_mpi_overlap *o = calloc(1, sizeof *o);
  if (!o) return optim_mpi__fail(d, OPTIM_ENOMEM, "out of memory");
  o->ready = calloc((size_t)d->nparams + 1, 1);
  o->first = malloc(sizeof *o->first * ((size_t)d->nparams + 1));
  o->last = malloc(sizeof *o->last * ((size_t)d->nparams + 1));
  if (!o->ready || !o->first || !o->last) {
    ov_free(o);
    return optim_mpi__fail(d, OPTIM_ENOMEM, "out of memory");
  }
  for (int i = 0; i < d->nparams; i++) o->first[i] = o->last[i] = -1;
  int mpi = d->reduce_mode == OPTIM_MPI_REDUCE_MPI;
  for (int dtype = OPTIM_FLOAT32; dtype <= OPTIM_FLOAT64; dtype++) {
    size_t es = dtype == OPTIM_FLOAT32 ? 4 : 8, cap = d->bucket_bytes / es * es, used = 0;
    piece *cur = NULL;
    for (int i = 0; i < d->nparams; i++) {
      int dt, ndim;
      int64_t shape[OPTIM_MAX_DIMS];
      const void *g;
      optim_param_info(d->opt, i, NULL, NULL, &dt, &ndim, shape);
      optim_param_buffers(d->opt, i, NULL, &g);
      if (dt != dtype || g == NULL) continue;
      size_t n = 1, done = 0;
      for (int k = 0; k < ndim; k++) n *= (size_t)shape[k];
      if (n * es >= cap / 2) {
        int kind = !mpi ? P_ORDERED
                        : d->owner[i] >= 0 ? P_OWNER : optim_mpi__ranged(d, i) ? P_RANGES : P_ALL;
        for (size_t off = 0; off < n; off += cap / es) {
          piece *p = add_piece(o);
          if (!p) goto oom;
          p->kind = kind;
          p->dtype = dtype;
          p->param = i;
          p->off = off;
          p->cnt = n - off < cap / es ? n - off : cap / es;
          p->missing = 1;
          if (kind == P_RANGES) {
            p->counts = malloc(sizeof *p->counts * (size_t)d->size);
            if (!p->counts) goto oom;
            for (int r = 0; r < d->size; r++) {
              size_t lo, hi;
              optim_mpi__range(d, i, n, r, &lo, &hi);
              size_t a = lo > off ? lo : off, b = hi < off + p->cnt ? hi : off + p->cnt;
              p->counts[r] = b > a ? (int)(b - a) : 0;
              if (r == d->rank) {
                p->mine = (size_t)p->counts[r];
                p->at = a;
              }
            }
            p->buf = pool_get(d, o->n - 1, p->mine * es + 1);
            if (!p->buf) goto oom;
          }
          note_param(o, i, o->n - 1);
        }
        continue;
      }
      while (done < n) {
        if (cur == NULL) {
          cur = add_piece(o);
          if (!cur) goto oom;
          cur->kind = mpi ? P_PACKED : P_ORDERED;
          cur->dtype = dtype;
          cur->first_seg = o->nseg;
          used = 0;
        }
        size_t take = (cap - used) / es;
        if (take > n - done) take = n - done;
        if (add_seg(o, i, done, take)) goto oom;
        cur->nseg++;
        if (o->last[i] != o->n - 1) cur->missing++;
        note_param(o, i, o->n - 1);
        used += take * es;
        done += take;
        cur->cnt = used / es;
        if (used == cap || cur->nseg == OPTIM_MPI_MAXSEG) cur = NULL;
      }
    }
  }
  /* packed buckets get their own buffers (several can be in flight),
   * unless their gradients are contiguous in memory */
  for (int k = 0; k < o->n; k++)
    if (o->p[k].kind == P_PACKED || (o->p[k].kind == P_ORDERED && o->p[k].nseg > 0)) {
      size_t es = o->p[k].dtype == OPTIM_FLOAT32 ? 4 : 8;
      unsigned char *base = NULL, *end = NULL;
      int flat = 1;
      for (int s = o->p[k].first_seg; flat && s < o->p[k].first_seg + o->p[k].nseg; s++) {
        const void *g;
        optim_param_buffers(d->opt, o->seg_idx[s], NULL, &g);
        unsigned char *at = (unsigned char *)g + o->seg_off[s] * es;
        if (base == NULL) base = at;
        else flat = at == end;
        end = at + o->seg_len[s] * es;
      }
      if (flat) {
        o->p[k].buf = base;
        o->p[k].flat = 1;
        continue;
      }
      o->p[k].buf = pool_get(d, k, o->p[k].cnt * es + 1);
      if (!o->p[k].buf) goto oom;
    }
  d->ov = o;
  return OPTIM_OK;
oom:
  ov_free(o);
  return optim_mpi__fail(d, OPTIM_ENOMEM, "out of memory");
}

static int start(optim_mpi *d, piece *p)
{
  size_t es = p->dtype == OPTIM_FLOAT32 ? 4 : 8;
  MPI_Datatype t = p->dtype == OPTIM_FLOAT32 ? MPI_FLOAT : MPI_DOUBLE;
  struct optim_mpi_overlap *o = d->ov;
  int e;
  if (p->nseg > 0 && !p->flat) { /* packed: copy the gradients in */
    size_t pos = 0;
    for (int s = p->first_seg; s < p->first_seg + p->nseg; s++) {
      const void *g;
      optim_param_buffers(d->opt, o->seg_idx[s], NULL, &g);
      memcpy(p->buf + pos, (const char *)g + o->seg_off[s] * es, o->seg_len[s] * es);
      pos += o->seg_len[s] * es;
    }
  }
  if (p->kind == P_ORDERED) {
    e = MPI_SUCCESS; /* blocking, in order, when the step finishes the pieces */
  } else if (o->blocking) {
    /* (MPI's blocking collectives are tuned; its nonblocking ones are
     * often slower, so they are only used to overlap) */
    double t0 = MPI_Wtime();
    if (p->kind == P_PACKED) {
      e = MPI_Allreduce(MPI_IN_PLACE, p->buf, (int)p->cnt, t, MPI_SUM, d->comm);
    } else {
      const void *g;
      optim_param_buffers(d->opt, p->param, NULL, &g);
      char *x = (char *)g + p->off * es;
      int owner = d->owner[p->param];
      if (p->kind == P_ALL)
        e = MPI_Allreduce(MPI_IN_PLACE, x, (int)p->cnt, t, MPI_SUM, d->comm);
      else if (p->kind == P_OWNER)
        e = MPI_Reduce(d->rank == owner ? MPI_IN_PLACE : x, x, (int)p->cnt, t, MPI_SUM, owner,
                       d->comm);
      else
        e = MPI_Reduce_scatter(x, p->buf, p->counts, t, MPI_SUM, d->comm);
    }
    d->comm_s += MPI_Wtime() - t0;
  } else if (p->kind == P_PACKED) {
    e = MPI_Iallreduce(MPI_IN_PLACE, p->buf, (int)p->cnt, t, MPI_SUM, d->comm, &p->req);
  } else {
    const void *g;
    optim_param_buffers(d->opt, p->param, NULL, &g);
    char *x = (char *)g + p->off * es;
    int owner = d->owner[p->param];
    if (p->kind == P_ALL)
      e = MPI_Iallreduce(MPI_IN_PLACE, x, (int)p->cnt, t, MPI_SUM, d->comm, &p->req);
    else if (p->kind == P_OWNER)
      e = MPI_Ireduce(d->rank == owner ? MPI_IN_PLACE : x, x, (int)p->cnt, t, MPI_SUM, owner,
                      d->comm, &p->req);
    else
      e = MPI_Ireduce_scatter(x, p->buf, p->counts, t, MPI_SUM, d->comm, &p->req);
  }
  if (e != MPI_SUCCESS) return optim_mpi__fail(d, OPTIM_EMPI, "a nonblocking reduction failed");
  double f = p->kind == P_ALL || p->kind == P_PACKED || p->kind == P_ORDERED ? 2.0 : 1.0;
  d->bytes += f * (double)(d->size - 1) / (double)d->size * (double)(p->cnt * es);
  d->messages += f * (d->size - 1);
  return OPTIM_OK;
}

/* Start every piece that is ready, in order. */
static int advance(optim_mpi *d)
{
  struct optim_mpi_overlap *o = d->ov;
  while (o->next < o->n && o->p[o->next].missing == 0) {
    int st = start(d, &o->p[o->next]);
    if (st) return st;
    o->next++;
  }
  return OPTIM_OK;
}

int optim_mpi_grad_ready(optim_mpi *d, int index)
{
  if (d == NULL || d->magic != OPTIM_MPI_MAGIC) return OPTIM_EINVAL;
  d->errmsg[0] = '\0';
  if (index < 0 || index >= d->nparams)
    return optim_mpi__fail(d, OPTIM_EINVAL, "parameter %d does not exist", index);
  if (d->reduce_mode != OPTIM_MPI_REDUCE_MPI)
    return optim_mpi__fail(d, OPTIM_ECONFIG, "grad_ready needs reduce=mpi");
  if (d->size == 1) return OPTIM_OK;
  if (d->ov == NULL) {
    d->bytes = d->messages = d->comm_s = d->compute_s = d->reduce_s = 0;
    int st = plan(d);
    if (st) return st;
  }
  struct optim_mpi_overlap *o = d->ov;
  if (o->ready[index]) return OPTIM_OK;
  o->ready[index] = 1;
  for (int k = o->first[index]; k >= 0 && k <= o->last[index]; k++) o->p[k].missing--;
  return advance(d);
}

int optim_mpi__overlap_finish(optim_mpi *d)
{
  struct optim_mpi_overlap *o = d->ov;
  int st = OPTIM_OK;
  for (int k = o->next; k < o->n && st == OPTIM_OK; k++) {
    o->p[k].missing = 0;
    st = start(d, &o->p[k]);
    if (st == OPTIM_OK) o->next = k + 1;
  }
  for (int k = 0; k < o->next; k++) {
    piece *p = &o->p[k];
    double t0 = MPI_Wtime();
    int e = MPI_Wait(&p->req, MPI_STATUS_IGNORE);
    d->comm_s += MPI_Wtime() - t0;
    if (e != MPI_SUCCESS && st == OPTIM_OK)
      st = optim_mpi__fail(d, OPTIM_EMPI, "a nonblocking reduction failed");
    if (st) continue;
    size_t es = p->dtype == OPTIM_FLOAT32 ? 4 : 8;
    if (p->kind == P_ORDERED) {
      const void *g = NULL;
      if (p->nseg == 0) optim_param_buffers(d->opt, p->param, NULL, &g);
      double t1 = MPI_Wtime();
      st = optim_mpi__ordered(d, p->dtype, p->nseg ? (void *)p->buf : (char *)g + p->off * es,
                              p->cnt);
      d->comm_s += MPI_Wtime() - t1;
      if (st) continue;
    }
    if (p->nseg > 0 && !p->flat) { /* packed: copy the sums out */
      size_t pos = 0;
      for (int s = p->first_seg; s < p->first_seg + p->nseg; s++) {
        const void *g;
        optim_param_buffers(d->opt, o->seg_idx[s], NULL, &g);
        memcpy((char *)g + o->seg_off[s] * es, p->buf + pos, o->seg_len[s] * es);
        pos += o->seg_len[s] * es;
      }
    } else if (p->kind == P_RANGES && p->mine > 0) { /* (the others were in place) */
      const void *g;
      optim_param_buffers(d->opt, p->param, NULL, &g);
      memcpy((char *)g + p->at * es, p->buf, p->mine * es);
    }
  }
  optim_mpi__overlap_free(d);
  return st;
}

int optim_mpi__average(optim_mpi *d)
{
  if (d->size == 1) return OPTIM_OK; /* the average of one gradient is itself */
  /* every rank must have its plan before any starts a collective */
  int st = optim_mpi__agree(d, plan(d));
  if (st) {
    optim_mpi__overlap_free(d);
    return st;
  }
  d->ov->blocking = 1;
  return optim_mpi__overlap_finish(d);
}
