/*
 * Cost-type specific kernels of _lapcore.c. Included once per cost type with
 *   CT     the C type of the cost matrix entries (float or double),
 *   FN(x)  the name of kernel x for that type.
 * Values are always formed in double as  scale[row] * (double)cost[row][col] + price[col]
 * (just price[col] for a dummy row), the same way everywhere, so comparisons between
 * kernels are exact.
 */

/* vals[j] = value(row, j) for all j, and block_min[b] = min over block b; returns #blocks. */
LC_VECTOR static int64_t FN(row_values)(Worker *w, int64_t row)
{
    const Shared *s = w->s;
    const int64_t n_cols = s->n_cols;
    const double *prices = s->prices;
    double *vals = w->vals;
    if (row < s->n_real) {
        const CT *c = (const CT *)s->cost + row * n_cols;
        const double sc = s->scale[row];
        for (int64_t j = 0; j < n_cols; j++)
            vals[j] = sc * (double)c[j] + prices[j];
    } else {
        memcpy(vals, prices, (size_t)n_cols * sizeof(double));
    }
    const int64_t n_full = n_cols / LC_BLOCK;
    for (int64_t b = 0; b < n_full; b++)
        w->block_min[b] = min_block(vals + b * LC_BLOCK);
    if (n_full * LC_BLOCK == n_cols)
        return n_full;
    double m = LC_INF;
    for (int64_t j = n_full * LC_BLOCK; j < n_cols; j++)
        m = vals[j] < m ? vals[j] : m;
    w->block_min[n_full] = m;
    return n_full + 1;
}

static inline double FN(cost_at)(const Shared *s, int64_t row, int64_t col)
{
    return row < s->n_real ? s->scale[row] * (double)((const CT *)s->cost)[row * s->n_cols + col]
                           : 0.0;
}

static inline double FN(value)(const Shared *s, int64_t row, int64_t col)
{
    return FN(cost_at)(s, row, col) + s->prices[col];
}

/*
 * Rebuild the candidate list of `row` from a full scan: the K cheapest columns in
 * ascending value, their scaled costs, and the (K+1)-th smallest value as threshold
 * (every column outside the list is at least that). The (K+1)-th smallest block minimum
 * bounds the (K+1)-th smallest value from above, so only the values of blocks whose
 * minimum is at most that bound are selected from.
 */
static void FN(scan)(Worker *w, int64_t row)
{
    const Shared *s = w->s;
    const int64_t n_cols = s->n_cols;
    const int64_t k_list = s->k_list;
    const int64_t keep = k_list + 1;
    const int64_t n_blocks = FN(row_values)(w, row);
    double *sel_v = w->sel_v;
    int64_t *sel_j = w->sel_j;
    double bound = LC_INF;
    if (n_blocks > keep) {
        memcpy(sel_v, w->block_min, (size_t)n_blocks * sizeof(double));
        select_kth(sel_v, sel_j, n_blocks, keep - 1);
        bound = sel_v[keep - 1];
    }
    int64_t count = 0;
    for (int64_t b = 0; b < n_blocks; b++) {
        if (w->block_min[b] > bound)
            continue;
        const int64_t lo = b * LC_BLOCK;
        const int64_t hi = lo + LC_BLOCK < n_cols ? lo + LC_BLOCK : n_cols;
        for (int64_t j = lo; j < hi; j++) {
            if (w->vals[j] <= bound) {
                sel_v[count] = w->vals[j];
                sel_j[count++] = j;
            }
        }
    }
    if (count > keep) {
        select_kth(sel_v, sel_j, count, keep - 1);
        count = keep;
    }
    sort_small(sel_v, sel_j, count);
    const int64_t r = list_of(w, row);
    int64_t *cj = s->cand_j + r * k_list;
    double *cc = s->cand_c + r * k_list;
    for (int64_t k = 0; k < k_list; k++) {
        if (k < count) {
            cj[k] = sel_j[k];
            cc[k] = FN(cost_at)(s, row, sel_j[k]);
        } else {
            cj[k] = -1;
            cc[k] = 0.0;
        }
    }
    s->thresh[r] = count > k_list ? sel_v[k_list] : LC_INF;
    w->stats[LC_STAT_SCANS]++;
}

/*
 * Cheapest column of `row` (*j_best, value *v_best, price as read *p_best) and a lower
 * bound on the second-cheapest value (*v_second), from the candidate list; the list is
 * rebuilt first when exhausted.
 */
static void FN(best_two)(Worker *w, int64_t row, int64_t *j_best, double *v_best,
                         double *p_best, double *v_second)
{
    const Shared *s = w->s;
    const int64_t r = list_of(w, row);
    const int64_t k_list = s->k_list;
    for (int attempt = 0; attempt < 2; attempt++) {
        const int64_t *cj = s->cand_j + r * k_list;
        const double *cc = s->cand_c + r * k_list;
        double v1 = LC_INF, v2 = LC_INF, p1 = 0.0;
        int64_t j1 = -1;
        for (int64_t k = 0; k < k_list; k++) {
            const int64_t j = cj[k];
            if (j < 0)
                break;
            const double p = s->prices[j];
            const double v = cc[k] + p;
            if (v < v1) {
                v2 = v1;
                v1 = v;
                p1 = p;
                j1 = j;
            } else if (v < v2) {
                v2 = v;
            }
        }
        const double t = s->thresh[r];
        if (v1 <= t || attempt == 1) {
            *j_best = j1;
            *v_best = v1;
            *p_best = p1;
            *v_second = v2 < t ? v2 : t;
            return;
        }
        FN(scan)(w, row);
    }
}

/*
 * Free this worker's share of the rows that break eps-complementary slackness (and the
 * unassigned ones) and queue them. Prices do not change meanwhile.
 */
static void FN(free_violators)(Worker *w, double eps)
{
    Shared *s = w->s;
    const int64_t lo = s->n_rows * w->tid / s->n_threads;
    const int64_t hi = s->n_rows * (w->tid + 1) / s->n_threads;
    int64_t n_freed = 0, j1;
    double v1, p1, v2;
    for (int64_t i = lo; i < hi; i++) {
        const int64_t j = s->col_of_row[i];
        if (j >= 0) {
            FN(best_two)(w, i, &j1, &v1, &p1, &v2);
            if (FN(value)(s, i, j) <= v1 + eps)
                continue;
            s->col_of_row[i] = -1;
            s->row_of_col[j] = -1;
        }
        w->freed[n_freed++] = i;
    }
    pthread_mutex_lock(&s->lock);
    for (int64_t k = 0; k < n_freed; k++)
        queue_push(s, w->freed[k]);
    pthread_mutex_unlock(&s->lock);
}

/*
 * Bid until no row is free (forward auction, Gauss-Seidel, asynchronous across workers).
 * A free row takes its cheapest column and raises its price by (second value - best
 * value + eps), evicting the owner. The bid is computed without the lock from prices
 * that can only have risen since; it is committed under the lock if the column's price
 * is still the one it was computed from, else recomputed.
 */
static void FN(bid)(Worker *w, double eps)
{
    Shared *s = w->s;
    int64_t j1;
    double v1, p1, v2;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (s->n_queue == 0 && s->in_flight > 0)
            pthread_cond_wait(&s->wake, &s->lock);
        if (s->n_queue == 0)
            break;
        const int64_t i = queue_pop(s);
        s->in_flight++;
        pthread_mutex_unlock(&s->lock);
        for (;;) {
            FN(best_two)(w, i, &j1, &v1, &p1, &v2);
            pthread_mutex_lock(&s->lock);
            if (s->prices[j1] == p1)
                break;
            pthread_mutex_unlock(&s->lock);
            w->stats[LC_STAT_RETRIES]++;
        }
        s->prices[j1] = p1 + ((v2 - v1) + eps);
        w->stats[LC_STAT_BIDS]++;
        const int64_t old = s->row_of_col[j1];
        s->row_of_col[j1] = i;
        s->col_of_row[i] = j1;
        if (old >= 0) {
            s->col_of_row[old] = -1;
            queue_push(s, old);
        }
        s->in_flight--;
        if (old >= 0 || s->in_flight == 0)
            pthread_cond_broadcast(&s->wake);
    }
    pthread_mutex_unlock(&s->lock);
}

/* All auction phases, run by every worker in step. */
static void FN(auction)(Worker *w)
{
    Shared *s = w->s;
    for (int64_t e = 0; e < s->n_eps; e++) {
        FN(free_violators)(w, s->eps[e]);
        barrier_wait(s);
        FN(bid)(w, s->eps[e]);
        barrier_wait(s);
    }
}

/*
 * Relax the `depth` cheapest columns of `row` at distance d_row; return the distance
 * bound d_row + (depth+1)-th smallest value - u[row] for all its other columns
 * (infinite when every column was relaxed).
 */
static double FN(relax_deep)(Worker *w, int64_t row, double d_row, int64_t depth)
{
    Shared *s = w->s;
    const int64_t n_cols = s->n_cols;
    const double base = d_row - s->u[row];
    FN(row_values)(w, row);
    if (depth >= n_cols) {
        for (int64_t j = 0; j < n_cols; j++)
            if (!s->final[j])
                label(s, j, base + w->vals[j], row);
        return LC_INF;
    }
    for (int64_t j = 0; j < n_cols; j++) {
        w->sel_v[j] = w->vals[j];
        w->sel_j[j] = j;
    }
    select_kth(w->sel_v, w->sel_j, n_cols, depth);
    for (int64_t k = 0; k < depth; k++) {
        const int64_t j = w->sel_j[k];
        if (!s->final[j])
            label(s, j, base + w->sel_v[k], row);
    }
    return base + w->sel_v[depth];
}

/*
 * Insert free row `cur` by a shortest augmenting path (Dijkstra on candidate lists).
 *
 * Requires value(i, j) - u[i] >= 0 for all pairs, with equality on assigned pairs, and
 * keeps that invariant, raising prices only (so candidate thresholds stay valid). A
 * scanned row relaxes its candidate list only; its other columns are at distance at
 * least d_row + thresh - u[row], a pending bound. When a pending bound is below the
 * nearest labelled column, the row's list is rebuilt, or, if that does not lift the bound
 * above that column, its 4K, 16K, ... cheapest columns are relaxed in turn.
 */
static void FN(augment_row)(Worker *w, int64_t cur)
{
    Shared *s = w->s;
    const int64_t k_list = s->k_list;
    int64_t n_rows_seen = 0, n_pend = 0;
    int64_t i = cur, sink = -1;
    double d_i = 0.0, min_val = 0.0, best = LC_INF;
    s->n_heap = 0;
    s->n_touched = 0;
    while (sink < 0) {
        s->rows_seen[n_rows_seen] = i;
        s->rows_d[n_rows_seen] = d_i;
        n_rows_seen++;
        int64_t r = list_of(w, i);
        relax_list(s, i, d_i, s->cand_j + r * k_list, s->cand_c + r * k_list);
        if (s->thresh[r] < LC_INF)
            pend(s, &n_pend, i, d_i, d_i + (s->thresh[r] - s->u[i]), 0);
        for (;;) {
            while (s->n_heap > 0
                   && (s->final[s->heap_j[0]] || s->heap_k[0] != s->dist[s->heap_j[0]]))
                heap_pop(s);
            best = s->n_heap > 0 ? s->heap_k[0] : LC_INF;
            double low = LC_INF;
            int64_t low_at = -1;
            for (int64_t q = 0; q < n_pend; q++) {
                if (s->pend_bound[q] < low) {
                    low = s->pend_bound[q];
                    low_at = q;
                }
            }
            if (low_at < 0 || low >= best)
                break;
            const int64_t q_row = s->pend_row[low_at];
            const double q_d = s->pend_d[low_at];
            int64_t depth = s->pend_depth[low_at];
            n_pend--;
            s->pend_row[low_at] = s->pend_row[n_pend];
            s->pend_d[low_at] = s->pend_d[n_pend];
            s->pend_bound[low_at] = s->pend_bound[n_pend];
            s->pend_depth[low_at] = s->pend_depth[n_pend];
            if (depth == 0) {
                /* First try a fresh candidate list; go deeper if its bound stays low. */
                r = list_of(w, q_row);
                FN(scan)(w, q_row);
                const double bound = q_d + (s->thresh[r] - s->u[q_row]);
                if (bound > low && bound >= best) {
                    relax_list(s, q_row, q_d, s->cand_j + r * k_list,
                               s->cand_c + r * k_list);
                    pend(s, &n_pend, q_row, q_d, bound, 0);
                    continue;
                }
                depth = 4 * k_list;
            }
            w->stats[LC_STAT_DEEP]++;
            const double bound = FN(relax_deep)(w, q_row, q_d, depth);
            if (bound < LC_INF)
                pend(s, &n_pend, q_row, q_d, bound, 4 * depth);
        }
        const int64_t j = s->heap_j[0];
        heap_pop(s);
        s->final[j] = 1;
        if (s->row_of_col[j] < 0) {
            sink = j;
            min_val = best;
        } else {
            i = s->row_of_col[j];
            d_i = best;
        }
    }
    w->stats[LC_STAT_SAP_SCANNED] += n_rows_seen;
    for (int64_t k = 0; k < n_rows_seen; k++)
        s->u[s->rows_seen[k]] += min_val - s->rows_d[k];
    for (int64_t k = 0; k < s->n_touched; k++) {
        const int64_t j = s->touched[k];
        if (s->final[j])
            s->prices[j] += min_val - s->dist[j];
        s->final[j] = 0;
        s->dist[j] = LC_INF;
    }
    int64_t j = sink;
    for (;;) {
        const int64_t row = s->path[j];
        s->row_of_col[j] = row;
        const int64_t prev = s->col_of_row[row];
        s->col_of_row[row] = j;
        if (row == cur)
            break;
        j = prev;
    }
}

/* Free row i from its column (the lock is not needed: one worker). */
static inline void FN(release)(Shared *s, int64_t i, int64_t *n_free)
{
    s->row_of_col[s->col_of_row[i]] = -1;
    s->col_of_row[i] = -1;
    s->free_rows[(*n_free)++] = i;
}

/*
 * Lower column j to `price` (below its current price): every row whose cheapest value
 * that undercuts gets the new minimum as u, is queued if it holds another column (it is
 * off its minimum now), and is marked for a rescan if its list threshold no longer holds.
 */
static void FN(lower_column)(Worker *w, int64_t j, double price, unsigned char *queued,
                             int64_t *work, int64_t *n_work)
{
    Shared *s = w->s;
    s->prices[j] = price;
    for (int64_t k = 0; k < s->n_real; k++) {
        const double v = FN(value)(s, k, j);
        if (v < s->thresh[k])
            s->thresh[k] = -LC_INF; /* rescanned before use */
        if (v < s->u[k]) {
            s->u[k] = v;
            if (s->col_of_row[k] >= 0 && s->col_of_row[k] != j && !queued[k]) {
                queued[k] = 1;
                work[(*n_work)++] = k;
            }
        }
    }
}

/*
 * Exact stage without dummy rows (one worker). Optimality needs every row on a cheapest
 * column (u[i] its value) and every unassigned column at the lowest price. With T < P, the columns the
 * auction left unassigned are lowered to the lowest price; then each row off its minimum
 * by some slack gets its column lowered by that slack (which can put other rows off
 * theirs, handled in turn), or, if that would go below the lowest price, the column is set
 * to the lowest price and the row is freed. (With T = P the rows are just freed.) Free
 * rows are then inserted by shortest augmenting paths, which keep every row on a cheapest
 * column and never change the price of an unassigned column.
 */
static void FN(make_exact_rows)(Worker *w)
{
    Shared *s = w->s;
    const int64_t n_real = s->n_real;
    int64_t j1, n_free = 0, n_work = 0;
    double v1, p1, v2, lowest = LC_INF;
    int64_t *work = w->freed;
    unsigned char *queued = s->final; /* all zero outside augment_row */
    /* NULL (no memory) frees a row at its first lowering instead: also exact. */
    unsigned char *lowerings = calloc((size_t)n_real, 1);
    for (int64_t i = 0; i < n_real; i++) {
        FN(best_two)(w, i, &j1, &v1, &p1, &v2);
        s->u[i] = v1;
        if (s->col_of_row[i] < 0)
            s->free_rows[n_free++] = i;
    }
    for (int64_t j = 0; j < s->n_cols; j++)
        lowest = s->prices[j] < lowest ? s->prices[j] : lowest;
    if (n_real < s->n_cols) {
        for (int64_t j = 0; j < s->n_cols; j++) {
            if (s->row_of_col[j] < 0 && s->prices[j] > lowest) {
                FN(lower_column)(w, j, lowest, queued, work, &n_work);
                w->stats[LC_STAT_LOWERED]++;
            }
        }
    }
    for (int64_t i = 0; i < n_real; i++) {
        const int64_t j = s->col_of_row[i];
        if (j >= 0 && !queued[i] && FN(value)(s, i, j) > s->u[i]) {
            queued[i] = 1;
            work[n_work++] = i;
        }
    }
    while (n_work > 0) {
        const int64_t i = work[--n_work];
        queued[i] = 0;
        const int64_t j = s->col_of_row[i];
        if (j < 0 || FN(value)(s, i, j) <= s->u[i])
            continue;
        /* The highest price at which column j is a cheapest one for row i. */
        const double c = FN(cost_at)(s, i, j);
        double price = s->u[i] - c;
        while (c + price > s->u[i])
            price = nextafter(price, -LC_INF);
        const int spent = lowerings == NULL || lowerings[i] >= LC_MAX_LOWERINGS;
        if (n_real == s->n_cols || price < lowest || spent) {
            if (n_real < s->n_cols)
                FN(lower_column)(w, j, lowest, queued, work, &n_work);
            FN(release)(s, i, &n_free);
        } else {
            lowerings[i]++;
            FN(lower_column)(w, j, price, queued, work, &n_work);
            w->stats[LC_STAT_LOWERED]++;
        }
    }
    free(lowerings);
    for (int64_t i = 0; i < n_real; i++)
        if (s->thresh[i] == -LC_INF)
            FN(scan)(w, i);
    w->stats[LC_STAT_SAP_ROWS] = n_free;
    for (int64_t f = 0; f < n_free; f++)
        FN(augment_row)(w, s->free_rows[f]);
}

/*
 * Exact stage with dummy rows (one worker): the problem is square, so rows (real and
 * dummy) not on a cheapest column are freed and inserted again by shortest augmenting
 * paths; no price condition on unassigned columns is left.
 */
static void FN(make_exact_square)(Worker *w)
{
    Shared *s = w->s;
    int64_t j1, n_free = 0;
    double v1, p1, v2;
    for (int64_t i = 0; i < s->n_cols; i++) {
        FN(best_two)(w, i, &j1, &v1, &p1, &v2);
        s->u[i] = v1;
        const int64_t j = s->col_of_row[i];
        if (j < 0)
            s->free_rows[n_free++] = i;
        else if (FN(value)(s, i, j) > v1)
            FN(release)(s, i, &n_free);
    }
    w->stats[LC_STAT_SAP_ROWS] = n_free;
    for (int64_t f = 0; f < n_free; f++)
        FN(augment_row)(w, s->free_rows[f]);
}

static void FN(make_exact)(Worker *w)
{
    if (w->s->n_rows > w->s->n_real)
        FN(make_exact_square)(w);
    else
        FN(make_exact_rows)(w);
}

/* sum_i min_j value(i, j) + (P - T) min_j p_j - sum_j p_j: a dual lower bound. */
static double FN(lower_bound)(const CT *cost, const double *scale, const double *prices,
                              int64_t n_real, int64_t n_cols)
{
    double total = 0.0, p_min = LC_INF, p_sum = 0.0;
    for (int64_t i = 0; i < n_real; i++) {
        const CT *c = cost + i * n_cols;
        const double sc = scale[i];
        double best = LC_INF;
        for (int64_t j = 0; j < n_cols; j++) {
            const double v = sc * (double)c[j] + prices[j];
            best = v < best ? v : best;
        }
        total += best;
    }
    for (int64_t j = 0; j < n_cols; j++) {
        p_sum += prices[j];
        p_min = prices[j] < p_min ? prices[j] : p_min;
    }
    return total + (double)(n_cols - n_real) * p_min - p_sum;
}
