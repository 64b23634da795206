/* sc-traind's data-parallel layer over Open MPI (issue 8; docs/SCALING.md section 6).
 *
 * `mpirun -np N sc-traind ...` trains one model on N ranks. MPI is initialised only when the
 * process was started by an MPI launcher (OMPI_COMM_WORLD_SIZE, PMIX_RANK or PMI_RANK in the
 * environment), so a plain `sc-traind` never touches MPI and behaves exactly as before.
 *
 * Per step every rank: forwards its own b samples; all-reduces (SUM) the label document counts of
 * its batch together with a few control flags (bad labels, stop, checkpoint now); adds the GLOBAL
 * fraction DF/B to cap_fq, so the IDF statistics equal single-process training on the global batch
 * B = W*b (spec 2.1: the average of per-rank fractions equals DF/B; reducing integer counts makes it
 * exact and identical on every rank); computes weights with the smoothing term 1/B and its local
 * loss (mean over b); runs the backward, during which finished gradient buckets are all-reduced
 * with MPI_Iallreduce (ViT: a per-layer backward hook; CRU-Net: all buckets after the backward);
 * waits, and scales by 1/W. Every rank then takes the same AdamW step on identical gradients.
 *
 * Threads: only the training thread calls MPI (MPI_THREAD_FUNNELED). Errors: MPI calls return
 * codes (MPI_ERRORS_RETURN on the world communicator), which are logged; the caller then aborts
 * the job (a rank that cannot go on must not leave the others blocked in a collective). */
#include <errno.h>
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timing.h"
#include "nn/loss.h"
#include "pipeline/tok.h"
#include "traind.h"

static int mpi_fail(int mrc, const char *what)
{
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(mrc, s, &len) != MPI_SUCCESS) {
        snprintf(s, sizeof s, "MPI error %d", mrc);
    }
    core_log_err("MPI %s failed: %s (a rank died or the network failed)", what, s);
    return CORE_ESTATE;
}

/* Propagates a negative code (functions that have nothing to clean up). */
#define TRY_RET(expr)                                                                              \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ < 0) {                                                                             \
            return rc_;                                                                            \
        }                                                                                          \
    } while (0)

#define MPI_TRY(call, what)                                                                        \
    do {                                                                                           \
        int mrc_ = (call);                                                                         \
        if (mrc_ != MPI_SUCCESS) {                                                                 \
            return mpi_fail(mrc_, what);                                                           \
        }                                                                                          \
    } while (0)

int traind__dist_launched(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") != NULL || getenv("PMIX_RANK") != NULL ||
           getenv("PMI_RANK") != NULL;
}

int traind__dist_init(int *argc, char ***argv, traind_dist_t *d)
{
    memset(d, 0, sizeof *d);
    d->world = d->local_world = d->nodes = 1;
    if (gethostname(d->host, sizeof d->host - 1) != 0) {
        snprintf(d->host, sizeof d->host, "localhost");
    }
    char *dot = strchr(d->host, '.');
    if (dot != NULL) {
        *dot = '\0';
    }
    if (!traind__dist_launched()) {
        return 0;
    }
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        core_log_err("MPI_Init_thread failed");
        return CORE_ESTATE;
    }
    d->on = 1;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->world);
    MPI_Comm local;
    MPI_TRY(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL,
                                &local),
            "MPI_Comm_split_type");
    MPI_Comm_rank(local, &d->local_rank);
    MPI_Comm_size(local, &d->local_world);
    MPI_Comm_free(&local);
    /* The node index: the number of node leaders (local rank 0) among the ranks up to this one,
     * minus one (mpirun's default by-slot mapping gives a node consecutive ranks). */
    int leader = d->local_rank == 0, upto = 0, nodes = 0;
    MPI_TRY(MPI_Scan(&leader, &upto, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD), "MPI_Scan");
    MPI_TRY(MPI_Allreduce(&leader, &nodes, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
    d->node = upto - 1;
    d->nodes = nodes;
    return 0;
}

void traind__dist_finalize(traind_dist_t *d)
{
    if (d->on) {
        MPI_Finalize();
        d->on = 0;
    }
}

void traind__dist_abort(traind_dist_t *d, int code)
{
    if (d->on) {
        MPI_Abort(MPI_COMM_WORLD, code);
    }
}

int traind__dist_expand(const traind_dist_t *d, const char *tmpl, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = tmpl; *p != '\0';) {
        char num[96];
        const char *rep = NULL;
        size_t skip = 0;
        if (strncmp(p, "{local_rank}", 12) == 0) {
            snprintf(num, sizeof num, "%d", d->local_rank);
            rep = num;
            skip = 12;
        } else if (strncmp(p, "{rank}", 6) == 0) {
            snprintf(num, sizeof num, "%d", d->rank);
            rep = num;
            skip = 6;
        } else if (strncmp(p, "{node}", 6) == 0) {
            snprintf(num, sizeof num, "%d", d->node);
            rep = num;
            skip = 6;
        } else if (strncmp(p, "{host}", 6) == 0) {
            rep = d->host;
            skip = 6;
        }
        if (rep != NULL) {
            size_t n = strlen(rep);
            if (o + n >= cap) {
                return CORE_ETOO_LARGE;
            }
            memcpy(out + o, rep, n);
            o += n;
            p += skip;
        } else {
            if (o + 1 >= cap) {
                return CORE_ETOO_LARGE;
            }
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
    return 0;
}

/* ---- collectives ------------------------------------------------------------------------------ */

int traind__dist_bcast(const traind_dist_t *d, void *buf, size_t bytes)
{
    if (!d->on) {
        return 0;
    }
    uint8_t *p = buf;
    while (bytes > 0) {
        int n = bytes > (size_t)(1 << 30) ? (1 << 30) : (int)bytes;
        MPI_TRY(MPI_Bcast(p, n, MPI_BYTE, 0, MPI_COMM_WORLD), "MPI_Bcast");
        p += n;
        bytes -= (size_t)n;
    }
    return 0;
}

int traind__dist_sum_u32(const traind_dist_t *d, uint32_t *buf, size_t n)
{
    if (!d->on) {
        return 0;
    }
    MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_UINT32_T, MPI_SUM, MPI_COMM_WORLD),
            "MPI_Allreduce");
    return 0;
}

int traind__dist_sum_f64(const traind_dist_t *d, double *buf, size_t n)
{
    if (!d->on) {
        return 0;
    }
    MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD),
            "MPI_Allreduce");
    return 0;
}

int traind__dist_any(const traind_dist_t *d, int flag, int *any)
{
    *any = flag != 0;
    if (!d->on) {
        return 0;
    }
    int in = flag != 0, out = 0;
    MPI_TRY(MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
    *any = out;
    return 0;
}

int traind__dist_gather_u64(const traind_dist_t *d, const uint64_t *mine, size_t n, uint64_t *all)
{
    if (!d->on) {
        memcpy(all, mine, n * sizeof *mine);
        return 0;
    }
    MPI_TRY(MPI_Gather(mine, (int)n, MPI_UINT64_T, all, (int)n, MPI_UINT64_T, 0, MPI_COMM_WORLD),
            "MPI_Gather");
    return 0;
}

int traind__dist_allgather_u32(const traind_dist_t *d, uint32_t mine, uint32_t *all)
{
    if (!d->on) {
        all[0] = mine;
        return 0;
    }
    MPI_TRY(MPI_Allgather(&mine, 1, MPI_UINT32_T, all, 1, MPI_UINT32_T, MPI_COMM_WORLD),
            "MPI_Allgather");
    return 0;
}

/* Broadcasts every tensor (data, AdamW moments, buffers) and the AdamW step from rank 0, then
 * checks that every rank holds the same bytes (CRC32C over the table, as in checkpoints). */
int traind__dist_bcast_model(const traind_dist_t *d, traind_model_t *m)
{
    if (!d->on) {
        return 0;
    }
    size_t n = traind__model_num_tensors(m);
    for (size_t i = 0; i < n; i++) {
        nn_tensor_t t;
        int rc = traind__model_tensor(m, i, &t);
        if (rc < 0) {
            return rc;
        }
        size_t bytes = t.numel * (t.dtype == NN_DTYPE_F64 ? 8 : 4);
        TRY_RET(traind__dist_bcast(d, t.data, bytes));
        if (!t.is_buffer && t.m != NULL) {
            TRY_RET(traind__dist_bcast(d, t.m, bytes));
            TRY_RET(traind__dist_bcast(d, t.v, bytes));
        }
    }
    int64_t step = traind__model_opt_step(m);
    TRY_RET(traind__dist_bcast(d, &step, sizeof step));
    traind__model_set_opt_step(m, step);
    return traind__dist_check_same(d, m, "after the initial broadcast");
}

int traind__dist_check_same(const traind_dist_t *d, const traind_model_t *m, const char *when)
{
    if (!d->on) {
        return 0;
    }
    uint32_t crc = traind__ckpt_crc(m);
    uint32_t *all = core_calloc((size_t)d->world, sizeof *all);
    if (all == NULL) {
        return CORE_ERR(ENOMEM);
    }
    int rc = traind__dist_allgather_u32(d, crc, all);
    for (int r = 0; r < d->world && rc == 0; r++) {
        if (all[r] != all[0]) {
            core_log_err("rank %d's model (CRC32C %08x) differs from rank 0's (%08x) %s: the "
                         "ranks diverged",
                         r, all[r], all[0], when);
            rc = CORE_EMISMATCH;
        }
    }
    if (rc == 0 && d->rank == 0) {
        core_log_info("all %d ranks hold identical weights and optimiser state (CRC32C %08x) %s",
                      d->world, crc, when);
    }
    core_free(all);
    return rc;
}

/* ---- the distributed SuperClass loss -------------------------------------------------------- */

int traind__dist_loss(traind_dist_t *d, traind_model_t *m, const uint32_t *off,
                      const uint32_t *ids, int use_idf, uint32_t flags_in[TRAIND_DIST_NFLAGS],
                      float *loss_out)
{
    int B = m->batch, V = m->vocab;
    size_t n = (size_t)V + TRAIND_DIST_NFLAGS;
    if (d->counts == NULL) {
        d->counts = core_calloc(n, sizeof *d->counts);
        d->tw = core_malloc((size_t)B * PL_TOK_CONTEXT * sizeof *d->tw);
        if (d->counts == NULL || d->tw == NULL) {
            return CORE_ERR(ENOMEM);
        }
    }
    memset(d->counts, 0, n * sizeof *d->counts);
    int bad = nn_labels_check(off, ids, B, V) < 0 || off[B] > (uint32_t)B * PL_TOK_CONTEXT;
    uint32_t *fl = d->counts + V;
    memcpy(fl, flags_in, TRAIND_DIST_NFLAGS * sizeof *fl);
    fl[TRAIND_DIST_BAD] = (uint32_t)bad;
    if (use_idf && !bad) {
        /* document counts: labels are unique per sample, so each id counts once per sample */
        for (uint32_t j = 0; j < off[B]; j++) {
            d->counts[ids[j]]++;
        }
    }
    double t0 = core_now_s();
    /* Only the flags when the IDF is off. */
    TRY_RET(traind__dist_sum_u32(d, use_idf ? d->counts : fl,
                                      use_idf ? n : TRAIND_DIST_NFLAGS));
    d->t_idf += core_now_s() - t0;
    memcpy(flags_in, fl, TRAIND_DIST_NFLAGS * sizeof *fl);
    if (fl[TRAIND_DIST_BAD] != 0) {
        return CORE_ECORRUPT; /* on every rank: the step is skipped everywhere */
    }
    int b_global = B * d->world;
    nn_idf_t idf;
    if (use_idf) {
        TRY_RET(traind__model_idf(m, &idf));
        /* spec 2.1: the fraction formed in fp32, accumulated in fp64, exactly as nn_sc_loss does
         * for one process with the whole global batch */
        for (int c = 0; c < V; c++) {
            if (d->counts[c] != 0) {
                idf.cap_fq[c] += (double)((float)d->counts[c] / (float)b_global);
            }
        }
        *idf.num_samples += 1.0;
    }
    nn_sc_loss_targets(loss_out, traind__model_dlogits(m), traind__model_logits(m), off, ids, B, V,
                       use_idf ? &idf : NULL, use_idf, b_global, d->tw);
    return 0;
}

/* ---- bucketed gradient all-reduce ----------------------------------------------------------- */

typedef struct bucket_s {
    size_t t_lo, t_hi; /* tensors [t_lo, t_hi) */
    float *p;          /* first float */
    size_t n;          /* floats */
    int started;
    MPI_Request req;
} bucket_t;

struct traind_reducer_s {
    traind_dist_t *d;
    traind_model_t *m;
    bucket_t *b; /* in reduce order: last tensors first */
    size_t nb, next;
    int overlap;
};

static int start_bucket(traind_reducer_t *r, bucket_t *b)
{
    b->started = 1;
    int mrc = MPI_Iallreduce(MPI_IN_PLACE, b->p, (int)b->n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                             &b->req);
    if (mrc != MPI_SUCCESS) {
        b->req = MPI_REQUEST_NULL;
        return mpi_fail(mrc, "MPI_Iallreduce");
    }
    (void)r;
    return 0;
}

/* Starts every bucket whose tensors are all final, and lets MPI progress the ones in flight (Open
 * MPI progresses non-blocking collectives only inside MPI calls). */
static void on_backward(void *ctx, size_t first_final)
{
    traind_reducer_t *r = ctx;
    double t0 = core_now_s();
    while (r->next < r->nb && r->b[r->next].t_lo >= first_final) {
        if (start_bucket(r, &r->b[r->next]) < 0) {
            r->d->failed = 1;
        }
        r->next++;
    }
    for (size_t i = 0; i < r->next; i++) {
        int done = 0;
        if (r->b[i].req != MPI_REQUEST_NULL) {
            (void)MPI_Test(&r->b[i].req, &done, MPI_STATUS_IGNORE);
        }
    }
    r->d->t_hook += core_now_s() - t0;
}

int traind__dist_reducer_new(traind_dist_t *d, traind_model_t *m, double bucket_mb, int overlap,
                             traind_reducer_t **out)
{
    *out = NULL;
    if (!d->on || d->world < 2) {
        return 0;
    }
    traind_reducer_t *r = core_calloc(1, sizeof *r);
    size_t nt = traind__model_num_tensors(m);
    if (r == NULL || (r->b = core_calloc(nt ? nt : 1, sizeof *r->b)) == NULL) {
        core_free(r);
        return CORE_ERR(ENOMEM);
    }
    r->d = d;
    r->m = m;
    size_t cap = (size_t)(bucket_mb * 1e6 / sizeof(float));
    if (cap < 1) {
        cap = 1;
    }
    /* Walk the trainable tensors from the last to the first (the order the backward finishes
     * them), merging neighbours whose gradients are adjacent in memory (up to 64 floats of the
     * arena's zero padding between them) until a bucket holds `cap` floats. */
    bucket_t *cur = NULL;
    for (size_t i = nt; i-- > 0;) {
        nn_tensor_t t;
        if (traind__model_tensor(m, i, &t) < 0 || t.is_buffer || t.grad == NULL) {
            continue;
        }
        if (cur != NULL && cur->t_lo == i + 1 && t.grad + t.numel <= cur->p &&
            cur->p - (t.grad + t.numel) <= 64 && cur->n + (size_t)(cur->p - t.grad) <= cap) {
            cur->n += (size_t)(cur->p - t.grad);
            cur->p = t.grad;
            cur->t_lo = i;
            continue;
        }
        cur = &r->b[r->nb++];
        cur->t_lo = i;
        cur->t_hi = i + 1;
        cur->p = t.grad;
        cur->n = t.numel;
        cur->req = MPI_REQUEST_NULL;
    }
    for (size_t k = 0; k < r->nb; k++) {
        if (r->b[k].n > (size_t)INT_MAX) {
            core_log_err("gradient bucket of %zu floats exceeds MPI's int count", r->b[k].n);
            core_free(r->b);
            core_free(r);
            return CORE_ETOO_LARGE;
        }
    }
    /* One untimed round over every bucket (the gradients are overwritten by the next
     * zero_grad + backward, so their contents do not matter): Open MPI's shared-memory transport
     * takes a few slow rounds on fresh buffers (0.5-3 s for 60 MB on the test machine, against
     * ~0.1 s once warm), which otherwise land in the first steps' timings. */
    r->d = d;
    for (size_t k = 0; k < r->nb; k++) {
        r->b[k].req = MPI_REQUEST_NULL;
    }
    r->next = 0;
    int wrc = traind__dist_reducer_finish(r);
    d->t_wait = 0;
    if (wrc < 0) {
        core_free(r->b);
        core_free(r);
        return wrc;
    }
    r->overlap = overlap && !m->is_cru; /* the CRU-Net backward has no progress hook */
    if (r->overlap) {
        traind__model_set_backward_hook(m, on_backward, r);
    }
    if (d->rank == 0) {
        size_t total = 0;
        for (size_t k = 0; k < r->nb; k++) {
            total += r->b[k].n;
        }
        core_log_info("gradient all-reduce: %zu buckets (%.1f MB in all, bucket limit %.2f MB), "
                      "%s",
                      r->nb, (double)total * 4e-6, bucket_mb,
                      r->overlap ? "started during the backward pass (per-layer hook)"
                                 : "after the backward pass");
    }
    *out = r;
    return 0;
}

void traind__dist_reducer_begin(traind_reducer_t *r)
{
    if (r == NULL) {
        return;
    }
    r->next = 0;
    for (size_t k = 0; k < r->nb; k++) {
        r->b[k].started = 0;
        r->b[k].req = MPI_REQUEST_NULL;
    }
}

int traind__dist_reducer_finish(traind_reducer_t *r)
{
    if (r == NULL) {
        return 0;
    }
    traind_dist_t *d = r->d;
    double t0 = core_now_s();
    int rc = d->failed ? CORE_ESTATE : 0;
    while (r->next < r->nb && rc == 0) {
        rc = start_bucket(r, &r->b[r->next++]);
    }
    for (size_t k = 0; k < r->nb; k++) {
        if (r->b[k].req != MPI_REQUEST_NULL) {
            int mrc = MPI_Wait(&r->b[k].req, MPI_STATUS_IGNORE);
            if (mrc != MPI_SUCCESS && rc == 0) {
                rc = mpi_fail(mrc, "MPI_Wait (gradient all-reduce)");
            }
        }
    }
    /* average: the sum of W per-rank means over b is W times the mean over the global batch */
    float inv = 1.0f / (float)d->world;
    for (size_t k = 0; k < r->nb && rc == 0; k++) {
        float *p = r->b[k].p;
        for (size_t i = 0; i < r->b[k].n; i++) {
            p[i] *= inv;
        }
    }
    d->t_wait += core_now_s() - t0;
    return rc;
}

void traind__dist_reducer_free(traind_reducer_t *r)
{
    if (r == NULL) {
        return;
    }
    traind__model_set_backward_hook(r->m, NULL, NULL);
    core_free(r->b);
    core_free(r);
}

void traind__dist_free_scratch(traind_dist_t *d)
{
    core_free(d->counts);
    core_free(d->tw);
    d->counts = NULL;
    d->tw = NULL;
}
