/* The compiled encoders of shared/codecs.py: the 16- and 8-bit block tiers, and the 32-bit tier.
 *
 * numpy needs six passes over the whole series for a block tier (min, max, subtract, scale, clip,
 * round); here each block of BLOCK values is read from memory once and then worked on in L1. The
 * 32-bit tier converts and measures its exact error in one pass, and a block tier decodes in one.
 * The arithmetic is the numpy references', operation for operation (codecs._encode_blocks_numpy,
 * _encode32_numpy, _decode_blocks_numpy), so both give the same results bit for bit; the tests
 * compare them. -ffp-contract=off keeps the compiler from fusing a multiply and an add into an
 * FMA, which would round differently.
 *
 * No numpy headers: the arrays arrive through the buffer protocol, so the build needs only a C
 * compiler and Python.h.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* Round half to even for |t| < 2**51 without rint(): adding 1.5 * 2**52 leaves no fractional bits,
 * so the addition itself rounds, in the default rounding mode, exactly as numpy.rint does, and the
 * low bits of the sum's mantissa are 2**51 + t: t itself modulo 2**16, no float-to-int conversion. */
#define ROUNDER 6755399441055744.0

typedef void (*range_fn)(const double *, Py_ssize_t, double *, double *);

typedef struct {
    double lo, hi, ref, scale, inv;
    int empty; /* every value in the block is NaN */
    int infinite;
} block_meta;

/* Smallest and largest non-NaN value, in GCC/Clang vector types so that it compiles to SIMD
 * compare-and-select on any target (SSE2, AVX, NEON) without a serial reduction. A NaN compares
 * false and so never replaces a bound, as numpy.fmin/fmax ignore it. */
typedef double vd __attribute__((vector_size(16)));
typedef long long vi __attribute__((vector_size(16)));
#define VN 2

static inline __attribute__((always_inline)) vd vselect(vi m, vd a, vd b)
{
    return (vd)(((vi)a & m) | ((vi)b & ~m));
}

static void block_range(const double *x, Py_ssize_t m, double *plo, double *phi)
{
    vd lo[4], hi[4];
    for (int j = 0; j < 4; j++) {
        lo[j] = (vd){INFINITY, INFINITY};
        hi[j] = (vd){-INFINITY, -INFINITY};
    }
    Py_ssize_t i = 0;
    for (; i + 4 * VN <= m; i += 4 * VN) {
        for (int j = 0; j < 4; j++) {
            vd a;
            memcpy(&a, x + i + j * VN, sizeof a); /* unaligned load */
            lo[j] = vselect(a < lo[j], a, lo[j]);
            hi[j] = vselect(a > hi[j], a, hi[j]);
        }
    }
    for (int j = 1; j < 4; j++) {
        lo[0] = vselect(lo[j] < lo[0], lo[j], lo[0]);
        hi[0] = vselect(hi[j] > hi[0], hi[j], hi[0]);
    }
    double l = lo[0][1] < lo[0][0] ? lo[0][1] : lo[0][0];
    double h = hi[0][1] > hi[0][0] ? hi[0][1] : hi[0][0];
    for (; i < m; i++) {
        double v = x[i];
        l = v < l ? v : l;
        h = v > h ? v : h;
    }
    *plo = l;
    *phi = h;
}

/* The same formulas as _encode_blocks_numpy; see its docstring for why each term is there. */
static block_meta block_plan(range_fn range, const double *x, Py_ssize_t m, double levels)
{
    block_meta b;
    range(x, m, &b.lo, &b.hi);
    b.empty = b.lo > b.hi;
    if (b.empty) {
        b.lo = 0.0;
        b.hi = 0.0;
    }
    b.infinite = isinf(b.lo) || isinf(b.hi);
    int constant = b.hi == b.lo;
    b.ref = constant ? b.lo : b.lo * 0.5 + b.hi * 0.5;
    double half = b.hi * 0.5 - b.lo * 0.5;
    double mag = fmax(fabs(b.lo), fabs(b.hi));
    double floor_ = fmax(mag * 0x1p-50, DBL_MIN);
    b.scale = constant ? 1.0 : fmax(half / (levels * 0.5), floor_);
    b.inv = 1.0 / b.scale;
    return b;
}

/* Portable quantiser; also the tail of the SIMD ones. */
#define DEFINE_QUANTISE(NAME, T)                                                                 \
    static void NAME(const double *x, T *q, Py_ssize_t m, double ref, double inv, double qmax, \
                     T gap)                                                                      \
    {                                                                                            \
        for (Py_ssize_t i = 0; i < m; i++) {                                                     \
            double v = x[i];                                                                     \
            double t = (v - ref) * inv;                                                          \
            t = t < -qmax ? -qmax : t;                                                           \
            t = t > qmax ? qmax : t;                                                             \
            double r = t + ROUNDER; /* the low mantissa bits now hold t as an integer */         \
            uint64_t bits;                                                                       \
            memcpy(&bits, &r, sizeof bits);                                                      \
            q[i] = v == v ? (T)bits : gap; /* two's complement, as every target we build for */  \
        }                                                                                        \
    }

DEFINE_QUANTISE(quantise_i16, int16_t)
DEFINE_QUANTISE(quantise_i8, int8_t)

typedef void (*quant16_fn)(const double *, int16_t *, Py_ssize_t, double, double);
typedef void (*quant8_fn)(const double *, int8_t *, Py_ssize_t, double, double);

static void quant16_portable(const double *x, int16_t *q, Py_ssize_t m, double ref, double inv)
{
    quantise_i16(x, q, m, ref, inv, (double)INT16_MAX, INT16_MIN);
}

static void quant8_portable(const double *x, int8_t *q, Py_ssize_t m, double ref, double inv)
{
    quantise_i8(x, q, m, ref, inv, (double)INT8_MAX, INT8_MIN);
}

typedef void (*narrow32_fn)(const double *, float *, Py_ssize_t, double[3]);

/* The 32-bit tier: float64 -> float32 with the exact error measured in the same pass (numpy needs
 * a conversion, a subtraction, an absolute value, a division and two reductions over the series).
 * Four independent accumulators break the dependency chain of the running maxima. A NaN compares
 * false and never raises a maximum, as numpy.nanmax ignores it; so does 0/0 for a zero. */
static void narrow32_portable(const double *x, float *f, Py_ssize_t n, double out[3])
{
    double amax[4] = {0, 0, 0, 0}, rmax[4] = {0, 0, 0, 0}, big[4] = {0, 0, 0, 0};
    for (Py_ssize_t i = 0; i < n; i++) {
        int k = (int)(i & 3);
        double v = x[i], a = fabs(v);
        float c = (float)v; /* IEEE (Annex F): beyond float32 max gives inf, checked by the caller */
        f[i] = c;
        double e = fabs((double)c - v), r = e / a;
        amax[k] = e > amax[k] ? e : amax[k];
        rmax[k] = r > rmax[k] ? r : rmax[k];
        big[k] = a > big[k] ? a : big[k];
    }
    for (int k = 1; k < 4; k++) {
        amax[0] = amax[k] > amax[0] ? amax[k] : amax[0];
        rmax[0] = rmax[k] > rmax[0] ? rmax[k] : rmax[0];
        big[0] = big[k] > big[0] ? big[k] : big[0];
    }
    out[0] = amax[0];
    out[1] = rmax[0];
    out[2] = big[0];
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_AVX2_KERNEL 1

/* AVX2, chosen at import when the CPU has it. MINPD/MAXPD return their second operand when
 * either is NaN: min(x, lo) keeps lo (NaN ignored, as fmin), max(-qmax, t) and min(qmax, t) keep
 * a NaN t (as np.clip). VCVTPD2DQ rounds half to even in the default rounding mode (as rint) and
 * turns NaN into INT32_MIN, which signed saturation packs into the gap code, INT16_MIN or INT8_MIN. */
__attribute__((target("avx2"))) static void range_avx2(const double *x, Py_ssize_t m,
                                                        double *plo, double *phi)
{
    __m256d lo0 = _mm256_set1_pd(INFINITY), lo1 = lo0;
    __m256d hi0 = _mm256_set1_pd(-INFINITY), hi1 = hi0;
    Py_ssize_t i = 0;
    for (; i + 8 <= m; i += 8) {
        __m256d a = _mm256_loadu_pd(x + i), b = _mm256_loadu_pd(x + i + 4);
        lo0 = _mm256_min_pd(a, lo0);
        hi0 = _mm256_max_pd(a, hi0);
        lo1 = _mm256_min_pd(b, lo1);
        hi1 = _mm256_max_pd(b, hi1);
    }
    double l4[4], h4[4];
    _mm256_storeu_pd(l4, _mm256_min_pd(lo1, lo0));
    _mm256_storeu_pd(h4, _mm256_max_pd(hi1, hi0));
    double l = l4[0], h = h4[0];
    for (int k = 1; k < 4; k++) {
        l = l4[k] < l ? l4[k] : l;
        h = h4[k] > h ? h4[k] : h;
    }
    for (; i < m; i++) {
        double v = x[i];
        l = v < l ? v : l;
        h = v > h ? v : h;
    }
    *plo = l;
    *phi = h;
}

__attribute__((target("avx2"))) static inline __m128i scaled_i32(const double *x, __m256d ref,
                                                                  __m256d inv, __m256d qmax)
{
    __m256d t = _mm256_mul_pd(_mm256_sub_pd(_mm256_loadu_pd(x), ref), inv);
    t = _mm256_min_pd(qmax, _mm256_max_pd(_mm256_sub_pd(_mm256_setzero_pd(), qmax), t));
    return _mm256_cvtpd_epi32(t);
}

__attribute__((target("avx2"))) static void quant16_avx2(const double *x, int16_t *q,
                                                          Py_ssize_t m, double ref, double inv)
{
    const __m256d r = _mm256_set1_pd(ref), s = _mm256_set1_pd(inv);
    const __m256d c = _mm256_set1_pd((double)INT16_MAX);
    Py_ssize_t i = 0;
    for (; i + 8 <= m; i += 8) {
        __m128i a = scaled_i32(x + i, r, s, c), b = scaled_i32(x + i + 4, r, s, c);
        _mm_storeu_si128((__m128i *)(q + i), _mm_packs_epi32(a, b));
    }
    quant16_portable(x + i, q + i, m - i, ref, inv);
}

__attribute__((target("avx2"))) static void quant8_avx2(const double *x, int8_t *q,
                                                         Py_ssize_t m, double ref, double inv)
{
    const __m256d r = _mm256_set1_pd(ref), s = _mm256_set1_pd(inv);
    const __m256d c = _mm256_set1_pd((double)INT8_MAX);
    Py_ssize_t i = 0;
    for (; i + 16 <= m; i += 16) {
        __m128i a = scaled_i32(x + i, r, s, c), b = scaled_i32(x + i + 4, r, s, c);
        __m128i d = scaled_i32(x + i + 8, r, s, c), e = scaled_i32(x + i + 12, r, s, c);
        __m128i ab = _mm_packs_epi32(a, b), de = _mm_packs_epi32(d, e);
        _mm_storeu_si128((__m128i *)(q + i), _mm_packs_epi16(ab, de));
    }
    quant8_portable(x + i, q + i, m - i, ref, inv);
}
__attribute__((target("avx2"))) static void narrow32_avx2(const double *x, float *f, Py_ssize_t n,
                                                           double out[3])
{
    const __m256d sign = _mm256_set1_pd(-0.0);
    __m256d amax = _mm256_setzero_pd(), rmax = amax, big = amax;
    Py_ssize_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256d v = _mm256_loadu_pd(x + i);
        __m128 c = _mm256_cvtpd_ps(v);
        _mm_storeu_ps(f + i, c);
        __m256d a = _mm256_andnot_pd(sign, v);
        __m256d e = _mm256_andnot_pd(sign, _mm256_sub_pd(_mm256_cvtps_pd(c), v));
        amax = _mm256_max_pd(e, amax); /* a NaN e keeps amax */
        rmax = _mm256_max_pd(_mm256_div_pd(e, a), rmax);
        big = _mm256_max_pd(a, big);
    }
    double a4[4], r4[4], b4[4], tail[3];
    _mm256_storeu_pd(a4, amax);
    _mm256_storeu_pd(r4, rmax);
    _mm256_storeu_pd(b4, big);
    narrow32_portable(x + i, f + i, n - i, tail);
    for (int k = 0; k < 4; k++) {
        tail[0] = a4[k] > tail[0] ? a4[k] : tail[0];
        tail[1] = r4[k] > tail[1] ? r4[k] : tail[1];
        tail[2] = b4[k] > tail[2] ? b4[k] : tail[2];
    }
    memcpy(out, tail, sizeof tail);
}
#endif

typedef struct {
    const char *name;
    range_fn range;
    quant16_fn quant16;
    quant8_fn quant8;
    narrow32_fn narrow32;
} kernel;

static const kernel PORTABLE = {"portable", block_range, quant16_portable, quant8_portable,
                                  narrow32_portable};
#ifdef HAVE_AVX2_KERNEL
static const kernel AVX2 = {"avx2", range_avx2, quant16_avx2, quant8_avx2, narrow32_avx2};
#endif

/* Chosen once, at import; read-only afterwards. */
static const kernel *BEST = &PORTABLE;

static const kernel *best_kernel(void)
{
#ifdef HAVE_AVX2_KERNEL
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2"))
        return &AVX2;
#endif
    return &PORTABLE;
}

/* A buffer's struct format without its byte-order prefix ("<h" and "=h" are "h"). */
static const char *bare_format(const Py_buffer *view)
{
    const char *f = view->format ? view->format : "B";
    return f[0] == '<' || f[0] == '=' || f[0] == '@' ? f + 1 : f;
}

/* Bytes per code of an int16 ("h") or int8 ("b") buffer; 0 for anything else. */
static int code_width(const Py_buffer *view)
{
    const char *f = bare_format(view);
    return strcmp(f, "h") == 0 ? 2 : strcmp(f, "b") == 0 ? 1 : 0;
}

static int get(PyObject *obj, Py_buffer *view, int writable, const char *fmt, const char *name)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0)
        return -1;
    if (strcmp(bare_format(view), fmt) != 0) {
        PyErr_Format(PyExc_TypeError, "%s: expected buffer format '%s', got '%s'", name, fmt,
                     view->format ? view->format : "B");
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(encode_doc,
             "encode(x, q, lo, hi, ref, scale, block, levels, portable=False) -> bool\n\n"
             "Quantise float64 x into q (int16 or int8, same length) block by block, writing each\n"
             "block's range, reference and step into lo, hi, ref and scale (float64, one per\n"
             "block). Returns False, with q incomplete, when x holds an infinity. portable=True\n"
             "uses the plain C kernel instead of the SIMD one (the tests compare both).");

static PyObject *encode(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *ox, *oq, *olo, *ohi, *oref, *oscale;
    Py_ssize_t block;
    double levels;
    int portable = 0;
    if (!PyArg_ParseTuple(args, "OOOOOOnd|p", &ox, &oq, &olo, &ohi, &oref, &oscale, &block,
                          &levels, &portable))
        return NULL;
    const kernel *k = portable ? &PORTABLE : BEST;
    if (block <= 0 || levels <= 0) {
        PyErr_SetString(PyExc_ValueError, "block and levels must be positive");
        return NULL;
    }
    Py_buffer x, q, lo, hi, ref, scale;
    if (get(ox, &x, 0, "d", "x") < 0)
        return NULL;
    if (PyObject_GetBuffer(oq, &q, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&x);
        return NULL;
    }
    Py_buffer *metas[4] = {&lo, &hi, &ref, &scale};
    PyObject *mobjs[4] = {olo, ohi, oref, oscale};
    const char *mnames[4] = {"lo", "hi", "ref", "scale"};
    int got = 0;
    for (; got < 4; got++)
        if (get(mobjs[got], metas[got], 1, "d", mnames[got]) < 0)
            break;
    PyObject *result = NULL;
    Py_ssize_t n = x.len / (Py_ssize_t)sizeof(double);
    Py_ssize_t nb = n ? (n + block - 1) / block : 1; /* an empty series is one empty block */
    int ok = 1;
    if (got < 4)
        goto done;
    int width = code_width(&q);
    if (width == 0) {
        PyErr_SetString(PyExc_TypeError, "q: expected int16 or int8");
        goto done;
    }
    if (q.len / q.itemsize != n) {
        PyErr_SetString(PyExc_ValueError, "q must have as many items as x");
        goto done;
    }
    for (int k = 0; k < 4; k++)
        if (metas[k]->len / (Py_ssize_t)sizeof(double) < nb) {
            PyErr_Format(PyExc_ValueError, "%s needs one item per block (%zd)", mnames[k], nb);
            goto done;
        }
    {
        const double *px = (const double *)x.buf;
        double *plo = lo.buf, *phi = hi.buf, *pref = ref.buf, *pscale = scale.buf;
        int wide = width == 2;
        Py_BEGIN_ALLOW_THREADS;
        for (Py_ssize_t b = 0; b < nb && ok; b++) {
            Py_ssize_t start = b * block;
            Py_ssize_t m = n - start < block ? n - start : block;
            block_meta meta = block_plan(k->range, px + start, m, levels);
            if (meta.infinite) {
                ok = 0;
                break;
            }
            plo[b] = meta.lo;
            phi[b] = meta.hi;
            pref[b] = meta.ref;
            pscale[b] = meta.scale;
            if (wide)
                k->quant16(px + start, (int16_t *)q.buf + start, m, meta.ref, meta.inv);
            else
                k->quant8(px + start, (int8_t *)q.buf + start, m, meta.ref, meta.inv);
        }
        Py_END_ALLOW_THREADS;
    }
    result = PyBool_FromLong(ok);
done:
    for (int k = 0; k < got; k++)
        PyBuffer_Release(metas[k]);
    PyBuffer_Release(&q);
    PyBuffer_Release(&x);
    return result;
}

PyDoc_STRVAR(narrow32_doc,
             "narrow32(x, f, portable=False) -> (abs_error, rel_error, max_abs)\n\n"
             "Write float64 x into float32 f (same length); return the largest |f - x|, the largest\n"
             "|f - x| / |x| and the largest |x|, NaN ignored. The caller rejects the result when\n"
             "max_abs is infinite or beyond float32's range.");

static PyObject *py_narrow32(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *ox, *of;
    int portable = 0;
    if (!PyArg_ParseTuple(args, "OO|p", &ox, &of, &portable))
        return NULL;
    const kernel *k = portable ? &PORTABLE : BEST;
    Py_buffer x, f;
    if (get(ox, &x, 0, "d", "x") < 0)
        return NULL;
    if (get(of, &f, 1, "f", "f") < 0) {
        PyBuffer_Release(&x);
        return NULL;
    }
    PyObject *result = NULL;
    Py_ssize_t n = x.len / (Py_ssize_t)sizeof(double);
    if (f.len / (Py_ssize_t)sizeof(float) != n) {
        PyErr_SetString(PyExc_ValueError, "f must have as many items as x");
    } else {
        double out[3];
        Py_BEGIN_ALLOW_THREADS;
        k->narrow32((const double *)x.buf, (float *)f.buf, n, out);
        Py_END_ALLOW_THREADS;
        result = Py_BuildValue("ddd", out[0], out[1], out[2]);
    }
    PyBuffer_Release(&f);
    PyBuffer_Release(&x);
    return result;
}

/* Decode, the inverse of encode: ref + q * scale per block, the gap code back to NaN. Plain C: the
 * loop is simple enough for the compiler to vectorise on any target. Blocks whose top value could
 * pass float64 max (|ref| + qmax * scale overflows) saturate there, as the numpy reference does. */
#define DEFINE_EXPAND(NAME, T, QMAX, GAP)                                                        \
    static void NAME(const T *q, double *out, Py_ssize_t m, double ref, double scale)           \
    {                                                                                            \
        for (Py_ssize_t i = 0; i < m; i++) {                                                     \
            double d = (double)q[i] * scale + ref;                                               \
            out[i] = q[i] == GAP ? NAN : d;                                                      \
        }                                                                                        \
        if (fabs(ref) + (double)QMAX * scale > DBL_MAX) {                                        \
            for (Py_ssize_t i = 0; i < m; i++) {                                                 \
                double d = out[i];                                                               \
                d = d > DBL_MAX ? DBL_MAX : d;                                                   \
                out[i] = d < -DBL_MAX ? -DBL_MAX : d;                                            \
            }                                                                                    \
        }                                                                                        \
    }

DEFINE_EXPAND(expand_i16, int16_t, INT16_MAX, INT16_MIN)
DEFINE_EXPAND(expand_i8, int8_t, INT8_MAX, INT8_MIN)

PyDoc_STRVAR(decode_doc, "decode(q, ref, scale, out, block)\n\n"
                         "Expand int16 or int8 q into float64 out (same length), block by block.");

static PyObject *decode(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *oq, *oref, *oscale, *oout;
    Py_ssize_t block;
    if (!PyArg_ParseTuple(args, "OOOOn", &oq, &oref, &oscale, &oout, &block))
        return NULL;
    if (block <= 0) {
        PyErr_SetString(PyExc_ValueError, "block must be positive");
        return NULL;
    }
    Py_buffer q, ref, scale, out;
    if (PyObject_GetBuffer(oq, &q, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return NULL;
    int got = 0;
    PyObject *result = NULL;
    if (get(oref, &ref, 0, "d", "ref") < 0)
        goto done;
    got = 1;
    if (get(oscale, &scale, 0, "d", "scale") < 0)
        goto done;
    got = 2;
    if (get(oout, &out, 1, "d", "out") < 0)
        goto done;
    got = 3;
    {
        int width = code_width(&q), wide = width == 2;
        if (width == 0) {
            PyErr_SetString(PyExc_TypeError, "q: expected int16 or int8");
            goto done;
        }
        Py_ssize_t n = q.len / q.itemsize, nb = (n + block - 1) / block;
        if (out.len / (Py_ssize_t)sizeof(double) != n) {
            PyErr_SetString(PyExc_ValueError, "out must have as many items as q");
            goto done;
        }
        if (ref.len / (Py_ssize_t)sizeof(double) < nb ||
            scale.len / (Py_ssize_t)sizeof(double) < nb) {
            PyErr_Format(PyExc_ValueError, "ref and scale need one item per block (%zd)", nb);
            goto done;
        }
        const double *pr = ref.buf, *ps = scale.buf;
        double *po = out.buf;
        Py_BEGIN_ALLOW_THREADS;
        for (Py_ssize_t b = 0; b < nb; b++) {
            Py_ssize_t start = b * block, m = n - start < block ? n - start : block;
            if (wide)
                expand_i16((const int16_t *)q.buf + start, po + start, m, pr[b], ps[b]);
            else
                expand_i8((const int8_t *)q.buf + start, po + start, m, pr[b], ps[b]);
        }
        Py_END_ALLOW_THREADS;
        result = Py_NewRef(Py_None);
    }
done:
    if (got >= 3)
        PyBuffer_Release(&out);
    if (got >= 2)
        PyBuffer_Release(&scale);
    if (got >= 1)
        PyBuffer_Release(&ref);
    PyBuffer_Release(&q);
    return result;
}

static PyMethodDef methods[] = {
    {"encode", encode, METH_VARARGS, encode_doc},
    {"narrow32", py_narrow32, METH_VARARGS, narrow32_doc},
    {"decode", decode, METH_VARARGS, decode_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "shared._fastcodecs",
    .m_doc = "Compiled encoders for shared.codecs (one pass where numpy needs several).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__fastcodecs(void)
{
    PyObject *mod = PyModule_Create(&module);
    BEST = best_kernel();
    if (mod && PyModule_AddStringConstant(mod, "KERNEL", BEST->name) < 0)
        Py_CLEAR(mod);
    return mod;
}
