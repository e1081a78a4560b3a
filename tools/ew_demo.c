/* ew_demo.c — libeigenwatch on real data: streams Fashion-MNIST (Debian's dataset-fashion-mnist,
 * 60k images of 784 pixels) through one stream in batches of 256 and prints, as rows arrive, the
 * metrics a dashboard would show; then one stream per class, to show how much narrower each
 * class's representation is than the whole set's.
 *
 * This is the stand-in for the daemon in the README's first command until eigenwatchd lands.
 * Usage: ew_demo [DIR]   (default /usr/share/datasets/fashion-mnist) */
#include "eigenwatch.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *CLASSES[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                  "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

/* Reads a gzip'd IDX file through `gzip -dc`; returns the payload after the header. */
static unsigned char *read_idx(const char *path, size_t header, size_t *len) {
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "gzip -dc '%s'", path);
  FILE *f = popen(cmd, "r");
  if (!f)
    return NULL;
  size_t cap = 1 << 20, n = 0;
  unsigned char *buf = malloc(cap);
  size_t got;
  while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) {
      unsigned char *nb = realloc(buf, cap *= 2);
      if (!nb) {
        free(buf);
        buf = NULL;
      } else {
        buf = nb;
      }
    }
  }
  if (pclose(f) != 0 || !buf || n < header) {
    free(buf);
    return NULL;
  }
  *len = n - header;
  memmove(buf, buf + header, *len);
  return buf;
}

static double query(ew_stream_t *s, const char *metric, const char *pkey, double pval, int center) {
  ew_param_t p = {pkey, pval};
  ew_query_t q = {.metric = metric, .params = pkey ? &p : NULL, .nparams = pkey ? 1 : 0,
                  .center = center, .source = EW_SOURCE_DEFAULT};
  ew_result_t r;
  double v = ew_stream_query(s, &q, &r) == 0 ? r.scalar : NAN;
  ew_result_clear(&r);
  return v;
}

static double seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : "/usr/share/datasets/fashion-mnist";
  char ip[4096], lp[4096];
  snprintf(ip, sizeof ip, "%s/train-images-idx3-ubyte.gz", dir);
  snprintf(lp, sizeof lp, "%s/train-labels-idx1-ubyte.gz", dir);
  size_t ni, nl;
  unsigned char *img = read_idx(ip, 16, &ni), *lab = read_idx(lp, 8, &nl);
  if (!img || !lab || ni != nl * 784) {
    fprintf(stderr, "ew_demo: cannot read Fashion-MNIST from %s (apt-get install "
                    "dataset-fashion-mnist)\n", dir);
    return 1;
  }
  size_t n = nl, d = 784;
  float *x = malloc(n * d * sizeof(float));
  for (size_t i = 0; i < n * d; i++)
    x[i] = (float)img[i] / 255.0f;

  ew_config_t cfg;
  ew_config_default(&cfg, d);
  ew_stream_t *all, *cls[10];
  if (ew_stream_create(&cfg, &all) != 0)
    return 1;
  for (int c = 0; c < 10; c++)
    if (ew_stream_create(&cfg, &cls[c]) != 0)
      return 1;

  printf("libeigenwatch %s demo: Fashion-MNIST, %zu images x %zu pixels, batches of 256\n"
         "(the daemon, eigenwatchd, is the next milestone; this drives the library in-process)\n\n",
         EW_VERSION_STRING, n, d);
  printf("%8s %9s %8s %8s %8s %10s %10s %9s %8s\n", "rows", "entropy", "erank", "PR", "rankme",
         "lambda_1", "anisotropy", "dErank(W)", "ms");
  double t_ingest = 0;
  for (size_t r0 = 0; r0 < n; r0 += 256) {
    size_t b = n - r0 < 256 ? n - r0 : 256;
    double t0 = seconds();
    ew_stream_ingest(all, x + r0 * d, EW_F32, b, d);
    t_ingest += seconds() - t0;
    size_t done = r0 + b;
    if (done % 7680 == 0 || done == n) {
      t0 = seconds();
      double h = query(all, "entropy", NULL, 0, -1), er = query(all, "erank", NULL, 0, -1);
      double pr = query(all, "participation_ratio", NULL, 0, -1);
      double rm = query(all, "rankme", NULL, 0, -1), an = query(all, "anisotropy", NULL, 0, -1);
      double de = query(all, "diff_erank", NULL, 0, -1);
      ew_query_t q = {.metric = "topk", .center = -1, .source = EW_SOURCE_DEFAULT};
      ew_result_t r;
      double l1 = ew_stream_query(all, &q, &r) == 0 ? r.list[0] : NAN;
      ew_result_clear(&r);
      printf("%8zu %9.5f %8.3f %8.3f %8.3f %10.4f %10.4f %9.3f %8.1f\n", done, h, er, pr, rm, l1,
             an, de, 1e3 * (seconds() - t0));
    }
  }
  printf("\ningest: %.0f rows/s (f32, d=%zu, window %zu rows, live top vector)\n",
         (double)n / t_ingest, d, cfg.window);

  /* the live Oja direction against the exact top eigenvector */
  ew_param_t pv[2] = {{"k", 1}, {"vectors", 1}};
  ew_query_t qv = {.metric = "topk", .params = pv, .nparams = 2, .center = -1,
                   .source = EW_SOURCE_DEFAULT};
  ew_result_t rv;
  double *live = malloc(d * sizeof(double));
  if (ew_stream_query(all, &qv, &rv) == 0 && ew_stream_live_vectors(all, live, 1) == 1) {
    double dot = 0;
    for (size_t i = 0; i < d; i++)
      dot += live[i] * rv.vectors[i];
    printf("live top direction (streaming Oja) vs exact top eigenvector: |cos| = %.5f\n",
           fabs(dot));
  }
  ew_result_clear(&rv);

  /* gather each class's rows and feed them in batches of 256 */
  float *buf = malloc(256 * d * sizeof(float));
  for (int c = 0; c < 10; c++) {
    size_t fill = 0;
    for (size_t i = 0; i <= n; i++) {
      if (i < n && lab[i] == c)
        memcpy(buf + (fill++) * d, x + i * d, d * sizeof(float));
      if (fill == 256 || (i == n && fill > 0)) {
        ew_stream_ingest(cls[c], buf, EW_F32, fill, d);
        fill = 0;
      }
    }
  }
  free(buf);
  printf("\nper class (erank of the class covariance vs %.2f for all classes together):\n",
         query(all, "erank", NULL, 0, -1));
  for (int c = 0; c < 10; c++)
    printf("  %-12s rows %5llu  erank %7.3f  entropy_normalized %.4f\n", CLASSES[c],
           (unsigned long long)ew_stream_count(cls[c]), query(cls[c], "erank", NULL, 0, -1),
           query(cls[c], "entropy_normalized", NULL, 0, -1));
  for (int c = 0; c < 10; c++)
    ew_stream_free(cls[c]);
  ew_stream_free(all);
  free(live);
  free(x);
  free(img);
  free(lab);
  return 0;
}
