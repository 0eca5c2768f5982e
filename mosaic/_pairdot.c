/*
 * _pairdot: the exact refinement step of mosaic.cost_refine (coarse-to-fine block scoring).
 *
 * Features live in an orthonormal (PCA) basis: a coarse part, scored for every crop
 * candidate by one GEMM in Python, and a residual part of R floats, split into segments of
 * `seg` floats. For a (tile, photo, crop) the GEMM gives the proven lower bound
 *     lb = (|t|^2 + |p|^2 - 2 (coarse(t).coarse(p) + |res t| |res p|)) / D,
 * and the exact mean squared error is lb + (2 / D) (|res t| |res p| - res(t).res(p)).
 * After the first s residual segments (partial dot q_s) the bound tightens to
 *     lb + (2 / D) (|res t| |res p| - q_s - |tail_s t| |tail_s p|)
 * (Cauchy-Schwarz on the remaining tail). For every pair, the candidate with the smallest
 * lb is computed exactly; then every other candidate whose lb is below the best cost plus a
 * safety margin is refined, in increasing lb order, segment by segment, and dropped as soon
 * as its bound reaches that limit.
 *
 * The first candidates are scored in blocks of 32 tiles x 8 photos, 64 residual floats at a
 * time, so that the tile rows and crop rows of a block stay in L1 while all its pairs use
 * them; blocks are visited in groups of 24 photos so that rows are reused from L2.
 *
 * With a cap, cap(i, j) = (row[i] + col[j]) * scale[i] for the job's tile i and photo j,
 * a pair only needs its exact cost when that cost is below its cap: a pair whose smallest
 * bound reaches the cap, or whose first candidate's bound does after some residual
 * segments (and its second smallest bound too), is written as that bound (at
 * least the cap) with crop PD_PRUNED, and no candidate beyond the cap is refined. Passes
 * that only look for small costs (minima, the cheapest few) skip most residual products.
 *
 * Python interface (buffer protocol, no NumPy headers needed):
 *   refine(lb, tile_res, tile_tail, tiles, photo_res, photo_tail, photos, seg, scale,
 *          margin, cost, crop, row0, col0, stats, hist, portable, cap, photo_major)
 *       writes pair (i, j) at cost[row0 + i, col0 + j] (and crop) of the whole output;
 *       `lb` is photo-major, (photos, K, tiles), so the loops over tiles vectorise;
 *       `cap` is None or (row, col, scale): float32 of the job's tiles, photos, tiles;
 *       with `photo_major`, cost and crop are (photos, tiles) and pair (i, j) is at
 *       [col0 + j, row0 + i] (the writes then run along rows: about 10 ns a pair faster
 *       when most pairs are capped).
 *   simd() -> str
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define PD_HAVE_AVX2 1
#else
#define PD_HAVE_AVX2 0
#endif

/* Blocks of the first-candidate pass (see the top); sizes between half and twice these
   measured the same within noise on a 2-core EPYC (L1 32 KB, L2 1 MB). */
#define PD_TILE_BLOCK 32
#define PD_PHOTO_BLOCK 8
#define PD_DIM_BLOCK 64
#define PD_PHOTO_GROUP 24
#define PD_LANES 8
#define PD_MAX_CROPS 64 /* open candidates are a 64-bit mask */
#define PD_PRUNED 255   /* crop of a pair written as a bound at or above its cap */
/* A capped block whose live pairs are under 1 / PD_SPARSE_SHARE of it scores them one by
   one (a group of four photos costs as much with one live pair as with four). */
#define PD_SPARSE_SHARE 3
/* A capped pair's state in a block (see run_block). */
enum { PD_DROPPED = 0, PD_LIVE = 1, PD_DROP_FIRST = 2 };

enum { PD_STAT_PAIRS, PD_STAT_STARTED, PD_STAT_COMPLETED, PD_STAT_SEGMENTS, PD_STAT_PRUNED,
       PD_N_STATS };

typedef float (*dot1_fn)(const float *a, const float *b, int64_t n);
typedef void (*acc4_fn)(const float *t, const float **p, int64_t n, float **acc);

/* ---------------------------------------------------------------- portable kernels */

/* Eight independent accumulators: the compiler vectorises the lanes (SSE2 at least). */
static inline __attribute__((always_inline)) float dot1_portable(const float *a,
                                                                 const float *b, int64_t n)
{
    float acc[8] = {0};
    int64_t d = 0;
    for (; d + 8 <= n; d += 8)
        for (int l = 0; l < 8; l++) /* independent lanes: one vector add per step */
            acc[l] += a[d + l] * b[d + l];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; d < n; d++)
        s += a[d] * b[d];
    return s;
}

/* acc[q][l] += lane l of dot(t, p[q]) over n floats, for q < 4. */
static inline __attribute__((always_inline)) void acc4_portable(const float *t, const float **p,
                                                                int64_t n, float **acc)
{
    for (int q = 0; q < 4; q++) {
        int64_t d = 0;
        for (; d + PD_LANES <= n; d += PD_LANES)
            for (int l = 0; l < PD_LANES; l++) /* eight independent lanes: vectorised */
                acc[q][l] += t[d + l] * p[q][d + l];
        for (; d < n; d++)
            acc[q][d % PD_LANES] += t[d] * p[q][d];
    }
}

/* ---------------------------------------------------------------- AVX2 + FMA kernels */

#if PD_HAVE_AVX2
__attribute__((target("avx2,fma"))) static inline float hsum256(__m256 v)
{
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
    return _mm_cvtss_f32(h);
}

__attribute__((target("avx2,fma"), always_inline)) static inline float
dot1_avx2(const float *a, const float *b,
                                                            int64_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t d = 0;
    for (; d + 32 <= n; d += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d), _mm256_loadu_ps(b + d), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d + 8), _mm256_loadu_ps(b + d + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d + 16), _mm256_loadu_ps(b + d + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d + 24), _mm256_loadu_ps(b + d + 24), s3);
    }
    for (; d + 8 <= n; d += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d), _mm256_loadu_ps(b + d), s0);
    float s = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; d < n; d++)
        s += a[d] * b[d];
    return s;
}

/* One tile chunk against four crop rows: each tile load feeds four FMAs, two chains per
   pair hide the FMA latency; the lane sums stay in `acc` between chunks. */
__attribute__((target("avx2,fma"), always_inline)) static inline void
acc4_avx2(const float *t, const float **p,
                                                           int64_t n, float **acc)
{
    const float *p0 = p[0], *p1 = p[1], *p2 = p[2], *p3 = p[3];
    __m256 a0 = _mm256_loadu_ps(acc[0]), a1 = _mm256_loadu_ps(acc[1]);
    __m256 a2 = _mm256_loadu_ps(acc[2]), a3 = _mm256_loadu_ps(acc[3]);
    __m256 b0 = _mm256_setzero_ps(), b1 = b0, b2 = b0, b3 = b0;
    int64_t d = 0;
    for (; d + 16 <= n; d += 16) {
        const __m256 x = _mm256_loadu_ps(t + d), y = _mm256_loadu_ps(t + d + 8);
        a0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(p0 + d), a0);
        a1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(p1 + d), a1);
        a2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(p2 + d), a2);
        a3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(p3 + d), a3);
        b0 = _mm256_fmadd_ps(y, _mm256_loadu_ps(p0 + d + 8), b0);
        b1 = _mm256_fmadd_ps(y, _mm256_loadu_ps(p1 + d + 8), b1);
        b2 = _mm256_fmadd_ps(y, _mm256_loadu_ps(p2 + d + 8), b2);
        b3 = _mm256_fmadd_ps(y, _mm256_loadu_ps(p3 + d + 8), b3);
    }
    for (; d + 8 <= n; d += 8) {
        const __m256 x = _mm256_loadu_ps(t + d);
        a0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(p0 + d), a0);
        a1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(p1 + d), a1);
        a2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(p2 + d), a2);
        a3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(p3 + d), a3);
    }
    _mm256_storeu_ps(acc[0], _mm256_add_ps(a0, b0));
    _mm256_storeu_ps(acc[1], _mm256_add_ps(a1, b1));
    _mm256_storeu_ps(acc[2], _mm256_add_ps(a2, b2));
    _mm256_storeu_ps(acc[3], _mm256_add_ps(a3, b3));
    for (; d < n; d++)
        for (int q = 0; q < 4; q++)
            acc[q][d % PD_LANES] += t[d] * p[q][d];
}
#endif

static int cpu_has_avx2(void)
{
#if PD_HAVE_AVX2
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

/* ---------------------------------------------------------------- the refinement */

typedef struct {
    const float *lb;         /* (nj, K, nt) lower bounds, photo-major */
    const float *tile_res;   /* (T, R) */
    const float *tile_tail;  /* (T, S): norm of residual dims [s * seg, R) */
    const int64_t *tiles;    /* (nt,) rows of tile_res */
    const float *photo_res;  /* (P, K, R) */
    const float *photo_tail; /* (P, K, S) */
    const int64_t *photos;   /* (nj,) */
    int64_t nt, nj, K, R, S, seg;
    float scale;             /* 2 / D */
    float margin;
    float *cost;             /* pair (i, j) at [(row0 + i) * ld + col0 + j] */
    uint8_t *crop;           /* same layout */
    const float *cap_row;    /* (nt,), or NULL: no cap */
    const float *cap_col;    /* (nj,) */
    const float *cap_scale;  /* (nt,) */
    int64_t row0, col0, ld;
    int photo_major;         /* cost and crop are (photos, tiles): pair (i, j) at
                                [(col0 + j) * ld + row0 + i], written in order */
} Job;

/* Counts, apart from the job: the compiler need not reload its fields after each store. */
typedef struct {
    int64_t started, completed, segments, pruned;
    int64_t hist[PD_MAX_CROPS + 1];
} Counts;

/* Pair (i, j) whose best so far is *best (candidate *best_k): refine the candidates of the
   mask `open` in increasing bound order, each segment by segment until its bound reaches
   the smaller of the best cost and the cap, plus the margin. Returns the candidates
   refined, the first one included.
   Needs S >= 1 (checked by the caller). */
static inline __attribute__((always_inline)) int64_t
refine_open(const Job *job, int64_t i, int64_t j, uint64_t open, float cap, float *best,
            int64_t *best_k, Counts *counts, dot1_fn dot1)
{
    const int64_t K = job->K, S = job->S, R = job->R, seg = job->seg, nt = job->nt;
    const float scale = job->scale, margin = job->margin;
    const float *lb = job->lb + j * K * nt + i; /* candidate k at lb[k * nt] */
    const float *rt = job->tile_res + job->tiles[i] * R;
    const float *tt = job->tile_tail + job->tiles[i] * S;
    const int64_t base = job->photos[j] * K;
    float low = *best;
    int64_t low_k = *best_k, started = 1;
    while (open) {
        /* Next candidate in bound order (ties: lower index first). */
        int64_t k = __builtin_ctzll(open);
        for (uint64_t rest = open & (open - 1); rest; rest &= rest - 1) {
            const int64_t c = __builtin_ctzll(rest);
            k = lb[c * nt] < lb[k * nt] ? c : k;
        }
        open &= ~((uint64_t)1 << k);
        const float bound = lb[k * nt], limit = (low < cap ? low : cap) + margin;
        if (!(bound < limit))
            break; /* in bound order: no later candidate can win either */
        started++;
        const float *rp = job->photo_res + (base + k) * R;
        const float *tp = job->photo_tail + (base + k) * S;
        const float full = tt[0] * tp[0];
        float partial = 0.0f;
        int64_t s = 0;
        for (; s < S; s++) {
            if (s > 0 && bound + scale * (full - partial - tt[s] * tp[s]) >= limit)
                break;
            const int64_t lo = s * seg, hi = lo + seg < R ? lo + seg : R;
            partial += dot1(rt + lo, rp + lo, hi - lo);
        }
        counts->segments += s;
        if (s < S)
            continue; /* dropped part way: its bound reached the limit */
        counts->completed++;
        float exact = bound + scale * (full - partial);
        exact = exact > 0.0f ? exact : 0.0f;
        if (exact < low || (exact == low && k < low_k)) {
            low = exact;
            low_k = k;
        }
    }
    *best = low;
    *best_k = low_k;
    return started;
}

/* Where pair (i, j) of the job (block offsets included) is written in cost and crop. */
static inline int64_t pair_at(const Job *job, int64_t i, int64_t j)
{
    return job->photo_major ? (job->col0 + j) * job->ld + job->row0 + i
                            : (job->row0 + i) * job->ld + job->col0 + j;
}

/* A capped pair whose first candidate's bound reached `limit` (the cap plus the margin):
   dropped, with its best bound in *low, when its second smallest bound has too; else only
   the first candidate stops. */
static inline uint8_t drop_first(float bound, float second, float limit, float *low)
{
    if (!(second >= limit))
        return PD_DROP_FIRST;
    *low = bound < second ? bound : second;
    return PD_DROPPED;
}

/* The first candidate of a capped pair on its own (few pairs of a block are left): its
   residual product segment by segment, into lane 0 of `lane`, until the Cauchy-Schwarz
   bound on the rest reaches the cap. Returns the pair's state as run_block's loop would
   (and the best bound of a dropped pair in *low). */
static inline __attribute__((always_inline)) uint8_t
first_alone(const Job *job, int64_t i, int64_t j, int64_t k, float cap, float second,
            float *low, float *lane, dot1_fn dot1)
{
    const int64_t R = job->R, S = job->S, seg = job->seg, K = job->K;
    const float *rt = job->tile_res + job->tiles[i] * R;
    const float *tt = job->tile_tail + job->tiles[i] * S;
    const float *rp = job->photo_res + (job->photos[j] * K + k) * R;
    const float *tp = job->photo_tail + (job->photos[j] * K + k) * S;
    const float full = tt[0] * tp[0], limit = cap + job->margin;
    float partial = 0.0f;
    for (int64_t s = 0; s < S; s++) {
        if (s > 0) {
            const float bound = *low + job->scale * (full - partial - tt[s] * tp[s]);
            if (bound >= limit)
                return drop_first(bound, second, limit, low);
        }
        const int64_t lo = s * seg, hi = lo + seg < R ? lo + seg : R;
        partial += dot1(rt + lo, rp + lo, hi - lo);
    }
    lane[0] = partial; /* the other lanes are still zero */
    return PD_LIVE;
}

/* Sum of the lanes of a pair's accumulator, in a fixed order. */
static inline float lane_sum(const float *lane)
{
    return ((lane[0] + lane[1]) + (lane[2] + lane[3]))
           + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

/* The rest of an uncapped block, once its smallest-bound candidates are known: every
   pair's first candidate in full (chunk by chunk, four photos per tile load), then the
   candidates still open. Kept apart from the capped path, which costs it about 14%. */
static inline __attribute__((always_inline)) void
plain_block(const Job *job, int64_t i0, int64_t ni, int64_t j0, int64_t nj, Counts *counts,
            dot1_fn dot1, acc4_fn acc4, float low[PD_PHOTO_BLOCK][PD_TILE_BLOCK],
            int32_t first[PD_PHOTO_BLOCK][PD_TILE_BLOCK],
            const float *rows[PD_PHOTO_BLOCK][PD_TILE_BLOCK],
            float acc[PD_PHOTO_BLOCK][PD_TILE_BLOCK][PD_LANES], const float *norm_t)
{
    const int64_t K = job->K, R = job->R, S = job->S, nt = job->nt;
    const float scale = job->scale, margin = job->margin;
    uint64_t open[PD_TILE_BLOCK];
    for (int64_t d0 = 0; d0 < R; d0 += PD_DIM_BLOCK) {
        const int64_t n = R - d0 < PD_DIM_BLOCK ? R - d0 : PD_DIM_BLOCK;
        for (int64_t i = 0; i < ni; i++) {
            const float *rt = job->tile_res + job->tiles[i0 + i] * R + d0;
            for (int64_t j = 0; j < PD_PHOTO_BLOCK; j += 4) {
                const float *p[4] = {rows[j][i] + d0, rows[j + 1][i] + d0,
                                     rows[j + 2][i] + d0, rows[j + 3][i] + d0};
                float *a[4] = {acc[j][i], acc[j + 1][i], acc[j + 2][i], acc[j + 3][i]};
                acc4(rt, p, n, a);
            }
        }
    }
    for (int64_t j = 0; j < nj; j++) {
        const float *lb = job->lb + (j0 + j) * K * nt + i0;
        float norm_p[PD_MAX_CROPS];
        for (int64_t k = 0; k < K; k++)
            norm_p[k] = job->photo_tail[(job->photos[j0 + j] * K + k) * S];
        for (int64_t i = 0; i < ni; i++) {
            const float exact = low[j][i] + scale * (norm_t[i] * norm_p[first[j][i]]
                                                     - lane_sum(acc[j][i]));
            low[j][i] = exact > 0.0f ? exact : 0.0f;
            open[i] = 0;
        }
        for (int64_t k = 0; k < K; k++)
            for (int64_t i = 0; i < ni; i++)
                open[i] |= (uint64_t)(lb[k * nt + i] < low[j][i] + margin) << k;
        for (int64_t i = 0; i < ni; i++) {
            const uint64_t rest = open[i] & ~((uint64_t)1 << first[j][i]);
            int64_t best_k = first[j][i], started = 1;
            if (rest)
                started = refine_open(job, i0 + i, j0 + j, rest, __builtin_inff(), &low[j][i],
                                      &best_k, counts, dot1);
            counts->started += started;
            counts->hist[started]++;
            const int64_t at = pair_at(job, i0 + i, j0 + j);
            job->cost[at] = low[j][i];
            job->crop[at] = (uint8_t)best_k;
        }
    }
    counts->completed += ni * nj;
}

/* One block of tiles i0..i0+ni x photos j0..j0+nj (arrays photo-major, [j][i], so that the
   loops over tiles vectorise): smallest-bound candidates, their exact costs chunk by chunk
   of residual dimensions, the candidates still open, then those refined. With a cap, a
   pair whose smallest bound reaches it is dropped at once; between chunks, a first
   candidate whose bound reaches it stops (DROP_FIRST: the other candidates may still be
   below the cap) and the pair is dropped when its second smallest bound reaches it too.
   A group of four photos is skipped for a tile once none of them is still LIVE. */
static inline __attribute__((always_inline)) void
run_block(const Job *job, int64_t i0, int64_t ni, int64_t j0, int64_t nj, Counts *counts,
          dot1_fn dot1, acc4_fn acc4, const int capped)
{
    const int64_t K = job->K, R = job->R, S = job->S, nt = job->nt, seg = job->seg;
    const float scale = job->scale, margin = job->margin;
    float low[PD_PHOTO_BLOCK][PD_TILE_BLOCK], norm_t[PD_TILE_BLOCK];
    float cap[PD_PHOTO_BLOCK][PD_TILE_BLOCK], second[PD_PHOTO_BLOCK][PD_TILE_BLOCK];
    int32_t first[PD_PHOTO_BLOCK][PD_TILE_BLOCK];
    uint8_t alive[PD_PHOTO_BLOCK][PD_TILE_BLOCK];
    float acc[PD_PHOTO_BLOCK][PD_TILE_BLOCK][PD_LANES];
    const float *rows[PD_PHOTO_BLOCK][PD_TILE_BLOCK];
    memset(acc, 0, sizeof acc);
    for (int64_t i = 0; i < ni; i++)
        norm_t[i] = job->tile_tail[job->tiles[i0 + i] * S];
    int64_t live = 0;
    for (int64_t j = 0; j < PD_PHOTO_BLOCK; j++) {
        /* Short blocks repeat their last photo: the padding pairs are never kept. */
        const int64_t jj = j0 + (j < nj ? j : nj - 1);
        const float *lb = job->lb + jj * K * nt + i0;
        for (int64_t i = 0; i < ni; i++) {
            low[j][i] = lb[i];
            second[j][i] = __builtin_inff();
            first[j][i] = 0;
        }
        for (int64_t k = 1; k < K; k++)
            for (int64_t i = 0; i < ni; i++) {
                const float v = lb[k * nt + i], was = low[j][i];
                first[j][i] = v < was ? (int32_t)k : first[j][i];
                low[j][i] = v < was ? v : was;
                if (capped) /* the second smallest bound only matters against a cap */
                    second[j][i] = v < was ? was : (v < second[j][i] ? v : second[j][i]);
            }
        const float *base = job->photo_res + job->photos[jj] * K * R;
        for (int64_t i = 0; i < ni; i++)
            rows[j][i] = base + first[j][i] * R;
        if (!capped)
            continue;
        for (int64_t i = 0; i < ni; i++) {
            float c = (job->cap_row[i0 + i] + job->cap_col[jj]) * job->cap_scale[i0 + i];
            c = c == c ? c : __builtin_inff(); /* NaN: no cap */
            cap[j][i] = c;
            alive[j][i] = j < nj && low[j][i] < c + margin ? PD_LIVE : PD_DROPPED;
            live += alive[j][i] == PD_LIVE;
        }
    }
    if (!capped) {
        plain_block(job, i0, ni, j0, nj, counts, dot1, acc4, low, first, rows, acc, norm_t);
        return;
    }
    if (live * PD_SPARSE_SHARE < ni * nj) {
        live = 0; /* few pairs left: each alone, segment by segment, stopping at the cap */
        for (int64_t j = 0; j < nj; j++)
            for (int64_t i = 0; i < ni; i++)
                if (alive[j][i] == PD_LIVE)
                    alive[j][i] = first_alone(job, i0 + i, j0 + j, first[j][i], cap[j][i],
                                              second[j][i], &low[j][i], acc[j][i], dot1);
    }
    for (int64_t d0 = 0; d0 < R && live; d0 += PD_DIM_BLOCK) {
        const int64_t n = R - d0 < PD_DIM_BLOCK ? R - d0 : PD_DIM_BLOCK;
        for (int64_t i = 0; i < ni; i++) {
            const float *rt = job->tile_res + job->tiles[i0 + i] * R + d0;
            for (int64_t j = 0; j < PD_PHOTO_BLOCK; j += 4) {
                if (alive[j][i] != PD_LIVE && alive[j + 1][i] != PD_LIVE
                    && alive[j + 2][i] != PD_LIVE && alive[j + 3][i] != PD_LIVE)
                    continue;
                const float *p[4] = {rows[j][i] + d0, rows[j + 1][i] + d0,
                                     rows[j + 2][i] + d0, rows[j + 3][i] + d0};
                float *a[4] = {acc[j][i], acc[j + 1][i], acc[j + 2][i], acc[j + 3][i]};
                acc4(rt, p, n, a);
            }
        }
        /* At a segment boundary, the Cauchy-Schwarz bound on the rest drops capped pairs. */
        const int64_t s = (d0 + n) / seg;
        if ((d0 + n) % seg || s >= S)
            continue;
        live = 0;
        for (int64_t j = 0; j < nj; j++) {
            const float *tail_p = job->photo_tail + job->photos[j0 + j] * K * S;
            for (int64_t i = 0; i < ni; i++) {
                if (alive[j][i] != PD_LIVE)
                    continue;
                const float *tp = tail_p + first[j][i] * S;
                const float *tt = job->tile_tail + job->tiles[i0 + i] * S;
                const float bound = low[j][i] + scale * (tt[0] * tp[0] - lane_sum(acc[j][i])
                                                         - tt[s] * tp[s]);
                if (bound >= cap[j][i] + margin) /* a dropped pair's low is its best bound */
                    alive[j][i] = drop_first(bound, second[j][i], cap[j][i] + margin, &low[j][i]);
                else
                    live++;
            }
        }
    }
    int64_t pruned = 0;
    for (int64_t j = 0; j < nj; j++) {
        const float *lb = job->lb + (j0 + j) * K * nt + i0;
        const int64_t photo = job->photos[j0 + j];
        for (int64_t i = 0; i < ni; i++) {
            const int64_t at = pair_at(job, i0 + i, j0 + j);
            if (alive[j][i] == PD_DROPPED) { /* every candidate's bound reached the cap */
                pruned++;
                job->cost[at] = low[j][i];
                job->crop[at] = PD_PRUNED;
                continue;
            }
            float best = __builtin_inff(); /* DROP_FIRST: no exact cost yet */
            if (alive[j][i] == PD_LIVE) {
                const float exact = low[j][i] + scale * (
                    norm_t[i] * job->photo_tail[(photo * K + first[j][i]) * S]
                    - lane_sum(acc[j][i]));
                best = exact > 0.0f ? exact : 0.0f;
                counts->completed++;
            }
            const float limit = (best < cap[j][i] ? best : cap[j][i]) + margin;
            uint64_t rest = 0;
            for (int64_t k = 0; k < K; k++)
                rest |= (uint64_t)(k != first[j][i] && lb[k * nt + i] < limit) << k;
            int64_t best_k = first[j][i], started = 1;
            if (rest)
                started = refine_open(job, i0 + i, j0 + j, rest, cap[j][i], &best, &best_k,
                                      counts, dot1);
            counts->started += started;
            counts->hist[started]++;
            if (best == __builtin_inff()) { /* the others' bounds reached the cap too */
                pruned++;
                job->cost[at] = cap[j][i];
                job->crop[at] = PD_PRUNED;
                continue;
            }
            job->cost[at] = best;
            job->crop[at] = (uint8_t)best_k;
        }
    }
    counts->pruned += pruned;
    counts->hist[0] += pruned;
}

/* Groups of photos x all tiles, and inside them blocks: a group's crop rows and the
   tiles' rows stay in L2 while every tile block meets every photo block of the group.
   Inlined into one copy per instruction set. */
static inline __attribute__((always_inline)) void run_body(const Job *job, Counts *counts,
                                                           dot1_fn dot1, acc4_fn acc4)
{
    for (int64_t g0 = 0; g0 < job->nj; g0 += PD_PHOTO_GROUP) {
        const int64_t g1 = g0 + PD_PHOTO_GROUP < job->nj ? g0 + PD_PHOTO_GROUP : job->nj;
        for (int64_t i0 = 0; i0 < job->nt; i0 += PD_TILE_BLOCK) {
            const int64_t ni = job->nt - i0 < PD_TILE_BLOCK ? job->nt - i0 : PD_TILE_BLOCK;
            for (int64_t j0 = g0; j0 < g1; j0 += PD_PHOTO_BLOCK) {
                const int64_t nj = g1 - j0 < PD_PHOTO_BLOCK ? g1 - j0 : PD_PHOTO_BLOCK;
                if (job->cap_row)
                    run_block(job, i0, ni, j0, nj, counts, dot1, acc4, 1);
                else
                    run_block(job, i0, ni, j0, nj, counts, dot1, acc4, 0);
            }
        }
    }
}

static void run_portable(const Job *job, Counts *counts)
{
    run_body(job, counts, dot1_portable, acc4_portable);
}

#if PD_HAVE_AVX2
__attribute__((target("avx2,fma"))) static void run_avx2(const Job *job, Counts *counts)
{
    run_body(job, counts, dot1_avx2, acc4_avx2);
}
#endif

/* ---------------------------------------------------------------- Python bindings */

static int get_array(PyObject *obj, Py_buffer *view, const char *name, char code,
                     Py_ssize_t itemsize, int ndim, int writable)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0)
        return -1;
    const char *f = view->format ? view->format : "B";
    if (f[0] == '@' || f[0] == '=')
        f++;
    int ok_code = f[1] == '\0' && (f[0] == code || (code == 'q' && f[0] == 'l'));
    if (view->ndim != ndim || view->itemsize != itemsize || !ok_code) {
        PyErr_Format(PyExc_ValueError, "%s: expected a C-contiguous %d-D array of '%c'",
                     name, ndim, code);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static int check_indices(const Py_buffer *view, Py_ssize_t limit, const char *name)
{
    const int64_t *idx = view->buf;
    for (Py_ssize_t n = 0; n < view->shape[0]; n++)
        if (idx[n] < 0 || idx[n] >= limit) {
            PyErr_Format(PyExc_IndexError, "%s: index %lld out of range [0, %zd)", name,
                         (long long)idx[n], limit);
            return -1;
        }
    return 0;
}

enum { B_LB, B_TRES, B_TTAIL, B_TILES, B_PRES, B_PTAIL, B_PHOTOS, B_COST, B_CROP, B_STATS,
       B_HIST, B_COUNT };

static PyObject *py_refine(PyObject *self, PyObject *args)
{
    PyObject *obj[B_COUNT], *cap_obj;
    Py_buffer cap_view[3];
    int have_cap = 0;
    Py_ssize_t seg, row0, col0;
    double scale, margin;
    int portable, photo_major;
    Py_buffer v[B_COUNT];
    int got = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOOOOOnddOOnnOOpOp", &obj[B_LB], &obj[B_TRES], &obj[B_TTAIL],
                          &obj[B_TILES], &obj[B_PRES], &obj[B_PTAIL], &obj[B_PHOTOS], &seg,
                          &scale, &margin, &obj[B_COST], &obj[B_CROP], &row0, &col0,
                          &obj[B_STATS], &obj[B_HIST], &portable, &cap_obj,
                          &photo_major))
        return NULL;
    static const char *names[B_COUNT] = {"lb", "tile_res", "tile_tail", "tiles", "photo_res",
                                         "photo_tail", "photos", "cost", "crop", "stats",
                                         "hist"};
    static const char codes[B_COUNT] = {'f', 'f', 'f', 'q', 'f', 'f', 'q', 'f', 'B', 'q', 'q'};
    static const Py_ssize_t sizes[B_COUNT] = {4, 4, 4, 8, 4, 4, 8, 4, 1, 8, 8};
    static const int dims[B_COUNT] = {3, 2, 2, 1, 3, 3, 1, 2, 2, 1, 1};
    for (; got < B_COUNT; got++)
        if (get_array(obj[got], &v[got], names[got], codes[got], sizes[got], dims[got],
                      got >= B_COST) < 0)
            goto fail;
    const Py_ssize_t nj = v[B_LB].shape[0], K = v[B_LB].shape[1], nt = v[B_LB].shape[2];
    const Py_ssize_t R = v[B_TRES].shape[1], S = v[B_TTAIL].shape[1];
    const Py_ssize_t T = v[B_TRES].shape[0], P = v[B_PRES].shape[0];
    int ok = K >= 1 && K <= PD_MAX_CROPS && v[B_TTAIL].shape[0] == T
             && v[B_PRES].shape[1] == K && v[B_PRES].shape[2] == R
             && v[B_PTAIL].shape[0] == P && v[B_PTAIL].shape[1] == K
             && v[B_PTAIL].shape[2] == S && v[B_TILES].shape[0] == nt
             && v[B_PHOTOS].shape[0] == nj && row0 >= 0 && col0 >= 0
             && v[B_COST].shape[photo_major] >= row0 + nt
             && v[B_COST].shape[!photo_major] >= col0 + nj
             && v[B_CROP].shape[0] == v[B_COST].shape[0]
             && v[B_CROP].shape[1] == v[B_COST].shape[1] && v[B_STATS].shape[0] == PD_N_STATS
             && v[B_HIST].shape[0] == K + 1 && seg >= 1 && R >= 1
             && S == (R + seg - 1) / seg;
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "refine: inconsistent array shapes");
        goto fail;
    }
    if (check_indices(&v[B_TILES], T, "tiles") < 0
        || check_indices(&v[B_PHOTOS], P, "photos") < 0)
        goto fail;
    if (cap_obj != Py_None) {
        static const char *cap_names[3] = {"cap row", "cap col", "cap scale"};
        if (!PyTuple_Check(cap_obj) || PyTuple_GET_SIZE(cap_obj) != 3) {
            PyErr_SetString(PyExc_TypeError, "refine: cap must be None or (row, col, scale)");
            goto fail;
        }
        for (; have_cap < 3; have_cap++)
            if (get_array(PyTuple_GET_ITEM(cap_obj, have_cap), &cap_view[have_cap],
                          cap_names[have_cap], 'f', 4, 1, 0) < 0)
                goto fail;
        if (cap_view[0].shape[0] != nt || cap_view[1].shape[0] != nj
            || cap_view[2].shape[0] != nt) {
            PyErr_SetString(PyExc_ValueError, "refine: cap row/scale need one value per tile, "
                                              "col one per photo");
            goto fail;
        }
    }
    const Job job = {
        .lb = v[B_LB].buf, .tile_res = v[B_TRES].buf, .tile_tail = v[B_TTAIL].buf,
        .tiles = v[B_TILES].buf, .photo_res = v[B_PRES].buf, .photo_tail = v[B_PTAIL].buf,
        .photos = v[B_PHOTOS].buf, .nt = nt, .nj = nj, .K = K, .R = R, .S = S, .seg = seg,
        .scale = (float)scale, .margin = (float)margin, .cost = v[B_COST].buf,
        .crop = v[B_CROP].buf, .cap_row = have_cap ? cap_view[0].buf : NULL,
        .cap_col = have_cap ? cap_view[1].buf : NULL,
        .cap_scale = have_cap ? cap_view[2].buf : NULL, .row0 = row0, .col0 = col0,
        .ld = v[B_COST].shape[1], .photo_major = photo_major,
    };
    const int avx2 = !portable && cpu_has_avx2();
    (void)avx2; /* unused without AVX2 support */
    Counts counts;
    memset(&counts, 0, sizeof counts);
    Py_BEGIN_ALLOW_THREADS
#if PD_HAVE_AVX2
    if (avx2)
        run_avx2(&job, &counts);
    else
#endif
        run_portable(&job, &counts);
    Py_END_ALLOW_THREADS
    int64_t *stats = v[B_STATS].buf, *hist = v[B_HIST].buf;
    stats[PD_STAT_PAIRS] += (int64_t)nt * nj;
    stats[PD_STAT_STARTED] += counts.started;
    stats[PD_STAT_COMPLETED] += counts.completed;
    stats[PD_STAT_SEGMENTS] += counts.segments;
    stats[PD_STAT_PRUNED] += counts.pruned;
    for (Py_ssize_t k = 0; k <= K; k++)
        hist[k] += counts.hist[k];
    for (; have_cap > 0; have_cap--)
        PyBuffer_Release(&cap_view[have_cap - 1]);
    for (got = B_COUNT; got > 0; got--)
        PyBuffer_Release(&v[got - 1]);
    Py_RETURN_NONE;

fail:
    for (; have_cap > 0; have_cap--)
        PyBuffer_Release(&cap_view[have_cap - 1]);
    for (; got > 0; got--)
        PyBuffer_Release(&v[got - 1]);
    return NULL;
}

static PyObject *py_simd(PyObject *self, PyObject *args)
{
    return (void)self, (void)args, PyUnicode_FromString(cpu_has_avx2() ? "avx2" : "portable");
}

static PyMethodDef methods[] = {
    {"refine", py_refine, METH_VARARGS,
     "refine(lb, tile_res, tile_tail, tiles, photo_res, photo_tail, photos, seg, scale, "
     "margin, cost, crop, row0, col0, stats, hist, portable, cap, photo_major): exact best "
     "crop of "
     "every pair from its bounds (below its cap, when a cap is given)."},
    {"simd", py_simd, METH_NOARGS, "simd() -> str: 'avx2' or 'portable' kernels."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_pairdot",
    "Exact refinement of coarse crop-candidate bounds (gathered residual dot products).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__pairdot(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && (PyModule_AddIntConstant(m, "N_STATS", PD_N_STATS) < 0
                      || PyModule_AddIntConstant(m, "PRUNED", PD_PRUNED) < 0)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
