/* test_stats.c - the statistics behind the report and `fairbench compare`.
 *
 *   test_stats [--seed N]
 *
 * Student's t distribution against closed forms (1 and 2 degrees of
 * freedom), published critical values and the normal limit; Welch's test on
 * a worked example; block medians; and the compare rule on simulated runs
 * whose decode steps are autocorrelated within a repetition, as on a busy
 * machine: identical runs must almost never be called different (where a
 * test over every step calls most of them different), a 10% slowdown must be
 * found, and a significant 1% shift must stay within the 5% threshold. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "stats.h"

// ----------------------------------------------------------------------------
// A seeded generator (splitmix64) and normal deviates (Box-Muller)

static uint64_t next_u64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double uniform(uint64_t *state) { return ((double)(next_u64(state) >> 11) + 0.5) / 9007199254740992.0; }

static double normal(uint64_t *state) {
    double u = uniform(state), v = uniform(state);
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

// ----------------------------------------------------------------------------
// Student's t

static void test_t_distribution(void) {
    double worst = 0;
    for (double t = 0; t <= 50; t += 0.37) {
        /* df = 1 (Cauchy): P(|T| > t) = 1 - 2 atan(t) / pi; df = 2: 1 - t / sqrt(2 + t^2) */
        double d1 = fabs(fb_t_two_sided_p(t, 1) - (1 - 2 * atan(t) / M_PI));
        double d2 = fabs(fb_t_two_sided_p(t, 2) - (1 - t / sqrt(2 + t * t)));
        worst = fmax(worst, fmax(d1, d2));
    }
    CHECK(worst < 1e-12, "t distribution with 1 and 2 degrees of freedom against closed forms: max diff %.3g", worst);
    /* Two-sided critical values from the standard tables (5% and 1%). */
    static const struct {
        double alpha, df, t;
    } table[] = {
        {0.05, 1, 12.706}, {0.05, 2, 4.303}, {0.05, 4, 2.776}, {0.05, 10, 2.228}, {0.05, 30, 2.042},
        {0.01, 2, 9.925},  {0.01, 4, 4.604}, {0.01, 8, 3.355}, {0.01, 10, 3.169}, {0.01, 30, 2.750},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        double t = fb_t_critical(table[i].alpha, table[i].df);
        CHECK(fabs(t - table[i].t) < 1.5e-3, "t critical at %g, %g df: %.4f, table %.3f", table[i].alpha, table[i].df,
              t, table[i].t);
    }
    double z = fb_t_critical(0.05, 1e7);
    CHECK(fabs(z - 1.959964) < 1e-4, "with many degrees of freedom, the normal's 1.959964: %.6f", z);
    CHECK(fabs(fb_t_two_sided_p(1.959964, 1e7) - erfc(1.959964 / sqrt(2))) < 1e-6, "p-value tends to the normal's");
    double between = fb_t_critical(0.05, 4.5);
    CHECK(between < 2.776 && between > 2.571, "fractional df 4.5 lies between 4 and 5 df: %.4f", between);
    CHECK(isnan(fb_t_two_sided_p(1, 0)) && isnan(fb_t_critical(0, 3)) && isnan(fb_t_critical(0.05, -1)),
          "no answer outside the domain");
}

static void test_welch(void) {
    /* Worked by hand: means 2.5 and 6, variances 5/3 and 10, se^2 = 5/12 + 2,
     * t = 3.5 / sqrt(29/12) = 2.25144, df = (29/12)^2 / ((5/12)^2/3 + 2^2/4) = 5.52079 */
    const double a[] = {1, 2, 3, 4}, b[] = {2, 4, 6, 8, 10};
    fb_welch w;
    CHECK(fb_welch_test(a, 4, b, 5, 0.05, &w) == 0, "welch runs");
    CHECK(fabs(w.diff - 3.5) < 1e-12 && fabs(w.t - 2.25144) < 1e-5 && fabs(w.df - 5.52079) < 1e-5,
          "welch example: diff %.6f, t %.6f, df %.6f", w.diff, w.t, w.df);
    /* t_{0.10} and t_{0.05} at 5 and 6 df bracket 2.25: 0.05 < p < 0.10 */
    CHECK(w.p > 0.05 && w.p < 0.10, "welch example p %.4f between 0.05 and 0.10", w.p);
    /* The interval excludes 0 exactly when p < alpha. */
    fb_welch wide, narrow;
    fb_welch_test(a, 4, b, 5, w.p * 0.99, &wide);
    fb_welch_test(a, 4, b, 5, w.p * 1.01, &narrow);
    CHECK(wide.ci_low < 0 && narrow.ci_low > 0, "CI at alpha just below p holds 0 (%.5f), just above does not (%.5f)",
          wide.ci_low, narrow.ci_low);
    const double same[] = {3, 3, 3}, other[] = {4, 4};
    CHECK(fb_welch_test(same, 3, same, 3, 0.05, &w) == 0 && w.p == 1, "no spread, same means: p = 1");
    CHECK(fb_welch_test(same, 3, other, 2, 0.05, &w) == 0 && w.p == 0, "no spread, different means: p = 0");
    CHECK(fb_welch_test(same, 1, other, 2, 0.05, &w) == -1, "one sample is refused");
}

static void test_block_medians(void) {
    const double x[] = {5, 1, 3, 10, 30, 20, 7, 7, 100, 99};
    double out[3] = {0};
    size_t n = fb_block_medians(x, 10, 3, out);
    CHECK(n == 3 && out[0] == 3 && out[1] == 20 && out[2] == 7, "block medians of 3: %zu blocks, %g %g %g", n, out[0],
          out[1], out[2]);
    CHECK(fb_block_medians(x, 10, 0, out) == 0 && fb_block_medians(x, 2, 3, out) == 0, "no block: none");
    double means[4];
    n = fb_block_means(x, 10, 3, means);
    double want[3] = {(x[0] + x[1] + x[2]) / 3, (x[3] + x[4] + x[5]) / 3, (x[6] + x[7] + x[8]) / 3};
    CHECK(n == 3 && means[0] == want[0] && means[1] == want[1] && means[2] == want[2],
          "block means of 3: %zu blocks, %g %g %g (want %g %g %g)", n, means[0], means[1], means[2], want[0], want[1],
          want[2]);
    CHECK(fb_block_means(x, 10, 0, means) == 0 && fb_block_means(x, 2, 3, means) == 0, "no block means: none");
}

// ----------------------------------------------------------------------------
// Simulated runs on a busy machine

typedef struct run_shape {
    size_t reps, steps;
    double ms;         /* typical step latency */
    double rep_sigma;  /* spread of a repetition's level (log scale): load that changes between repetitions */
    double step_sigma; /* spread of steps about it (log scale) */
    double rho;        /* autocorrelation of consecutive steps */
} run_shape;

/* reps * steps latencies: each repetition at its own level, its steps an
 * AR(1) walk about that level, so neighbouring steps share their fortune. */
static void simulate(const run_shape *s, double scale, uint64_t *rng, double *out) {
    for (size_t r = 0; r < s->reps; r++) {
        double level = log(s->ms * scale) + s->rep_sigma * normal(rng), e = s->step_sigma * normal(rng);
        for (size_t k = 0; k < s->steps; k++) {
            e = s->rho * e + sqrt(1 - s->rho * s->rho) * s->step_sigma * normal(rng);
            out[r * s->steps + k] = exp(level + e);
        }
    }
}

typedef struct verdicts {
    int different;   /* significant and beyond the threshold */
    int significant; /* p < alpha */
    int steps_mw;    /* a Mann-Whitney test over every step says p < alpha */
} verdicts;

static verdicts simulate_pairs(const run_shape *s, double slowdown, int pairs, uint64_t *rng) {
    verdicts v = {0, 0, 0};
    size_t n = s->reps * s->steps;
    double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), ra[64], rb[64];
    for (int i = 0; i < pairs && a && b; i++) {
        simulate(s, 1, rng, a);
        simulate(s, slowdown, rng, b);
        fb_block_medians(a, n, s->steps, ra);
        fb_block_medians(b, n, s->steps, rb);
        fb_comparison c;
        if (fb_compare_repetitions(ra, s->reps, rb, s->reps, 0.01, 0.05, &c)) continue;
        v.different += c.different;
        v.significant += c.significant;
        v.steps_mw += fb_mann_whitney_p(a, n, b, n) < 0.01;
    }
    free(a);
    free(b);
    return v;
}

static void test_compare_rule(uint64_t seed) {
    uint64_t rng = seed;
    const int pairs = 400;
    /* Identical runs: repetitions differ by ~3% (other load comes and goes),
     * steps by ~5% about it, neighbours correlated at 0.95. */
    run_shape busy = {.reps = 5, .steps = 64, .ms = 20, .rep_sigma = 0.03, .step_sigma = 0.05, .rho = 0.95};
    verdicts same = simulate_pairs(&busy, 1.0, pairs, &rng);
    printf("identical runs, %d pairs: %d called different, %d significant (per repetition), %d significant over "
           "every step\n",
           pairs, same.different, same.significant, same.steps_mw);
    CHECK(same.steps_mw > pairs / 2,
          "the simulation is the hard case: a test over every step calls %d of %d "
          "identical pairs different",
          same.steps_mw, pairs);
    /* alpha = 1%: 4 false positives expected of 400; 12 or more has a chance
     * of 3e-4 (binomial tail) */
    CHECK(same.significant < 12, "per-repetition test: %d of %d identical pairs significant at 1%%", same.significant,
          pairs);

    /* A 10% slowdown on the same busy machine: five repetitions see it about
     * half the time (printed); ten see it nearly always. */
    verdicts slow5 = simulate_pairs(&busy, 1.10, pairs, &rng);
    run_shape busy10 = busy;
    busy10.reps = 10;
    verdicts slow10 = simulate_pairs(&busy10, 1.10, pairs, &rng);
    printf("B 10%% slower, %d pairs: called different in %d with 5 repetitions, %d with 10\n", pairs, slow5.different,
           slow10.different);
    CHECK(slow10.different >= pairs * 85 / 100, "a 10%% slowdown, 10 repetitions: found in %d of %d pairs",
          slow10.different, pairs);

    /* A quiet machine: a 1% shift is significant, and within the 5% threshold. */
    run_shape quiet = {.reps = 5, .steps = 64, .ms = 20, .rep_sigma = 0.001, .step_sigma = 0.005, .rho = 0.5};
    verdicts small = simulate_pairs(&quiet, 1.01, pairs, &rng);
    printf("B 1%% slower on a quiet machine, %d pairs: %d significant, %d called different\n", pairs, small.significant,
           small.different);
    CHECK(small.significant >= pairs * 95 / 100 && small.different == 0,
          "a 1%% shift: significant in %d of %d pairs, called different in %d", small.significant, pairs,
          small.different);
}

int main(int argc, char **argv) {
    uint64_t seed = 20261127;
    const char *env = getenv("FAIRBENCH_TEST_SEED");
    if (env && *env) seed = strtoull(env, NULL, 10);
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--seed") == 0) seed = strtoull(argv[i + 1], NULL, 10);
    printf("test_stats: seed %" PRIu64 " (--seed N or FAIRBENCH_TEST_SEED to repeat another)\n", seed);
    test_t_distribution();
    test_welch();
    test_block_medians();
    test_compare_rule(seed);
    return check_summary();
}
