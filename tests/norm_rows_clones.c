/* Driver of tests/test_norm_rows_clones.py: layer_norm rows (norm_rows.h) of five
 * families (normal, mean 1e5 with gamma/beta 1e5, mean 1e12 spread 3e-3, scale 1e30,
 * scale 1e-30) and six row lengths, both dtypes; writes the stats, outputs and x_hat as
 * raw bits to argv[1].  Built once per ISA level with -DREFRT_NO_CLONES -march=..., the
 * files must be identical (norm_rows.h, Design a). */
#include "norm_rows.h"
#include <stdio.h>
#include <stdlib.h>

static unsigned long long rng = 88172645463325252ull;
static double u01(void)
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (rng >> 11) * (1.0 / 9007199254740992.0);
}
static double nrm(void) { return sqrt(-2 * log(u01() + 1e-300)) * cos(6.283185307179586 * u01()); }

int main(int argc, char **argv)
{
    static const int Ds[] = {1, 7, 16, 33, 1000, 1027};
    FILE *o = fopen(argv[1], "wb");
    if (!o) return 1;
    for (int fam = 0; fam < 5; fam++)
        for (int di = 0; di < 6; di++) {
            int D = Ds[di], k;
            double *x = malloc(D * 8), *g = malloc(D * 8), *b = malloc(D * 8), *y = malloc(D * 8), st[4];
            float *xf = malloc(D * 4), *gf = malloc(D * 4), *bf = malloc(D * 4), *yf = malloc(D * 4), sf[4];
            for (int r = 0; r < 50; r++) {
                for (int j = 0; j < D; j++) {
                    double v = nrm(), off = fam == 1 ? 1e5 : fam == 2 ? 1e12 : 0;
                    double sc = fam == 3 ? 1e30 : fam == 4 ? 1e-30 : fam == 2 ? 3e-3 : 3;
                    x[j] = off + v * sc;
                    g[j] = nrm() * (fam == 1 ? 1e5 : 1);
                    b[j] = nrm() * (fam == 1 ? 1e5 : 1);
                    xf[j] = (float)(fam == 2 ? 1e5 + v * 3e-3 : x[j]);
                    gf[j] = (float)g[j];
                    bf[j] = (float)b[j];
                }
                if (refrt_ln_stats_f64(x, D, 1e-6, &k, st)) {
                    refrt_ln_out_f64(x, D, ldexp(1, -k), st, g, b, y);
                    refrt_ln_xhat_f64(x, D, ldexp(1, -k), st, x);
                    fwrite(st, 8, 4, o); fwrite(y, 8, D, o); fwrite(x, 8, D, o);
                }
                if (refrt_ln_stats_f32(xf, D, 1e-6f, &k, sf)) {
                    refrt_ln_out_f32(xf, D, ldexpf(1, -k), sf, gf, bf, yf);
                    refrt_ln_xhat_f32(xf, D, ldexpf(1, -k), sf, xf);
                    fwrite(sf, 4, 4, o); fwrite(yf, 4, D, o); fwrite(xf, 4, D, o);
                }
            }
            free(x); free(g); free(b); free(y); free(xf); free(gf); free(bf); free(yf);
        }
    fclose(o);
    return 0;
}
