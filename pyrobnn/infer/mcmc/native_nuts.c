/* The native backend of pyrobnn's NUTS: the potential energy of a small MLP BNN with its
 * closed-form gradient, the leapfrog step, and the whole multinomial NUTS transition, for C
 * independent chains in one call.  Plain C99 and libm; compiled at first use by
 * pyrobnn/infer/mcmc/native.py (cc -O3 -shared -fPIC) and called through ctypes on the raw
 * pointers of contiguous float64 CPU tensors.
 *
 * Potential (weights w packed into one vector, the layout given by the caller):
 *
 *     U(w) = Σ_k ½ (w_k − μ_k)² / s_k²  +  Σ_n ℓ(f(x_n; w), y_n)  +  const,
 *
 * ℓ = ½ (f − y)²/σ² (Gaussian, fixed σ) or softplus(f) − y f (Bernoulli on the logit f);
 * const holds the normalising terms (computed by the caller).  The network is a chain of
 * fully connected layers h_{l+1} = φ_l(h_l W_lᵀ + b_l), φ ∈ {identity, tanh, relu, sigmoid};
 * the gradient is back-propagation written out: with δ_L = ∂ℓ/∂f · φ'_L,
 * ∂U/∂W_l = δ_lᵀ h_l, ∂U/∂b_l = Σ_n δ_l, δ_{l−1} = (δ_l W_l) ⊙ φ'_{l−1}(h_l) (φ' from φ's value:
 * 1 − h², h(1 − h), [h > 0], 1).
 *
 * NUTS: the multinomial variant with the generalised no-U-turn criterion, as
 * pyrobnn/infer/mcmc/tree.py documents it: the trajectory doubles in a random direction; a
 * sub-tree of 2^j steps is built recursively, a state in it drawn with probability ∝ exp(−H)
 * (progressive sampling of the two halves), and it is invalid when a state diverged
 * (H − H_0 > 1000 or NaN) or one of its binary sub-trees turned (ρ·M⁻¹r⁻ ≤ 0 or ρ·M⁻¹r⁺ ≤ 0,
 * ρ the sum of its momenta); an invalid sub-tree ends the doubling unused, a valid one replaces
 * the proposal with probability min(1, W_sub / W_old) (biased progressive sampling); the
 * doubling stops when the whole trajectory turns or at max_tree_depth.
 *
 * Randomness: one 64-bit seed per chain and transition (drawn by the caller from its torch
 * generator), expanded by splitmix64 into a xoshiro256** state; normals by Box–Muller.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS 64
#define MAX_ENERGY_ERROR 1000.0

enum { ACT_IDENTITY = 0, ACT_TANH = 1, ACT_RELU = 2, ACT_SIGMOID = 3 };
enum { LIK_GAUSSIAN = 0, LIK_BERNOULLI = 1 };

typedef struct {
    int64_t n_data, dim, n_layers, likelihood;
    const int64_t *width;     /* n_layers + 1 */
    const int64_t *act;       /* n_layers: activation after each layer */
    const int64_t *w_off;     /* offset of layer l's weight (out, in), row-major, in w */
    const int64_t *b_off;     /* offset of its bias (out,), −1 without */
    const double *x;          /* xᵀ: (width[0], n_data) */
    const double *y;          /* (n_data,) */
    const double *prior_loc;  /* (dim,) */
    const double *prior_prec; /* (dim,) 1 / s² */
    double noise_prec;        /* 1 / σ² (Gaussian) */
    double constant;          /* the normalising terms of U */
} Model;

/* 1 when the CPU runs the instruction-set variant ``what`` ("avx2": AVX2 and FMA) */
int pyrobnn_cpu_supports(const char *what) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (strcmp(what, "avx2") == 0) {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
#else
    (void)what;
#endif
    return 0;
}

/* ------------------------------------------------------------------ potential and gradient */

/* Activations are stored feature-major, h_l as (width_l, N), so that every inner loop runs
 * over the N examples: the forward pass and δ_{l−1} are sums of scaled rows (axpy), the
 * weight gradient a dot product of two rows.  x is given as xᵀ (width_0, N). */

int64_t pyrobnn_work_size(const Model *m) {
    int64_t acts = 0, maxw = 0;
    for (int64_t l = 0; l < m->n_layers; l++) {
        acts += m->n_data * m->width[l + 1];
        if (m->width[l + 1] > maxw) maxw = m->width[l + 1];
        if (m->width[l] > maxw) maxw = m->width[l];
    }
    return acts + 2 * m->n_data * maxw;
}

/* e^r − 1 and 2^k for z = k ln 2 + r, |r| ≤ ln 2 / 2, |z| ≤ 708 (Cody–Waite: ln 2 in two parts):
 * e^r − 1 = r Σ_{j≤11} r^j/(j+1)! (Estrin's scheme: short dependency chains; truncation < 2e-16
 * relative), 2^k from the exponent bits.  Branch-free, so that loops of it vectorise. */
static inline double expm1_reduced(double z, double *scale) {
    const double shift = 0x1.8p52;
    const double t = z * 1.4426950408889634 + shift;
    const double k = t - shift; /* round(z / ln 2) */
    int64_t ki, sb;
    memcpy(&ki, &t, sizeof ki);
    memcpy(&sb, &shift, sizeof sb);
    ki -= sb;
    const double r = (z - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10;
    const double r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
    const double c01 = 1.0 + r * 0.5, c23 = 1.0 / 6.0 + r * (1.0 / 24.0), c45 = 1.0 / 120.0 + r * (1.0 / 720.0),
                 c67 = 1.0 / 5040.0 + r * (1.0 / 40320.0), c89 = 1.0 / 362880.0 + r * (1.0 / 3628800.0),
                 c1011 = 1.0 / 39916800.0 + r * (1.0 / 479001600.0);
    const double c03 = c01 + r2 * c23, c47 = c45 + r2 * c67, c811 = c89 + r2 * c1011;
    const uint64_t sbits = (uint64_t)(ki + 1023) << 52;
    memcpy(scale, &sbits, sizeof *scale);
    return r * (c03 + r4 * c47 + r8 * (c811 + r4 * (1.0 / 6227020800.0)));
}

/* e^z = 2^k (1 + q) for |z| ≤ 708; within a few ulp of libm's exp */
static inline double exp_bounded(double z) {
    double scale;
    const double q = expm1_reduced(z, &scale);
    return scale * q + scale;
}

/* e^z − 1 for 0 ≤ z ≤ 708 (NaN stays NaN): q for k = 0 (no cancellation where e^z − 1 is
 * small), else 2^k q + (2^k − 1) (little cancellation: e^z − 1 ≥ √2 − 1 there) */
static inline double expm1_nonneg(double z) {
    double scale;
    const double q = expm1_reduced(z, &scale);
    const double big = scale * q + (scale - 1.0);
    return scale == 1.0 ? q : big;
}

/* tanh |x| = m / (m + 2), m = e^{2|x|} − 1 (e^{40} − 1 beyond |x| = 20, where tanh is 1 in
 * double), with the sign of x; within 7e-16 relative of libm's tanh; NaN stays NaN. */
static inline double tanh_fast(double x) {
    const double a2 = 2.0 * fabs(x);
    const double m = expm1_nonneg(a2 > 40.0 ? 40.0 : a2);
    const double t = m / (m + 2.0), nt = -t;
    return x < 0.0 ? nt : t;
}

static inline double sigmoid_fast(double v) {
    const double c = v > 700.0 ? 700.0 : (v < -700.0 ? -700.0 : v);
    const double mc = -c;
    return 1.0 / (1.0 + exp_bounded(mc));
}

static void activate(int64_t act, double *v, int64_t n) {
    switch (act) {
    case ACT_TANH: for (int64_t k = 0; k < n; k++) v[k] = tanh_fast(v[k]); break;
    case ACT_RELU: for (int64_t k = 0; k < n; k++) v[k] = v[k] > 0.0 ? v[k] : 0.0; break;
    case ACT_SIGMOID: for (int64_t k = 0; k < n; k++) v[k] = sigmoid_fast(v[k]); break;
    default: break;
    }
}

/* δ ← δ ⊙ φ'(pre-activation), from the activation's value h */
static void times_derivative(int64_t act, double *restrict d, const double *restrict h, int64_t n) {
    switch (act) {
    case ACT_TANH: for (int64_t k = 0; k < n; k++) d[k] *= 1.0 - h[k] * h[k]; break;
    case ACT_RELU: for (int64_t k = 0; k < n; k++) d[k] = h[k] > 0.0 ? d[k] : 0.0; break;
    case ACT_SIGMOID: for (int64_t k = 0; k < n; k++) d[k] *= h[k] * (1.0 - h[k]); break;
    default: break;
    }
}

static inline void axpy(double *restrict y, const double *restrict x, double c, int64_t n) {
    for (int64_t k = 0; k < n; k++) y[k] += c * x[k];
}

/* 4 doubles as one value (a GNU C vector: one AVX register, or two SSE2 ones) */
typedef double v4d __attribute__((vector_size(32)));
static inline v4d load4(const double *p) { v4d v; memcpy(&v, p, sizeof v); return v; }
static inline void store4(double *p, v4d v) { memcpy(p, &v, sizeof v); }

/* out[r][n] += Σ_c A[r][c] · in[c][n] for r < rows, c < inner, n < N, where A[r][c] =
 * A[r·sr + c·sc]: blocks of 4 rows × 8 examples are accumulated in registers over c (a
 * matrix-product kernel: one store per block instead of one per term); every element still
 * adds its terms in the order c = 0, 1, ..., as a sequence of axpy's would. */
static void matmul_acc(double *restrict out, const double *restrict A, int64_t sr, int64_t sc,
                       const double *restrict in, int64_t rows, int64_t inner, int64_t N) {
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4) {
        double *o0 = out + r * N, *o1 = o0 + N, *o2 = o1 + N, *o3 = o2 + N;
        const double *a0 = A + r * sr, *a1 = a0 + sr, *a2 = a1 + sr, *a3 = a2 + sr;
        int64_t n = 0;
        for (; n + 8 <= N; n += 8) {
            v4d s00 = load4(o0 + n), s01 = load4(o0 + n + 4), s10 = load4(o1 + n), s11 = load4(o1 + n + 4);
            v4d s20 = load4(o2 + n), s21 = load4(o2 + n + 4), s30 = load4(o3 + n), s31 = load4(o3 + n + 4);
            for (int64_t c = 0; c < inner; c++) {
                const v4d x0 = load4(in + c * N + n), x1 = load4(in + c * N + n + 4);
                const double c0 = a0[c * sc], c1 = a1[c * sc], c2 = a2[c * sc], c3 = a3[c * sc];
                s00 += c0 * x0; s01 += c0 * x1;
                s10 += c1 * x0; s11 += c1 * x1;
                s20 += c2 * x0; s21 += c2 * x1;
                s30 += c3 * x0; s31 += c3 * x1;
            }
            store4(o0 + n, s00); store4(o0 + n + 4, s01); store4(o1 + n, s10); store4(o1 + n + 4, s11);
            store4(o2 + n, s20); store4(o2 + n + 4, s21); store4(o3 + n, s30); store4(o3 + n + 4, s31);
        }
        for (int64_t c = 0; n < N && c < inner; c++) {
            const double *x = in + c * N;
            axpy(o0 + n, x + n, a0[c * sc], N - n);
            axpy(o1 + n, x + n, a1[c * sc], N - n);
            axpy(o2 + n, x + n, a2[c * sc], N - n);
            axpy(o3 + n, x + n, a3[c * sc], N - n);
        }
    }
    for (; r < rows; r++)
        for (int64_t c = 0; c < inner; c++) axpy(out + r * N, in + c * N, A[r * sr + c * sc], N);
}

/* Σ_k a_k b_k in four interleaved partial sums */
static inline double dot(const double *restrict a, const double *restrict b, int64_t n) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    int64_t k = 0;
    for (; k + 4 <= n; k += 4) {
        s0 += a[k] * b[k];
        s1 += a[k + 1] * b[k + 1];
        s2 += a[k + 2] * b[k + 2];
        s3 += a[k + 3] * b[k + 3];
    }
    for (; k < n; k++) s0 += a[k] * b[k];
    return (s0 + s1) + (s2 + s3);
}

static inline double sum(const double *a, int64_t n) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    int64_t k = 0;
    for (; k + 4 <= n; k += 4) {
        s0 += a[k];
        s1 += a[k + 1];
        s2 += a[k + 2];
        s3 += a[k + 3];
    }
    for (; k < n; k++) s0 += a[k];
    return (s0 + s1) + (s2 + s3);
}

static inline double hsum(v4d s) { return (s[0] + s[1]) + (s[2] + s[3]); }

/* g[r·sr + c·sc] += Σ_n P[r][n] · Q[c][n] for r < rows, c < cols: blocks of 2 × 4 dot products
 * share their loads; each is summed as dot() sums it (four partial sums by n mod 4, the tail
 * into the first, combined as (s0 + s1) + (s2 + s3)) */
static void matmul_dots(double *g, int64_t sr, int64_t sc, const double *restrict P, const double *restrict Q,
                        int64_t rows, int64_t cols, int64_t N) {
    const int64_t N4 = N - N % 4;
    int64_t r = 0;
    for (; r + 2 <= rows; r += 2) {
        const double *p0 = P + r * N, *p1 = p0 + N;
        int64_t c = 0;
        for (; c + 4 <= cols; c += 4) {
            const double *q0 = Q + c * N, *q1 = q0 + N, *q2 = q1 + N, *q3 = q2 + N;
            v4d s00 = {0}, s01 = {0}, s02 = {0}, s03 = {0}, s10 = {0}, s11 = {0}, s12 = {0}, s13 = {0};
            for (int64_t n = 0; n < N4; n += 4) {
                const v4d x0 = load4(p0 + n), x1 = load4(p1 + n);
                const v4d y0 = load4(q0 + n), y1 = load4(q1 + n), y2 = load4(q2 + n), y3 = load4(q3 + n);
                s00 += x0 * y0; s01 += x0 * y1; s02 += x0 * y2; s03 += x0 * y3;
                s10 += x1 * y0; s11 += x1 * y1; s12 += x1 * y2; s13 += x1 * y3;
            }
            for (int64_t n = N4; n < N; n++) {
                s00[0] += p0[n] * q0[n]; s01[0] += p0[n] * q1[n]; s02[0] += p0[n] * q2[n]; s03[0] += p0[n] * q3[n];
                s10[0] += p1[n] * q0[n]; s11[0] += p1[n] * q1[n]; s12[0] += p1[n] * q2[n]; s13[0] += p1[n] * q3[n];
            }
            g[r * sr + c * sc] += hsum(s00); g[r * sr + (c + 1) * sc] += hsum(s01);
            g[r * sr + (c + 2) * sc] += hsum(s02); g[r * sr + (c + 3) * sc] += hsum(s03);
            g[(r + 1) * sr + c * sc] += hsum(s10); g[(r + 1) * sr + (c + 1) * sc] += hsum(s11);
            g[(r + 1) * sr + (c + 2) * sc] += hsum(s12); g[(r + 1) * sr + (c + 3) * sc] += hsum(s13);
        }
        for (; c < cols; c++) {
            g[r * sr + c * sc] += dot(p0, Q + c * N, N);
            g[(r + 1) * sr + c * sc] += dot(p1, Q + c * N, N);
        }
    }
    for (; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) g[r * sr + c * sc] += dot(P + r * N, Q + c * N, N);
}

static inline double softplus(double v) { return v > 0.0 ? v + log1p(exp(-v)) : log1p(exp(v)); }

/* U(w) and g = ∇U(w); ws holds pyrobnn_work_size(m) doubles */
static double pot_grad(const Model *m, const double *w, double *g, double *ws) {
    const int64_t N = m->n_data, L = m->n_layers;
    int64_t maxw = 0;
    for (int64_t l = 0; l <= L; l++) if (m->width[l] > maxw) maxw = m->width[l];
    const double *h[MAX_LAYERS + 1];
    h[0] = m->x;
    double *p = ws;
    for (int64_t l = 0; l < L; l++) { h[l + 1] = p; p += N * m->width[l + 1]; }
    double *delta = p, *delta2 = p + N * maxw;

    /* forward: row o of h_{l+1} = φ(b_o + Σ_i W_oi · row i of h_l) */
    for (int64_t l = 0; l < L; l++) {
        const int64_t a = m->width[l], b = m->width[l + 1];
        const double *W = w + m->w_off[l];
        double *hout = (double *)h[l + 1];
        for (int64_t o = 0; o < b; o++) {
            double *row = hout + o * N;
            const double bo = m->b_off[l] >= 0 ? w[m->b_off[l] + o] : 0.0;
            for (int64_t n = 0; n < N; n++) row[n] = bo;
        }
        matmul_acc(hout, W, a, 1, h[l], b, a, N);
        activate(m->act[l], hout, b * N);
    }

    /* likelihood: U and δ = ∂U/∂f (one output per example) */
    double ul = 0.0, up = 0.0;
    const double *f = h[L];
    if (m->likelihood == LIK_GAUSSIAN) {
        for (int64_t n = 0; n < N; n++) delta[n] = f[n] - m->y[n];
        ul = 0.5 * m->noise_prec * dot(delta, delta, N);
        for (int64_t n = 0; n < N; n++) delta[n] *= m->noise_prec;
    } else {
        for (int64_t n = 0; n < N; n++) {
            const double v = f[n], t = m->y[n];
            ul += softplus(v) - t * v;
            delta[n] = sigmoid_fast(v) - t;
        }
    }
    times_derivative(m->act[L - 1], delta, f, N);

    /* prior */
    for (int64_t k = 0; k < m->dim; k++) {
        const double d = w[k] - m->prior_loc[k];
        up += m->prior_prec[k] * d * d;
        g[k] = m->prior_prec[k] * d;
    }

    /* backward: ∂U/∂W_oi = δ_o · h_i (rows), ∂U/∂b_o = Σ_n δ_o, δ_{l−1, i} = Σ_o W_oi δ_o ⊙ φ' */
    for (int64_t l = L - 1; l >= 0; l--) {
        const int64_t a = m->width[l], b = m->width[l + 1];
        const double *W = w + m->w_off[l];
        double *gW = g + m->w_off[l];
        matmul_dots(gW, a, 1, delta, h[l], b, a, N);
        if (m->b_off[l] >= 0)
            for (int64_t o = 0; o < b; o++) g[m->b_off[l] + o] += sum(delta + o * N, N);
        if (l > 0) {
            for (int64_t k = 0; k < a * N; k++) delta2[k] = 0.0;
            matmul_acc(delta2, W, 1, a, delta, a, b, N);
            times_derivative(m->act[l - 1], delta2, h[l], a * N);
            double *t = delta; delta = delta2; delta2 = t;
        }
    }
    return m->constant + 0.5 * up + ul;
}

/* U and ∇U for C rows of z (C, D) */
int pyrobnn_potential(const Model *m, int64_t chains, const double *z, double *u, double *g) {
    double *ws = malloc((size_t)pyrobnn_work_size(m) * sizeof(double));
    if (!ws) return 1;
    for (int64_t c = 0; c < chains; c++) u[c] = pot_grad(m, z + c * m->dim, g + c * m->dim, ws);
    free(ws);
    return 0;
}

/* one velocity-Verlet step: r ← r − ε/2 g; z ← z + ε M⁻¹ r; (u, g) ← (U, ∇U)(z); r ← r − ε/2 g */
static double leapfrog(const Model *m, double *z, double *r, double *g, double eps, const double *inv_mass,
                       double *ws) {
    const int64_t D = m->dim;
    const double half = 0.5 * eps;
    for (int64_t k = 0; k < D; k++) {
        r[k] -= half * g[k];
        z[k] += eps * (inv_mass[k] * r[k]);
    }
    const double u = pot_grad(m, z, g, ws);
    for (int64_t k = 0; k < D; k++) r[k] -= half * g[k];
    return u;
}

/* a leapfrog step of every chain on the packed state (C, 3, D) = [z, r, ∇U(z)], with signed
 * step sizes step (C,) and inverse masses (C, D); writes the new packed state and U (C,) */
int pyrobnn_leapfrog(const Model *m, int64_t chains, const double *state, const double *step,
                     const double *inv_mass, double *out, double *u) {
    const int64_t D = m->dim;
    double *ws = malloc((size_t)pyrobnn_work_size(m) * sizeof(double));
    if (!ws) return 1;
    if (out != state) memcpy(out, state, (size_t)(chains * 3 * D) * sizeof(double));
    for (int64_t c = 0; c < chains; c++) {
        double *s = out + c * 3 * D;
        u[c] = leapfrog(m, s, s + D, s + 2 * D, step[c], inv_mass + c * D, ws);
    }
    free(ws);
    return 0;
}

/* ------------------------------------------------------------------ random numbers */

typedef struct { uint64_t s[4]; int has_spare; double spare; } Rng;

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void rng_seed(Rng *r, uint64_t seed) {
    for (int k = 0; k < 4; k++) r->s[k] = splitmix64(&seed);
    r->has_spare = 0;
}

static inline uint64_t rng_next(Rng *r) { /* xoshiro256** (Blackman & Vigna 2018) */
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 45);
    return result;
}

/* uniform on [0, 1) with 53 random bits */
static inline double rng_uniform(Rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

static double rng_normal(Rng *r) { /* Box–Muller */
    if (r->has_spare) { r->has_spare = 0; return r->spare; }
    const double u1 = 1.0 - rng_uniform(r), u2 = rng_uniform(r);
    const double rad = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
    r->spare = rad * sin(th);
    r->has_spare = 1;
    return rad * cos(th);
}

/* ------------------------------------------------------------------ NUTS */

typedef struct { double *z, *r, *g; double u; } Point;

typedef struct {
    const Model *m;
    int64_t D;
    const double *inv_mass;
    double eps, h0;
    double *ws;
    Point *edge;                    /* the end of the trajectory being extended */
    double *rho, *sz, *sg, *rfirst; /* per level j: momentum sum, sample (z, ∇U), first momentum */
    double *su, *sh, *logw;         /* per level: sample's U and H, log Σ exp(−H) */
    Rng rng;
    int64_t n_steps;
    double sum_accept;
    int diverging;
} Tree;

static inline double kinetic(const double *r, const double *inv_mass, int64_t D) {
    double k = 0.0;
    for (int64_t i = 0; i < D; i++) k += r[i] * r[i] * inv_mass[i];
    return 0.5 * k;
}

static inline int turning(const double *rho, const double *r_a, const double *r_b, const double *inv_mass,
                          int64_t D) {
    double da = 0.0, db = 0.0;
    for (int64_t i = 0; i < D; i++) {
        const double v = rho[i] * inv_mass[i];
        da += v * r_a[i];
        db += v * r_b[i];
    }
    return !(da > 0.0) || !(db > 0.0);
}

static inline double logaddexp(double a, double b) {
    if (a == -INFINITY) return b;
    if (b == -INFINITY) return a;
    return a > b ? a + log1p(exp(b - a)) : b + log1p(exp(a - b));
}

/* a sub-tree of 2^j leapfrog steps from t->edge; its summaries in level j's buffers.
 * Returns 1 when valid (no divergence, no binary sub-tree turned). */
static int build(Tree *t, int j) {
    const int64_t D = t->D;
    double *rho = t->rho + j * D, *sz = t->sz + j * D, *sg = t->sg + j * D, *rf = t->rfirst + j * D;
    Point *e = t->edge;
    if (j == 0) {
        e->u = leapfrog(t->m, e->z, e->r, e->g, t->eps, t->inv_mass, t->ws);
        const double H = e->u + kinetic(e->r, t->inv_mass, D);
        const double dH = H - t->h0;
        t->n_steps++;
        t->sum_accept += isnan(dH) ? 0.0 : (dH > 0.0 ? exp(-dH) : 1.0);
        if (!(dH <= MAX_ENERGY_ERROR)) { t->diverging = 1; return 0; }
        memcpy(rho, e->r, (size_t)D * sizeof(double));
        memcpy(rf, e->r, (size_t)D * sizeof(double));
        memcpy(sz, e->z, (size_t)D * sizeof(double));
        memcpy(sg, e->g, (size_t)D * sizeof(double));
        t->su[j] = e->u;
        t->sh[j] = H;
        t->logw[j] = -H;
        return 1;
    }
    if (!build(t, j - 1)) return 0;
    const double *rho1 = t->rho + (j - 1) * D, *sz1 = t->sz + (j - 1) * D, *sg1 = t->sg + (j - 1) * D;
    memcpy(rho, rho1, (size_t)D * sizeof(double));
    memcpy(rf, t->rfirst + (j - 1) * D, (size_t)D * sizeof(double));
    memcpy(sz, sz1, (size_t)D * sizeof(double));
    memcpy(sg, sg1, (size_t)D * sizeof(double));
    t->su[j] = t->su[j - 1];
    t->sh[j] = t->sh[j - 1];
    t->logw[j] = t->logw[j - 1];
    if (!build(t, j - 1)) return 0;
    /* the second half's state replaces the first's with probability W_2 / (W_1 + W_2) */
    const double lw = logaddexp(t->logw[j], t->logw[j - 1]);
    if (rng_uniform(&t->rng) < exp(t->logw[j - 1] - lw)) {
        memcpy(sz, sz1, (size_t)D * sizeof(double));
        memcpy(sg, sg1, (size_t)D * sizeof(double));
        t->su[j] = t->su[j - 1];
        t->sh[j] = t->sh[j - 1];
    }
    t->logw[j] = lw;
    for (int64_t i = 0; i < D; i++) rho[i] += rho1[i];
    return !turning(rho, rf, e->r, t->inv_mass, D);
}

/* One NUTS transition of every chain.  zg (C, 3, D) packed [z, r (unused), ∇U(z)] and u (C,)
 * are read and overwritten with the chosen state; step_size (C,), inv_mass (C, D), seeds (C,).
 * Statistics out: accept_prob (mean min(1, exp(H_0 − H_k)) over the steps taken), diverging,
 * tree_depth (doublings merged), num_steps (leapfrog steps taken), energy (H of the chosen
 * state).  Returns 0, or 1 when memory ran out. */
int pyrobnn_nuts(const Model *m, int64_t chains, double *zg, double *u, const double *step_size,
                 const double *inv_mass, const uint64_t *seeds, int64_t max_depth, double *accept_prob,
                 uint8_t *diverging, int64_t *tree_depth, int64_t *num_steps, double *energy) {
    const int64_t D = m->dim;
    const int64_t levels = max_depth > 0 ? max_depth : 1;
    const size_t nws = (size_t)pyrobnn_work_size(m);
    const size_t nbuf = nws + (size_t)(4 * levels * D + 3 * levels) + (size_t)(7 * D);
    double *buf = malloc(nbuf * sizeof(double));
    if (!buf) return 1;
    Tree t;
    t.m = m;
    t.D = D;
    t.ws = buf;
    double *p = buf + nws;
    t.rho = p; p += levels * D;
    t.sz = p; p += levels * D;
    t.sg = p; p += levels * D;
    t.rfirst = p; p += levels * D;
    t.su = p; p += levels;
    t.sh = p; p += levels;
    t.logw = p; p += levels;
    Point left = {p, p + D, p + 2 * D, 0.0};
    p += 3 * D;
    Point right = {p, p + D, p + 2 * D, 0.0};
    p += 3 * D;
    double *rho = p;

    for (int64_t c = 0; c < chains; c++) {
        double *z = zg + c * 3 * D, *g = z + 2 * D;
        const double *im = inv_mass + c * D;
        rng_seed(&t.rng, seeds[c]);
        t.inv_mass = im;
        t.n_steps = 0;
        t.sum_accept = 0.0;
        t.diverging = 0;
        for (int64_t i = 0; i < D; i++) left.r[i] = rng_normal(&t.rng) / sqrt(im[i]);
        memcpy(left.z, z, (size_t)D * sizeof(double));
        memcpy(left.g, g, (size_t)D * sizeof(double));
        left.u = u[c];
        memcpy(right.z, z, (size_t)D * sizeof(double));
        memcpy(right.r, left.r, (size_t)D * sizeof(double));
        memcpy(right.g, g, (size_t)D * sizeof(double));
        right.u = u[c];
        memcpy(rho, left.r, (size_t)D * sizeof(double));
        const double h0 = u[c] + kinetic(left.r, im, D);
        t.h0 = h0;
        double log_w = -h0, prop_u = u[c], prop_h = h0;
        int64_t depth = 0;
        for (int64_t j = 0; j < max_depth; j++) {
            const int forward = rng_uniform(&t.rng) < 0.5;
            t.edge = forward ? &right : &left;
            t.eps = forward ? step_size[c] : -step_size[c];
            if (!build(&t, (int)j)) break;
            /* biased progressive sampling: move to the sub-tree with probability min(1, W_sub / W_old) */
            const double lw_sub = t.logw[j];
            if (log(rng_uniform(&t.rng)) < lw_sub - log_w) {
                memcpy(z, t.sz + j * D, (size_t)D * sizeof(double));
                memcpy(g, t.sg + j * D, (size_t)D * sizeof(double));
                prop_u = t.su[j];
                prop_h = t.sh[j];
            }
            log_w = logaddexp(log_w, lw_sub);
            const double *rs = t.rho + j * D;
            for (int64_t i = 0; i < D; i++) rho[i] += rs[i];
            depth++;
            if (turning(rho, left.r, right.r, im, D)) break;
        }
        u[c] = prop_u;
        energy[c] = prop_h;
        accept_prob[c] = t.sum_accept / (double)(t.n_steps > 0 ? t.n_steps : 1);
        diverging[c] = (uint8_t)t.diverging;
        tree_depth[c] = depth;
        num_steps[c] = t.n_steps;
    }
    free(buf);
    return 0;
}
