/*
 * _lapcore: exact rectangular linear assignment (T rows <= P columns, minimisation).
 *
 * Problem: min sum_i scale[i] * cost[i][x(i)] over one-to-one x (rows into columns).
 * A row's value of column j is scale[i] * cost[i][j] + price[j]; rows seek the smallest.
 * Optimality: every row on a cheapest column, and every unassigned column at the lowest
 * price. For any prices, sum_i min_j value(i, j) + (P - T) min_j price - sum_j price is a
 * lower bound on the optimum (the dual of the problem padded with P - T zero rows).
 *
 * Two modes. With `dummies`, P - T implicit dummy rows of cost 0 (never stored) make the
 * problem square (best when P - T is small: the dummies keep the spare columns at the
 * lowest price all along). Without, only the T rows bid (best when P >> T, where many
 * identical dummy rows would fight over the cheap columns).
 *
 * 1. An epsilon-scaling forward auction (Bertsekas) with candidate lists: each row keeps
 *    its K cheapest columns and a threshold below which no other column can be. Prices
 *    only rise, so the threshold stays a lower bound; a bid reads the list and rescans
 *    the whole row only when the list is exhausted.
 * 2. Exact finish: every row not on an exactly cheapest column is freed and inserted
 *    again by a shortest augmenting path (Dijkstra, as in Jonker-Volgenant) from the
 *    auction prices, which makes the assignment optimal in double arithmetic, not just
 *    epsilon-optimal. (Without dummies, unassigned columns are first lowered to the
 *    lowest price, see make_exact_rows.)
 *
 * The auction runs on `threads` workers (POSIX threads) bidding asynchronously: a bid is
 * computed without a lock from prices that can only have risen since, and committed
 * under the lock only if its column's price is unchanged.
 *
 * Python interface (buffer protocol, no NumPy headers needed):
 *   solve(cost, scale, eps, k_list, threads, dummies, col_of_row, prices, stats) -> None
 *   lower_bound(cost, scale, prices) -> float
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define LC_INF HUGE_VAL
#define LC_BLOCK 16
/* Column lowerings one row may cause in the exact stage before it is freed instead:
 * two rows can lower each other's columns by ever smaller slacks (a CI build once spun
 * there for minutes). A freed row is inserted by a shortest augmenting path: still exact. */
#define LC_MAX_LOWERINGS 16

enum {
    LC_STAT_BIDS,
    LC_STAT_SCANS,
    LC_STAT_RETRIES,
    LC_STAT_SAP_ROWS,
    LC_STAT_SAP_SCANNED,
    LC_STAT_DEEP,
    LC_STAT_THREADS,
    LC_STAT_LOWERED,
    LC_STAT_NS_AUCTION,
    LC_STAT_NS_EXACT,
    LC_N_STATS
};

#define LC_MAX_THREADS 64

/* State shared by the workers. */
typedef struct {
    int64_t n_real, n_cols, n_rows, k_list, n_threads, n_eps;
    const void *cost;
    int cost_is_double;
    const double *scale, *eps;
    double *prices;
    int64_t *col_of_row, *row_of_col;
    /* Candidate lists: one per real row, then one dummy-row list per worker. */
    int64_t *cand_j;
    double *cand_c, *thresh;
    /* Free rows waiting to bid, and the rows being bid for right now. */
    int64_t *queue;
    int64_t head, n_queue, in_flight;
    pthread_mutex_t lock;
    pthread_cond_t wake, turn;
    int64_t at_barrier, barrier_round;
    /* Exact stage (one worker). */
    double *u, *dist, *rows_d, *heap_k, *pend_d, *pend_bound;
    int64_t *free_rows, *path, *touched, *rows_seen, *heap_j, *pend_row, *pend_depth;
    unsigned char *final, *heap_free;
    int64_t n_heap, heap_cap, n_touched;
} Shared;

/* One worker thread: scratch buffers and counters. */
typedef struct {
    Shared *s;
    int64_t tid;
    double *vals, *block_min, *sel_v;
    int64_t *sel_j, *freed;
    int64_t stats[LC_N_STATS];
} Worker;

/* Index of the candidate list of `row` for this worker. */
static inline int64_t list_of(const Worker *w, int64_t row)
{
    return row < w->s->n_real ? row : w->s->n_real + w->tid;
}

/* Queue operations: call with the lock held. */
static inline void queue_push(Shared *s, int64_t row)
{
    s->queue[(s->head + s->n_queue) % s->n_rows] = row;
    s->n_queue++;
}

static inline int64_t queue_pop(Shared *s)
{
    const int64_t row = s->queue[s->head];
    s->head = (s->head + 1) % s->n_rows;
    s->n_queue--;
    return row;
}

/* Wait until every worker has arrived. */
static void barrier_wait(Shared *s)
{
    pthread_mutex_lock(&s->lock);
    const int64_t round = s->barrier_round;
    if (++s->at_barrier == s->n_threads) {
        s->at_barrier = 0;
        s->barrier_round++;
        pthread_cond_broadcast(&s->turn);
    } else {
        while (s->barrier_round == round)
            pthread_cond_wait(&s->turn, &s->lock);
    }
    pthread_mutex_unlock(&s->lock);
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
/* The row scan is the hot loop: also compile it for AVX2 (picked at load time). */
#define LC_VECTOR __attribute__((target_clones("avx2", "default")))
#else
#define LC_VECTOR
#endif

static inline double lc_min(double a, double b) { return a < b ? a : b; }

/* Minimum of v[0..LC_BLOCK), as a tree (independent operations, no serial chain). */
static inline double min_block(const double *v)
{
    double a[8];
    for (int k = 0; k < 8; k++)
        a[k] = lc_min(v[k], v[k + 8]);
    for (int k = 0; k < 4; k++)
        a[k] = lc_min(a[k], a[k + 4]);
    return lc_min(lc_min(a[0], a[2]), lc_min(a[1], a[3]));
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void swap_pair(double *v, int64_t *ix, int64_t a, int64_t b)
{
    const double tv = v[a];
    const int64_t ti = ix[a];
    v[a] = v[b];
    ix[a] = ix[b];
    v[b] = tv;
    ix[b] = ti;
}

/* Reorder v[0..n) (and ix alike) so that v[k] is the (k+1)-th smallest, with no larger
 * value before it and no smaller one after it (Hoare-partition quickselect). */
static void select_kth(double *v, int64_t *ix, int64_t n, int64_t k)
{
    int64_t lo = 0, hi = n - 1;
    while (hi > lo) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (v[mid] < v[lo])
            swap_pair(v, ix, mid, lo);
        if (v[hi] < v[lo])
            swap_pair(v, ix, hi, lo);
        if (v[hi] < v[mid])
            swap_pair(v, ix, hi, mid);
        const double pivot = v[mid];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot)
                i++;
            while (v[j] > pivot)
                j--;
            if (i <= j) {
                swap_pair(v, ix, i, j);
                i++;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return;
    }
}

/* Sort v[0..n) ascending (and ix alike) by insertion; n is small. */
static void sort_small(double *v, int64_t *ix, int64_t n)
{
    for (int64_t a = 1; a < n; a++) {
        const double tv = v[a];
        const int64_t ti = ix[a];
        int64_t b = a;
        while (b > 0 && v[b - 1] > tv) {
            v[b] = v[b - 1];
            ix[b] = ix[b - 1];
            b--;
        }
        v[b] = tv;
        ix[b] = ti;
    }
}

/* Heap order of entries a, b: smaller distance first, then free columns first. */
static inline int heap_before(const Shared *s, int64_t a, int64_t b)
{
    return s->heap_k[a] < s->heap_k[b]
           || (s->heap_k[a] == s->heap_k[b] && s->heap_free[a] > s->heap_free[b]);
}

static inline void heap_swap(Shared *s, int64_t a, int64_t b)
{
    const double k = s->heap_k[a];
    const int64_t j = s->heap_j[a];
    const unsigned char f = s->heap_free[a];
    s->heap_k[a] = s->heap_k[b];
    s->heap_j[a] = s->heap_j[b];
    s->heap_free[a] = s->heap_free[b];
    s->heap_k[b] = k;
    s->heap_j[b] = j;
    s->heap_free[b] = f;
}

static void heap_sift_down(Shared *s, int64_t at)
{
    for (;;) {
        const int64_t l = 2 * at + 1, r = l + 1;
        int64_t m = at;
        if (l < s->n_heap && heap_before(s, l, m))
            m = l;
        if (r < s->n_heap && heap_before(s, r, m))
            m = r;
        if (m == at)
            return;
        heap_swap(s, at, m);
        at = m;
    }
}

/* Drop entries that are settled or superseded, then re-heapify (keeps the heap within
 * capacity: at most one live entry per column). */
static void heap_compact(Shared *s)
{
    int64_t n = 0;
    for (int64_t e = 0; e < s->n_heap; e++) {
        const int64_t j = s->heap_j[e];
        if (!s->final[j] && s->heap_k[e] == s->dist[j]) {
            s->heap_k[n] = s->heap_k[e];
            s->heap_j[n] = j;
            s->heap_free[n] = s->heap_free[e];
            n++;
        }
    }
    s->n_heap = n;
    for (int64_t e = n / 2 - 1; e >= 0; e--)
        heap_sift_down(s, e);
}

static void heap_push(Shared *s, double key, int64_t j)
{
    if (s->n_heap == s->heap_cap)
        heap_compact(s);
    int64_t at = s->n_heap++;
    s->heap_k[at] = key;
    s->heap_j[at] = j;
    s->heap_free[at] = s->row_of_col[j] < 0;
    while (at > 0) {
        const int64_t up = (at - 1) / 2;
        if (!heap_before(s, at, up))
            break;
        heap_swap(s, at, up);
        at = up;
    }
}

static void heap_pop(Shared *s)
{
    s->n_heap--;
    if (s->n_heap > 0) {
        heap_swap(s, 0, s->n_heap);
        heap_sift_down(s, 0);
    }
}

/* Label column j with distance nd reached from `row`, if that is shorter. */
static inline void label(Shared *s, int64_t j, double nd, int64_t row)
{
    if (nd < s->dist[j]) {
        if (s->dist[j] == LC_INF)
            s->touched[s->n_touched++] = j;
        s->dist[j] = nd;
        s->path[j] = row;
        heap_push(s, nd, j);
    }
}

/* Remember that `row` (at distance d_row) has unrelaxed columns at distance >= bound. */
static inline void pend(Shared *s, int64_t *n_pend, int64_t row, double d_row, double bound,
                        int64_t depth)
{
    s->pend_row[*n_pend] = row;
    s->pend_d[*n_pend] = d_row;
    s->pend_bound[*n_pend] = bound;
    s->pend_depth[*n_pend] = depth;
    (*n_pend)++;
}

/* Relax the candidate columns cols (scaled costs costs) of `row` at distance d_row. */
static void relax_list(Shared *s, int64_t row, double d_row, const int64_t *cols,
                       const double *costs)
{
    const double base = d_row - s->u[row];
    for (int64_t k = 0; k < s->k_list; k++) {
        const int64_t j = cols[k];
        if (j < 0)
            break;
        if (s->final[j])
            continue;
        label(s, j, base + (costs[k] + s->prices[j]), row);
    }
}

#define CT float
#define FN(name) name##_f32
#include "_lapcore_impl.h"
#undef CT
#undef FN

#define CT double
#define FN(name) name##_f64
#include "_lapcore_impl.h"
#undef CT
#undef FN

static void worker_free(Worker *w)
{
    free(w->vals);
    free(w->block_min);
    free(w->sel_v);
    free(w->sel_j);
    free(w->freed);
}

static int worker_init(Worker *w, Shared *s, int64_t tid)
{
    const size_t p = (size_t)s->n_cols;
    memset(w, 0, sizeof(*w));
    w->s = s;
    w->tid = tid;
    w->vals = malloc(p * sizeof(double));
    w->block_min = malloc((p / LC_BLOCK + 1) * sizeof(double));
    w->sel_v = malloc((p + 1) * sizeof(double));
    w->sel_j = malloc((p + 1) * sizeof(int64_t));
    w->freed = malloc(p * sizeof(int64_t));
    if (w->vals && w->block_min && w->sel_v && w->sel_j && w->freed)
        return 0;
    worker_free(w);
    return -1;
}

static void shared_free(Shared *s)
{
    void *blocks[] = {s->col_of_row, s->row_of_col, s->cand_j, s->cand_c, s->thresh,
                      s->queue, s->u, s->dist, s->rows_d, s->heap_k, s->pend_d,
                      s->pend_bound, s->free_rows, s->path, s->touched, s->rows_seen,
                      s->heap_j, s->pend_row, s->pend_depth, s->final, s->heap_free};
    for (size_t b = 0; b < sizeof(blocks) / sizeof(blocks[0]); b++)
        free(blocks[b]);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->wake);
    pthread_cond_destroy(&s->turn);
}

/* Allocate the shared arrays; prices (the caller's) are zeroed. Returns 0 on success. */
static int shared_init(Shared *s, const void *cost, int is_double, int64_t n_real,
                       int64_t n_cols, int dummies, int64_t k_list, int64_t n_threads,
                       const double *scale,
                       const double *eps, int64_t n_eps, double *prices)
{
    const size_t p = (size_t)n_cols, n_lists = (size_t)(n_real + n_threads);
    memset(s, 0, sizeof(*s));
    s->cost = cost;
    s->cost_is_double = is_double;
    s->n_real = n_real;
    s->n_cols = n_cols;
    s->n_rows = dummies ? n_cols : n_real;
    s->k_list = k_list;
    s->n_threads = n_threads;
    s->scale = scale;
    s->eps = eps;
    s->n_eps = n_eps;
    s->prices = prices;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wake, NULL);
    pthread_cond_init(&s->turn, NULL);
    s->heap_cap = 2 * (int64_t)p + 2;
    s->col_of_row = malloc(p * sizeof(int64_t));
    s->row_of_col = malloc(p * sizeof(int64_t));
    s->cand_j = malloc(n_lists * (size_t)k_list * sizeof(int64_t));
    s->cand_c = calloc(n_lists * (size_t)k_list, sizeof(double));
    s->thresh = malloc(n_lists * sizeof(double));
    s->queue = malloc(p * sizeof(int64_t));
    s->u = malloc(p * sizeof(double));
    s->dist = malloc(p * sizeof(double));
    s->rows_d = malloc(p * sizeof(double));
    s->heap_k = malloc((size_t)s->heap_cap * sizeof(double));
    s->pend_d = malloc(p * sizeof(double));
    s->pend_bound = malloc(p * sizeof(double));
    s->free_rows = malloc(p * sizeof(int64_t));
    s->path = malloc(p * sizeof(int64_t));
    s->touched = malloc(p * sizeof(int64_t));
    s->rows_seen = malloc(p * sizeof(int64_t));
    s->heap_j = malloc((size_t)s->heap_cap * sizeof(int64_t));
    s->pend_row = malloc(p * sizeof(int64_t));
    s->pend_depth = malloc(p * sizeof(int64_t));
    s->final = calloc(p, 1);
    s->heap_free = malloc((size_t)s->heap_cap);
    if (!(s->col_of_row && s->row_of_col && s->cand_j && s->cand_c && s->thresh && s->queue
          && s->u && s->dist && s->rows_d && s->heap_k && s->pend_d && s->pend_bound
          && s->free_rows && s->path && s->touched && s->rows_seen && s->heap_j
          && s->pend_row && s->pend_depth && s->final && s->heap_free)) {
        shared_free(s);
        return -1;
    }
    for (size_t j = 0; j < p; j++) {
        prices[j] = 0.0;
        s->col_of_row[j] = -1;
        s->row_of_col[j] = -1;
        s->dist[j] = LC_INF;
    }
    for (size_t k = 0; k < n_lists * (size_t)k_list; k++)
        s->cand_j[k] = -1;
    for (size_t r = 0; r < n_lists; r++)
        s->thresh[r] = -LC_INF;
    return 0;
}

static void *auction_thread(void *arg)
{
    Worker *w = arg;
    if (w->tid > 0) {
        /* Start once the launcher has settled the number of workers. */
        pthread_mutex_lock(&w->s->lock);
        pthread_mutex_unlock(&w->s->lock);
    }
    if (w->s->cost_is_double)
        auction_f64(w);
    else
        auction_f32(w);
    return NULL;
}

/*
 * Solve; col_of_row gets the first n_real entries. Returns the number of workers used
 * (at least 1), or -1 when out of memory.
 */
static int64_t run_solver(Shared *s, int64_t n_threads, int64_t *col_of_row, int64_t *stats)
{
    Worker workers[LC_MAX_THREADS];
    pthread_t threads[LC_MAX_THREADS];
    int64_t n_workers = 0;
    for (; n_workers < n_threads; n_workers++)
        if (worker_init(&workers[n_workers], s, n_workers) < 0)
            break;
    if (n_workers == 0)
        return -1;
    s->n_threads = n_workers;
    const int64_t started = now_ns();
    /* Helpers that fail to start are done without: the barrier counts started workers. */
    pthread_mutex_lock(&s->lock);
    int64_t n_started = 1;
    for (int64_t t = 1; t < n_workers; t++) {
        if (pthread_create(&threads[t], NULL, auction_thread, &workers[n_started]) != 0)
            break;
        n_started++;
    }
    s->n_threads = n_started;
    pthread_mutex_unlock(&s->lock);
    auction_thread(&workers[0]);
    for (int64_t t = 1; t < n_started; t++)
        pthread_join(threads[t], NULL);
    const int64_t auctioned = now_ns();
    if (s->cost_is_double)
        make_exact_f64(&workers[0]);
    else
        make_exact_f32(&workers[0]);
    memset(stats, 0, LC_N_STATS * sizeof(int64_t));
    for (int64_t t = 0; t < n_workers; t++) {
        for (int k = 0; k < LC_N_STATS; k++)
            stats[k] += workers[t].stats[k];
        worker_free(&workers[t]);
    }
    stats[LC_STAT_THREADS] = n_started;
    stats[LC_STAT_NS_AUCTION] = auctioned - started;
    stats[LC_STAT_NS_EXACT] = now_ns() - auctioned;
    memcpy(col_of_row, s->col_of_row, (size_t)s->n_real * sizeof(int64_t));
    return n_started;
}

/* ---------------------------------------------------------------- Python bindings */

/* Format code of a native-order buffer ('f', 'd', 'l', 'q', ...), or 0. */
static char buffer_code(const Py_buffer *view)
{
    const char *f = view->format;
    if (f == NULL)
        return 'B';
    if (f[0] == '@' || f[0] == '=')
        f++;
    return f[1] == '\0' ? f[0] : 0;
}

static int is_int64(const Py_buffer *view)
{
    const char c = buffer_code(view);
    return view->itemsize == 8 && (c == 'l' || c == 'q');
}

static int get_vector(PyObject *obj, Py_buffer *view, int writable, const char *name,
                      Py_ssize_t length, int want_int64)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0)
        return -1;
    int ok = view->ndim == 1 && (length < 0 || view->shape[0] == length)
             && (want_int64 ? is_int64(view)
                            : (buffer_code(view) == 'd' && view->itemsize == 8));
    if (!ok) {
        PyErr_Format(PyExc_ValueError, "%s: expected a contiguous 1-D %s array of length %zd",
                     name, want_int64 ? "int64" : "float64", length);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* Matrix buffer: C-contiguous 2-D float32 or float64. Sets *is_double. */
static int get_matrix(PyObject *obj, Py_buffer *view, int *is_double)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    const char c = buffer_code(view);
    if (view->ndim != 2 || !((c == 'f' && view->itemsize == 4)
                             || (c == 'd' && view->itemsize == 8))) {
        PyErr_SetString(PyExc_ValueError,
                        "cost: expected a C-contiguous 2-D float32 or float64 array");
        PyBuffer_Release(view);
        return -1;
    }
    *is_double = c == 'd';
    return 0;
}

static PyObject *py_solve(PyObject *self, PyObject *args)
{
    PyObject *cost_o, *scale_o, *eps_o, *cols_o, *prices_o, *stats_o;
    Py_ssize_t k_list, n_threads;
    int dummies;
    Py_buffer cost, scale, eps, cols, prices, stats;
    int is_double;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOnnpOOO", &cost_o, &scale_o, &eps_o, &k_list, &n_threads,
                          &dummies, &cols_o, &prices_o, &stats_o))
        return NULL;
    if (get_matrix(cost_o, &cost, &is_double) < 0)
        return NULL;
    const Py_ssize_t n_real = cost.shape[0], n_cols = cost.shape[1];
    if (n_real > n_cols || n_real < 1 || n_cols < 2 || k_list < 1 || n_threads < 1) {
        PyBuffer_Release(&cost);
        PyErr_SetString(PyExc_ValueError,
                        "need 1 <= rows <= columns, 2 <= columns, 1 <= k_list, 1 <= threads");
        return NULL;
    }
    if (k_list > n_cols)
        k_list = n_cols;
    if (n_threads > LC_MAX_THREADS)
        n_threads = LC_MAX_THREADS;
    if (n_threads > n_real / 32) /* small problems: thread handoffs cost more than bids */
        n_threads = n_real / 32 > 1 ? n_real / 32 : 1;
    if (get_vector(scale_o, &scale, 0, "scale", n_real, 0) < 0)
        goto fail_cost;
    if (get_vector(eps_o, &eps, 0, "eps", -1, 0) < 0)
        goto fail_scale;
    if (get_vector(cols_o, &cols, 1, "col_of_row", n_real, 1) < 0)
        goto fail_eps;
    if (get_vector(prices_o, &prices, 1, "prices", n_cols, 0) < 0)
        goto fail_cols;
    if (get_vector(stats_o, &stats, 1, "stats", LC_N_STATS, 1) < 0)
        goto fail_prices;

    Shared s;
    int64_t rc;
    Py_BEGIN_ALLOW_THREADS
    rc = shared_init(&s, cost.buf, is_double, n_real, n_cols, dummies, k_list, n_threads,
                     scale.buf, eps.buf, eps.shape[0], prices.buf);
    if (rc == 0) {
        rc = run_solver(&s, n_threads, cols.buf, stats.buf);
        shared_free(&s);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&stats);
    PyBuffer_Release(&prices);
    PyBuffer_Release(&cols);
    PyBuffer_Release(&eps);
    PyBuffer_Release(&scale);
    PyBuffer_Release(&cost);
    if (rc < 0)
        return PyErr_NoMemory();
    Py_RETURN_NONE;

fail_prices:
    PyBuffer_Release(&prices);
fail_cols:
    PyBuffer_Release(&cols);
fail_eps:
    PyBuffer_Release(&eps);
fail_scale:
    PyBuffer_Release(&scale);
fail_cost:
    PyBuffer_Release(&cost);
    return NULL;
}

static PyObject *py_lower_bound(PyObject *self, PyObject *args)
{
    PyObject *cost_o, *scale_o, *prices_o;
    Py_buffer cost, scale, prices;
    int is_double;
    double bound;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOO", &cost_o, &scale_o, &prices_o))
        return NULL;
    if (get_matrix(cost_o, &cost, &is_double) < 0)
        return NULL;
    if (get_vector(scale_o, &scale, 0, "scale", cost.shape[0], 0) < 0) {
        PyBuffer_Release(&cost);
        return NULL;
    }
    if (get_vector(prices_o, &prices, 0, "prices", cost.shape[1], 0) < 0) {
        PyBuffer_Release(&scale);
        PyBuffer_Release(&cost);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    if (is_double)
        bound = lower_bound_f64(cost.buf, scale.buf, prices.buf, cost.shape[0],
                                cost.shape[1]);
    else
        bound = lower_bound_f32(cost.buf, scale.buf, prices.buf, cost.shape[0],
                                cost.shape[1]);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&prices);
    PyBuffer_Release(&scale);
    PyBuffer_Release(&cost);
    return PyFloat_FromDouble(bound);
}

static PyMethodDef methods[] = {
    {"solve", py_solve, METH_VARARGS,
     "solve(cost, scale, eps, k_list, threads, dummies, col_of_row, prices, stats): "
     "exact assignment."},
    {"lower_bound", py_lower_bound, METH_VARARGS,
     "lower_bound(cost, scale, prices) -> float: dual lower bound from column prices."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_lapcore",
    "Exact rectangular assignment: auction with candidate lists + shortest paths.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__lapcore(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "N_STATS", LC_N_STATS) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
