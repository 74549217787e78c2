/* check_api.c - the public API's contract: defaults, validation of every
 * input with its exact status, the non-finite policies, missing gradients,
 * state layout changes, threading, introspection. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static optim_optimizer *make(const char *alg, int *grp)
{
  optim_optimizer *opt = NULL;
  ck_assert_int_eq(optim_create(&opt), OPTIM_OK);
  ck_assert_int_eq(optim_add_group(opt, alg, grp), OPTIM_OK);
  return opt;
}

static double get_d(optim_optimizer *opt, int g, const char *name)
{
  double v = -1;
  ck_assert_msg(optim_get_double(opt, g, name, &v) == OPTIM_OK, "%s: %s", name,
                optim_errmsg(opt));
  return v;
}

START_TEST(test_defaults_torch_1_13)
{
  int g, b;
  optim_optimizer *opt = make("adam", &g);
  ck_assert_double_eq(get_d(opt, g, "lr"), 1e-3);
  ck_assert_double_eq(get_d(opt, g, "beta1"), 0.9);
  ck_assert_double_eq(get_d(opt, g, "beta2"), 0.999);
  ck_assert_double_eq(get_d(opt, g, "eps"), 1e-8);
  ck_assert_double_eq(get_d(opt, g, "weight_decay"), 0);
  ck_assert_int_eq(optim_get_bool(opt, g, "amsgrad", &b), OPTIM_OK);
  ck_assert_int_eq(b, 0);
  ck_assert_int_eq(optim_add_group(opt, "adamw", &g), OPTIM_OK);
  ck_assert_double_eq(get_d(opt, g, "weight_decay"), 1e-2);
  ck_assert_double_eq(get_d(opt, g, "lr"), 1e-3);
  ck_assert_int_eq(optim_add_group(opt, "adagrad", &g), OPTIM_OK);
  ck_assert_double_eq(get_d(opt, g, "lr"), 1e-2);
  ck_assert_double_eq(get_d(opt, g, "eps"), 1e-10);
  ck_assert_double_eq(get_d(opt, g, "lr_decay"), 0);
  ck_assert_double_eq(get_d(opt, g, "initial_accumulator_value"), 0);
  ck_assert_int_eq(optim_add_group(opt, "sgd", &g), OPTIM_OK);
  ck_assert_double_eq(get_d(opt, g, "momentum"), 0);
  ck_assert_double_eq(get_d(opt, g, "dampening"), 0);
  ck_assert_int_eq(optim_get_bool(opt, g, "nesterov", &b), OPTIM_OK);
  ck_assert_int_eq(b, 0);
  double lr;
  ck_assert_int_eq(optim_get_double(opt, g, "lr", &lr), OPTIM_ECONFIG); /* required */
  char buf[16];
  ck_assert_int_eq(optim_get_string(opt, g, "nonfinite", buf, sizeof buf), OPTIM_OK);
  ck_assert_str_eq(buf, "error");
  ck_assert_int_eq(optim_group_count(opt), 4);
  ck_assert_str_eq(optim_group_algorithm(opt, 2), "adagrad");
  ck_assert_ptr_null(optim_group_algorithm(opt, 4));
  optim_destroy(opt);
}
END_TEST

START_TEST(test_introspection)
{
  int n = optim_algorithm_count();
  ck_assert_int_ge(n, 4);
  const char *want[] = {"sgd", "adam", "adamw", "adagrad"};
  for (int i = 0; i < 4; i++) ck_assert_str_eq(optim_algorithm_name(i), want[i]);
  ck_assert_ptr_null(optim_algorithm_name(n));
  ck_assert_ptr_null(optim_algorithm_name(-1));
  ck_assert_ptr_nonnull(optim_algorithm_doc("adamw"));
  ck_assert_ptr_null(optim_algorithm_doc("nope"));
  ck_assert_ptr_null(optim_algorithm_doc(NULL));
  ck_assert_int_eq(optim_hparam_count("nope"), OPTIM_EUNKNOWN);
  ck_assert_int_eq(optim_hparam_count(NULL), OPTIM_EINVAL);
  ck_assert_int_eq(optim_hparam_info(NULL, 0, NULL, NULL, NULL, NULL), OPTIM_EINVAL);
  for (int a = 0; a < n; a++) {
    const char *alg = optim_algorithm_name(a);
    int nh = optim_hparam_count(alg);
    ck_assert_int_gt(nh, 1);
    int found_nonfinite = 0;
    for (int i = 0; i < nh; i++) {
      const char *name, *def, *doc;
      int type;
      ck_assert_int_eq(optim_hparam_info(alg, i, &name, &type, &def, &doc), OPTIM_OK);
      ck_assert(type >= OPTIM_TYPE_DOUBLE && type <= OPTIM_TYPE_STRING);
      ck_assert(strlen(name) > 0 && strlen(def) > 0 && strlen(doc) > 10);
      found_nonfinite |= !strcmp(name, "nonfinite");
    }
    ck_assert(found_nonfinite);
    ck_assert_int_eq(optim_hparam_info(alg, nh, NULL, NULL, NULL, NULL), OPTIM_ERANGE);
    ck_assert_int_eq(optim_hparam_info(alg, -1, NULL, NULL, NULL, NULL), OPTIM_ERANGE);
  }
  const char *def;
  ck_assert_int_eq(optim_hparam_info("adamw", 4, NULL, NULL, &def, NULL), OPTIM_OK);
  ck_assert_str_eq(def, "1e-2");
  ck_assert_str_eq(optim_version(), OPTIM_VERSION_STRING);
}
END_TEST

START_TEST(test_strerror)
{
  for (int s = 0; s >= OPTIM_ENUMERIC; s--) {
    ck_assert_str_ne(optim_strerror(s), "unknown status code");
    for (int t = s - 1; t >= OPTIM_ENUMERIC; t--)
      ck_assert_str_ne(optim_strerror(s), optim_strerror(t));
  }
  ck_assert_str_eq(optim_strerror(-1000), "unknown status code");
  ck_assert_str_eq(optim_strerror(7), "unknown status code");
}
END_TEST

START_TEST(test_null_handles)
{
  double d;
  int64_t i64;
  int b, idx;
  char buf[8];
  const void *data;
  int64_t shape[1] = {4};
  float x[4];
  ck_assert_int_eq(optim_create(NULL), OPTIM_EINVAL);
  optim_destroy(NULL); /* no-op */
  ck_assert_ptr_nonnull(optim_errmsg(NULL));
  ck_assert_int_eq(optim_set_threads(NULL, 1), OPTIM_EINVAL);
  ck_assert_int_eq(optim_add_group(NULL, "adam", NULL), OPTIM_EINVAL);
  ck_assert_int_eq(optim_group_count(NULL), OPTIM_EINVAL);
  ck_assert_ptr_null(optim_group_algorithm(NULL, 0));
  ck_assert_int_eq(optim_set_double(NULL, 0, "lr", 1), OPTIM_EINVAL);
  ck_assert_int_eq(optim_get_double(NULL, 0, "lr", &d), OPTIM_EINVAL);
  ck_assert_int_eq(optim_set_int(NULL, 0, "x", 1), OPTIM_EINVAL);
  ck_assert_int_eq(optim_get_int(NULL, 0, "x", &i64), OPTIM_EINVAL);
  ck_assert_int_eq(optim_set_bool(NULL, 0, "amsgrad", 1), OPTIM_EINVAL);
  ck_assert_int_eq(optim_get_bool(NULL, 0, "amsgrad", &b), OPTIM_EINVAL);
  ck_assert_int_eq(optim_set_string(NULL, 0, "nonfinite", "skip"), OPTIM_EINVAL);
  ck_assert_int_eq(optim_get_string(NULL, 0, "nonfinite", buf, sizeof buf), OPTIM_EINVAL);
  ck_assert_int_eq(optim_set_option(NULL, 0, "lr", "1"), OPTIM_EINVAL);
  ck_assert_int_eq(optim_configure(NULL, 0, "lr=1"), OPTIM_EINVAL);
  ck_assert_int_eq(optim_add_param(NULL, 0, "w", OPTIM_FLOAT32, 1, shape, x, x, NULL),
                   OPTIM_EINVAL);
  ck_assert_int_eq(optim_param_bind(NULL, 0, x, x), OPTIM_EINVAL);
  ck_assert_int_eq(optim_param_count(NULL), OPTIM_EINVAL);
  ck_assert_int_eq(optim_param_find(NULL, "w", &idx), OPTIM_EINVAL);
  ck_assert_int_eq(optim_param_info(NULL, 0, NULL, NULL, NULL, NULL, NULL), OPTIM_EINVAL);
  ck_assert_int_eq(optim_state_count(NULL, 0), OPTIM_EINVAL);
  ck_assert_int_eq(optim_state_info(NULL, 0, 0, NULL, NULL, NULL), OPTIM_EINVAL);
  ck_assert_int_eq(optim_state_buffer(NULL, 0, "exp_avg", &data, NULL), OPTIM_EINVAL);
  ck_assert_int_eq(optim_state_scalar(NULL, 0, "step", &i64), OPTIM_EINVAL);
  ck_assert_int_eq(optim_get_counter(NULL, 0, "steps", &i64), OPTIM_EINVAL);
  ck_assert_int_eq(optim_step(NULL), OPTIM_EINVAL);
  ck_assert_int_eq(optim_save(NULL, "/tmp/x"), OPTIM_EINVAL);
  ck_assert_int_eq(optim_load(NULL, "/tmp/x"), OPTIM_EINVAL);
}
END_TEST

START_TEST(test_groups_bad_input)
{
  optim_optimizer *opt;
  int g = -7;
  ck_assert_int_eq(optim_create(&opt), OPTIM_OK);
  ck_assert_int_eq(optim_add_group(opt, "nope", &g), OPTIM_EUNKNOWN);
  ck_assert_int_eq(g, -7);
  ck_assert(strstr(optim_errmsg(opt), "nope") != NULL);
  ck_assert_int_eq(optim_add_group(opt, NULL, &g), OPTIM_EINVAL);
  ck_assert_int_eq(optim_group_count(opt), 0);
  ck_assert_int_eq(optim_add_group(opt, "adam", &g), OPTIM_OK);
  ck_assert_str_eq(optim_errmsg(opt), "");
  ck_assert_int_eq(g, 0);
  ck_assert_int_eq(optim_set_threads(opt, -1), OPTIM_ERANGE);
  ck_assert_int_eq(optim_set_threads(opt, 2), OPTIM_OK);
  optim_destroy(opt);
}
END_TEST

START_TEST(test_params_bad_input)
{
  int g, idx = -5;
  optim_optimizer *opt = make("adam", &g);
  float x[64], gr[64];
  int64_t shape[5] = {4, 4, 2, 2, 1}, zero[2] = {4, 0}, neg[2] = {4, -3};
  int64_t huge[4] = {INT64_MAX / 2, INT64_MAX / 2, 4, 4};
  ck_assert_int_eq(optim_add_param(opt, 1, "w", OPTIM_FLOAT32, 1, shape, x, gr, &idx), OPTIM_EINVAL);
  ck_assert_int_eq(optim_add_param(opt, -1, "w", OPTIM_FLOAT32, 1, shape, x, gr, &idx), OPTIM_EINVAL);
  ck_assert_int_eq(optim_add_param(opt, g, NULL, OPTIM_FLOAT32, 1, shape, x, gr, &idx), OPTIM_EINVAL);
  ck_assert_int_eq(optim_add_param(opt, g, "", OPTIM_FLOAT32, 1, shape, x, gr, &idx), OPTIM_EINVAL);
  ck_assert_int_eq(optim_add_param(opt, g, "w", 0, 1, shape, x, gr, &idx), OPTIM_EDTYPE);
  ck_assert_int_eq(optim_add_param(opt, g, "w", 99, 1, shape, x, gr, &idx), OPTIM_EDTYPE);
  ck_assert_int_eq(optim_add_param(opt, g, "w", OPTIM_FLOAT32, 0, shape, x, gr, &idx), OPTIM_ESHAPE);
  ck_assert_int_eq(optim_add_param(opt, g, "w", OPTIM_FLOAT32, 5, shape, x, gr, &idx), OPTIM_ESHAPE);
  ck_assert_int_eq(optim_add_param(opt, g, "w", OPTIM_FLOAT32, -1, shape, x, gr, &idx), OPTIM_ESHAPE);
  ck_assert_int_eq(optim_add_param(opt, g, "w", OPTIM_FLOAT32, 2, zero, x, gr, &idx), OPTIM_ESHAPE);
  ck_assert_int_eq(optim_add_param(opt, g, "w", OPTIM_FLOAT32, 2, neg, x, gr, &idx), OPTIM_ESHAPE);
  ck_assert_int_eq(optim_add_param(opt, g, "w", OPTIM_FLOAT32, 4, huge, x, gr, &idx), OPTIM_ESHAPE);
  ck_assert_int_eq(optim_add_param(opt, g, "w", OPTIM_FLOAT32, 1, NULL, x, gr, &idx), OPTIM_EINVAL);
  ck_assert_int_eq(optim_add_param(opt, g, "w", OPTIM_FLOAT32, 1, shape, NULL, gr, &idx), OPTIM_EINVAL);
  char longname[300];
  memset(longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  ck_assert_int_eq(optim_add_param(opt, g, longname, OPTIM_FLOAT32, 1, shape, x, gr, &idx), OPTIM_EINVAL);
  ck_assert_int_eq(idx, -5);
  ck_assert_int_eq(optim_param_count(opt), 0);
  /* A valid one, then a duplicate name. */
  ck_assert_int_eq(optim_add_param(opt, g, "w", OPTIM_FLOAT32, 4, shape, x, gr, &idx), OPTIM_OK);
  ck_assert_int_eq(idx, 0);
  ck_assert_int_eq(optim_add_param(opt, g, "w", OPTIM_FLOAT32, 1, shape, x, gr, &idx), OPTIM_EEXIST);
  ck_assert_int_eq(optim_param_count(opt), 1);
  /* Lookup and info. */
  int found = -1, grp, dt, nd;
  const char *name;
  int64_t sh[OPTIM_MAX_DIMS];
  ck_assert_int_eq(optim_param_find(opt, "w", &found), OPTIM_OK);
  ck_assert_int_eq(found, 0);
  ck_assert_int_eq(optim_param_find(opt, "nope", &found), OPTIM_EUNKNOWN);
  ck_assert_int_eq(optim_param_find(opt, NULL, &found), OPTIM_EINVAL);
  ck_assert_int_eq(optim_param_info(opt, 0, &name, &grp, &dt, &nd, sh), OPTIM_OK);
  ck_assert_str_eq(name, "w");
  ck_assert_int_eq(grp, g);
  ck_assert_int_eq(dt, OPTIM_FLOAT32);
  ck_assert_int_eq(nd, 4);
  ck_assert(sh[0] == 4 && sh[1] == 4 && sh[2] == 2 && sh[3] == 2);
  ck_assert_int_eq(optim_param_info(opt, 1, &name, NULL, NULL, NULL, NULL), OPTIM_EINVAL);
  ck_assert_int_eq(optim_param_bind(opt, 0, NULL, gr), OPTIM_EINVAL);
  ck_assert_int_eq(optim_param_bind(opt, 0, x, x + 63), OPTIM_EINVAL); /* overlap */
  ck_assert_int_eq(optim_param_bind(opt, 0, x + 1, x), OPTIM_EINVAL);
  ck_assert_int_eq(optim_add_param(opt, g, "v", OPTIM_FLOAT32, 1, shape, x, x + 2, &idx), OPTIM_EINVAL);
  ck_assert_int_eq(optim_param_count(opt), 1);
  ck_assert_int_eq(optim_param_bind(opt, 3, x, gr), OPTIM_EINVAL);
  /* State views. */
  const void *data;
  int64_t n, v;
  ck_assert_int_eq(optim_state_count(opt, 0), 3);
  ck_assert_int_eq(optim_state_count(opt, 1), OPTIM_EINVAL);
  ck_assert_int_eq(optim_state_buffer(opt, 0, "exp_avg", &data, &n), OPTIM_OK);
  ck_assert_int_eq(n, 64);
  ck_assert_int_eq(optim_state_buffer(opt, 0, "nope", &data, &n), OPTIM_EUNKNOWN);
  ck_assert_int_eq(optim_state_buffer(opt, 0, "step", &data, &n), OPTIM_EUNKNOWN);
  ck_assert_int_eq(optim_state_buffer(opt, 0, NULL, &data, &n), OPTIM_EINVAL);
  ck_assert_int_eq(optim_state_buffer(opt, 0, "exp_avg", NULL, &n), OPTIM_EINVAL);
  ck_assert_int_eq(optim_state_scalar(opt, 0, "step", &v), OPTIM_OK);
  ck_assert_int_eq(v, 0);
  ck_assert_int_eq(optim_state_scalar(opt, 0, "exp_avg", &v), OPTIM_EUNKNOWN);
  ck_assert_int_eq(optim_state_info(opt, 0, 3, NULL, NULL, NULL), OPTIM_EINVAL);
  ck_assert_int_eq(optim_get_counter(opt, 0, "nope", &v), OPTIM_EUNKNOWN);
  ck_assert_int_eq(optim_get_counter(opt, 1, "steps", &v), OPTIM_EINVAL);
  optim_destroy(opt);
}
END_TEST

START_TEST(test_hparams_bad_input)
{
  int g;
  optim_optimizer *opt = make("adam", &g);
  double d;
  int64_t i64;
  int b;
  char buf[8];
  ck_assert_int_eq(optim_set_double(opt, g, "lr", NAN), OPTIM_ENONFINITE);
  ck_assert_int_eq(optim_set_double(opt, g, "lr", INFINITY), OPTIM_ENONFINITE);
  ck_assert_int_eq(optim_set_double(opt, g, "lr", -1e-3), OPTIM_ERANGE);
  ck_assert_int_eq(optim_set_double(opt, g, "eps", -1e-8), OPTIM_ERANGE);
  ck_assert_int_eq(optim_set_double(opt, g, "weight_decay", -0.1), OPTIM_ERANGE);
  ck_assert_int_eq(optim_set_double(opt, g, "beta1", 1.0), OPTIM_ERANGE);
  ck_assert_int_eq(optim_set_double(opt, g, "beta2", -0.5), OPTIM_ERANGE);
  ck_assert_int_eq(optim_set_double(opt, g, "beta2", -NAN), OPTIM_ENONFINITE);
  ck_assert_int_eq(optim_set_double(opt, g, "momentum", 0.9), OPTIM_EUNKNOWN);
  ck_assert(strstr(optim_errmsg(opt), "momentum") != NULL);
  ck_assert_int_eq(optim_set_double(opt, g, NULL, 0.1), OPTIM_EINVAL);
  ck_assert_int_eq(optim_set_double(opt, 3, "lr", 0.1), OPTIM_EINVAL);
  ck_assert_int_eq(optim_set_double(opt, g, "amsgrad", 1), OPTIM_ETYPE);
  ck_assert_int_eq(optim_set_bool(opt, g, "lr", 1), OPTIM_ETYPE);
  ck_assert_int_eq(optim_set_bool(opt, g, "amsgrad", 2), OPTIM_ERANGE);
  ck_assert_int_eq(optim_set_int(opt, g, "lr", 1), OPTIM_ETYPE);
  ck_assert_int_eq(optim_get_int(opt, g, "lr", &i64), OPTIM_ETYPE);
  ck_assert_int_eq(optim_get_double(opt, g, "lr", NULL), OPTIM_EINVAL);
  ck_assert_int_eq(optim_set_string(opt, g, "nonfinite", "sometimes"), OPTIM_ERANGE);
  ck_assert_int_eq(optim_set_string(opt, g, "nonfinite", NULL), OPTIM_EINVAL);
  ck_assert_int_eq(optim_set_string(opt, g, "lr", "0.1"), OPTIM_ETYPE);
  ck_assert_int_eq(optim_get_string(opt, g, "nonfinite", buf, 3), OPTIM_ERANGE);
  ck_assert_int_eq(optim_set_option(opt, g, "lr", "fast"), OPTIM_EINVAL);
  ck_assert_int_eq(optim_set_option(opt, g, "lr", "0.1x"), OPTIM_EINVAL);
  ck_assert_int_eq(optim_set_option(opt, g, "lr", "nan"), OPTIM_ENONFINITE);
  ck_assert_int_eq(optim_set_option(opt, g, "amsgrad", "maybe"), OPTIM_EINVAL);
  ck_assert_int_eq(optim_set_option(opt, g, "lr", NULL), OPTIM_EINVAL);
  /* Nothing of the above changed a value. */
  ck_assert_double_eq(get_d(opt, g, "lr"), 1e-3);
  ck_assert_double_eq(get_d(opt, g, "eps"), 1e-8);
  ck_assert_double_eq(get_d(opt, g, "beta1"), 0.9);
  ck_assert_int_eq(optim_get_bool(opt, g, "amsgrad", &b), OPTIM_OK);
  ck_assert_int_eq(b, 0);
  ck_assert_int_eq(optim_get_string(opt, g, "nonfinite", buf, sizeof buf), OPTIM_OK);
  ck_assert_str_eq(buf, "error");
  /* configure is all or nothing. */
  ck_assert_int_eq(optim_configure(opt, g, "lr=0.5,beta1=0.5,bogus=1"), OPTIM_EUNKNOWN);
  ck_assert_int_eq(optim_configure(opt, g, "lr=0.5,beta1=1.5"), OPTIM_ERANGE);
  ck_assert_int_eq(optim_configure(opt, g, "lr=0.5,beta1"), OPTIM_EINVAL);
  ck_assert_int_eq(optim_configure(opt, g, NULL), OPTIM_EINVAL);
  ck_assert_int_eq(optim_configure(opt, 9, "lr=1"), OPTIM_EINVAL);
  ck_assert_double_eq(get_d(opt, g, "lr"), 1e-3);
  ck_assert_double_eq(get_d(opt, g, "beta1"), 0.9);
  ck_assert_int_eq(optim_configure(opt, g, "lr=0.5, beta1=0.5,amsgrad=true,nonfinite=skip"),
                   OPTIM_OK);
  ck_assert_double_eq(get_d(opt, g, "lr"), 0.5);
  ck_assert_double_eq(get_d(opt, g, "beta1"), 0.5);
  ck_assert_int_eq(optim_get_bool(opt, g, "amsgrad", &b), OPTIM_OK);
  ck_assert_int_eq(b, 1);
  ck_assert_int_eq(optim_get_string(opt, g, "nonfinite", buf, sizeof buf), OPTIM_OK);
  ck_assert_str_eq(buf, "skip");
  ck_assert_int_eq(optim_set_option(opt, g, "beta2", "0.95"), OPTIM_OK);
  ck_assert_int_eq(optim_get_double(opt, g, "beta2", &d), OPTIM_OK);
  ck_assert_double_eq(d, 0.95);
  optim_destroy(opt);
}
END_TEST

/* A two-group optimizer with float32 and float64 parameters. */
typedef struct fixture {
  optim_optimizer *opt;
  float w[300], gw[300];
  double b[7], gb[7];
} fixture;

static void fixture_init(fixture *f, const char *alg0, const char *alg1)
{
  int g0, g1;
  int64_t sw[2] = {20, 15}, sb[1] = {7};
  f->opt = make(alg0, &g0);
  ck_assert_int_eq(optim_add_group(f->opt, alg1, &g1), OPTIM_OK);
  if (!strcmp(alg0, "sgd")) optim_configure(f->opt, g0, "lr=0.1,momentum=0.9");
  if (!strcmp(alg1, "sgd")) optim_configure(f->opt, g1, "lr=0.1,momentum=0.9");
  for (int i = 0; i < 300; i++) f->w[i] = (float)golden_noise((uint64_t)i, 0, 0, 1);
  for (int i = 0; i < 7; i++) f->b[i] = golden_noise((uint64_t)i, 0, 1, 1);
  golden_grad(OPTIM_FLOAT32, f->w, f->gw, 300, 1, 0, 2);
  golden_grad(OPTIM_FLOAT64, f->b, f->gb, 7, 1, 1, 2);
  ck_assert_int_eq(optim_add_param(f->opt, g0, "w", OPTIM_FLOAT32, 2, sw, f->w, f->gw, NULL), OPTIM_OK);
  ck_assert_int_eq(optim_add_param(f->opt, g1, "b", OPTIM_FLOAT64, 1, sb, f->b, f->gb, NULL), OPTIM_OK);
}

static uint64_t fixture_hash(fixture *f)
{
  uint64_t h = hash_state(f->opt);
  h = hash_bytes(h, f->w, sizeof f->w);
  return hash_bytes(h, f->b, sizeof f->b);
}

START_TEST(test_nonfinite_error_changes_nothing)
{
  const char *algs[] = {"sgd", "adam", "adamw", "adagrad"};
  const double bad[] = {NAN, INFINITY, -INFINITY};
  for (int a = 0; a < 4; a++)
    for (int k = 0; k < 3; k++) {
      fixture f;
      fixture_init(&f, algs[a], algs[(a + 1) % 4]);
      ck_assert_int_eq(optim_step(f.opt), OPTIM_OK); /* some state first */
      f.gb[3] = bad[k];                              /* bad value in the second group */
      uint64_t h = fixture_hash(&f);
      ck_assert_int_eq(optim_step(f.opt), OPTIM_ENONFINITE);
      ck_assert(strstr(optim_errmsg(f.opt), "'b'") != NULL);
      ck_assert_uint_eq(fixture_hash(&f), h);
      int64_t steps;
      ck_assert_int_eq(optim_get_counter(f.opt, 0, "steps", &steps), OPTIM_OK);
      ck_assert_int_eq(steps, 1);
      f.gb[3] = 0.5;
      f.gw[299] = bad[k]; /* last element of the first group */
      ck_assert_int_eq(optim_step(f.opt), OPTIM_ENONFINITE);
      ck_assert_uint_eq(fixture_hash(&f), h);
      f.gw[299] = 0.25f;
      ck_assert_int_eq(optim_step(f.opt), OPTIM_OK);
      ck_assert_uint_ne(fixture_hash(&f), h);
      optim_destroy(f.opt);
    }
}
END_TEST

START_TEST(test_nonfinite_skip)
{
  fixture f;
  fixture_init(&f, "adam", "adamw");
  ck_assert_int_eq(optim_set_string(f.opt, 1, "nonfinite", "skip"), OPTIM_OK);
  f.gb[0] = NAN;
  double b0[7];
  memcpy(b0, f.b, sizeof b0);
  float w0[300];
  memcpy(w0, f.w, sizeof w0);
  ck_assert_int_eq(optim_step(f.opt), OPTIM_OK);
  ck_assert_mem_eq(f.b, b0, sizeof b0);       /* skipped group unchanged */
  ck_assert(memcmp(f.w, w0, sizeof w0) != 0); /* the other group stepped */
  int64_t v;
  ck_assert_int_eq(optim_get_counter(f.opt, 1, "skipped", &v), OPTIM_OK);
  ck_assert_int_eq(v, 1);
  ck_assert_int_eq(optim_get_counter(f.opt, 1, "steps", &v), OPTIM_OK);
  ck_assert_int_eq(v, 0);
  ck_assert_int_eq(optim_state_scalar(f.opt, 1, "step", &v), OPTIM_OK);
  ck_assert_int_eq(v, 0);
  ck_assert_int_eq(optim_get_counter(f.opt, 0, "steps", &v), OPTIM_OK);
  ck_assert_int_eq(v, 1);
  optim_destroy(f.opt);
}
END_TEST

/* nonfinite=zero must equal a step on the gradient with those entries 0. */
START_TEST(test_nonfinite_zero)
{
  const char *algs[] = {"sgd", "adam", "adamw", "adagrad"};
  for (int a = 0; a < 4; a++) {
    fixture f, r;
    fixture_init(&f, algs[a], algs[a]);
    fixture_init(&r, algs[a], algs[a]);
    ck_assert_int_eq(optim_configure(f.opt, 0, "nonfinite=zero"), OPTIM_OK);
    ck_assert_int_eq(optim_configure(f.opt, 1, "nonfinite=zero"), OPTIM_OK);
    f.gw[5] = NAN;
    f.gw[77] = -INFINITY;
    f.gb[6] = INFINITY;
    r.gw[5] = 0;
    r.gw[77] = 0;
    r.gb[6] = 0;
    for (int s = 0; s < 3; s++) {
      ck_assert_int_eq(optim_step(f.opt), OPTIM_OK);
      ck_assert_int_eq(optim_step(r.opt), OPTIM_OK);
    }
    ck_assert_mem_eq(f.w, r.w, sizeof f.w);
    ck_assert_mem_eq(f.b, r.b, sizeof f.b);
    ck_assert_uint_eq(hash_state(f.opt), hash_state(r.opt));
    for (int i = 0; i < 300; i++) ck_assert(isfinite(f.w[i]));
    optim_destroy(f.opt);
    optim_destroy(r.opt);
  }
}
END_TEST

START_TEST(test_missing_gradient_skips_param)
{
  fixture f;
  fixture_init(&f, "adamw", "adamw");
  ck_assert_int_eq(optim_step(f.opt), OPTIM_OK);
  ck_assert_int_eq(optim_param_bind(f.opt, 1, f.b, NULL), OPTIM_OK);
  double b0[7];
  memcpy(b0, f.b, sizeof b0);
  const void *m;
  ck_assert_int_eq(optim_state_buffer(f.opt, 1, "exp_avg", &m, NULL), OPTIM_OK);
  double m0[7];
  memcpy(m0, m, sizeof m0);
  ck_assert_int_eq(optim_step(f.opt), OPTIM_OK);
  ck_assert_mem_eq(f.b, b0, sizeof b0);
  ck_assert_mem_eq(m, m0, sizeof m0);
  int64_t v;
  optim_state_scalar(f.opt, 1, "step", &v);
  ck_assert_int_eq(v, 1);
  optim_state_scalar(f.opt, 0, "step", &v);
  ck_assert_int_eq(v, 2);
  optim_destroy(f.opt);
}
END_TEST

START_TEST(test_sgd_config_errors_change_nothing)
{
  int g;
  optim_optimizer *opt = make("sgd", &g);
  float w[4] = {1, 2, 3, 4}, gw[4] = {1, 1, 1, 1};
  int64_t s[1] = {4};
  ck_assert_int_eq(optim_add_param(opt, g, "w", OPTIM_FLOAT32, 1, s, w, gw, NULL), OPTIM_OK);
  ck_assert_int_eq(optim_step(opt), OPTIM_ECONFIG); /* lr is required */
  ck_assert(strstr(optim_errmsg(opt), "lr") != NULL);
  ck_assert(w[0] == 1 && w[3] == 4);
  ck_assert_int_eq(optim_configure(opt, g, "lr=0.1,nesterov=true"), OPTIM_OK);
  ck_assert_int_eq(optim_step(opt), OPTIM_ECONFIG); /* nesterov needs momentum */
  ck_assert_int_eq(optim_configure(opt, g, "momentum=0.9,dampening=0.1"), OPTIM_OK);
  ck_assert_int_eq(optim_step(opt), OPTIM_ECONFIG); /* ... and no dampening */
  ck_assert(w[0] == 1 && w[3] == 4);
  ck_assert_int_eq(optim_set_double(opt, g, "dampening", 0), OPTIM_OK);
  ck_assert_int_eq(optim_step(opt), OPTIM_OK);
  ck_assert(w[0] != 1);
  optim_destroy(opt);
}
END_TEST

START_TEST(test_layout_follows_settings)
{
  int g;
  optim_optimizer *opt = make("adam", &g);
  float w[10] = {0}, gw[10] = {0};
  int64_t s[1] = {10};
  const void *data;
  ck_assert_int_eq(optim_add_param(opt, g, "w", OPTIM_FLOAT32, 1, s, w, gw, NULL), OPTIM_OK);
  ck_assert_int_eq(optim_state_buffer(opt, 0, "max_exp_avg_sq", &data, NULL), OPTIM_EUNKNOWN);
  ck_assert_int_eq(optim_set_bool(opt, g, "amsgrad", 1), OPTIM_OK);
  ck_assert_int_eq(optim_state_buffer(opt, 0, "max_exp_avg_sq", &data, NULL), OPTIM_OK);
  ck_assert_int_eq(optim_state_count(opt, 0), 4);
  optim_destroy(opt);

  /* Adagrad's accumulator starts at initial_accumulator_value, also when it
   * is set after the parameter was added (but before its first step). */
  opt = make("adagrad", &g);
  ck_assert_int_eq(optim_add_param(opt, g, "w", OPTIM_FLOAT32, 1, s, w, gw, NULL), OPTIM_OK);
  ck_assert_int_eq(optim_set_double(opt, g, "initial_accumulator_value", 0.25), OPTIM_OK);
  ck_assert_int_eq(optim_state_buffer(opt, 0, "sum", &data, NULL), OPTIM_OK);
  ck_assert(((const float *)data)[9] == 0.25f);
  ck_assert_int_eq(optim_step(opt), OPTIM_OK);
  ck_assert_int_eq(optim_set_double(opt, g, "initial_accumulator_value", 0.5), OPTIM_OK);
  ck_assert(((const float *)data)[9] == 0.25f); /* already stepped: kept */
  optim_destroy(opt);

  /* SGD gains its momentum buffer when momentum becomes non-zero. */
  opt = make("sgd", &g);
  ck_assert_int_eq(optim_add_param(opt, g, "w", OPTIM_FLOAT32, 1, s, w, gw, NULL), OPTIM_OK);
  ck_assert_int_eq(optim_state_buffer(opt, 0, "momentum_buffer", &data, NULL), OPTIM_EUNKNOWN);
  ck_assert_int_eq(optim_set_double(opt, g, "momentum", 0.9), OPTIM_OK);
  ck_assert_int_eq(optim_state_buffer(opt, 0, "momentum_buffer", &data, NULL), OPTIM_OK);
  optim_destroy(opt);
}
END_TEST

/* The threaded path (large tensors, ranges split across threads at
 * arbitrary offsets) gives bit-identical results to one thread. */
START_TEST(test_threads_bit_identical)
{
  const char *algs[] = {"sgd", "adam", "adamw", "adagrad"};
  const size_t n[3] = {100003, 65536 + 7, 33};
  for (int a = 0; a < 4; a++) {
    uint64_t ref = 0;
    for (int t = 1; t <= 3; t++) {
      optim_optimizer *opt;
      int g;
      opt = make(algs[a], &g);
      if (a == 0) optim_configure(opt, g, "lr=0.01,momentum=0.9,nesterov=true");
      if (a == 1) optim_configure(opt, g, "amsgrad=true");
      ck_assert_int_eq(optim_set_threads(opt, t), OPTIM_OK);
      float *p[3], *gr[3];
      for (int j = 0; j < 3; j++) {
        p[j] = malloc(n[j] * sizeof(float));
        gr[j] = malloc(n[j] * sizeof(float));
        for (size_t i = 0; i < n[j]; i++) p[j][i] = (float)golden_noise(i, 0, (uint64_t)j, 9);
        int64_t s[1] = {(int64_t)n[j]};
        char name[8];
        snprintf(name, sizeof name, "p%d", j);
        ck_assert_int_eq(optim_add_param(opt, g, name, OPTIM_FLOAT32, 1, s, p[j], gr[j], NULL),
                         OPTIM_OK);
      }
      for (int k = 1; k <= 5; k++) {
        for (int j = 0; j < 3; j++) golden_grad(OPTIM_FLOAT32, p[j], gr[j], n[j], (uint64_t)k, (uint64_t)j, 9);
        ck_assert_int_eq(optim_step(opt), OPTIM_OK);
      }
      uint64_t h = hash_state(opt);
      for (int j = 0; j < 3; j++) h = hash_bytes(h, p[j], n[j] * sizeof(float));
      if (t == 1) ref = h;
      else ck_assert_uint_eq(h, ref);
      /* A NaN in the middle of the largest tensor is found by any thread. */
      gr[0][n[0] / 2 + 1] = NAN;
      uint64_t before = hash_state(opt);
      for (int j = 0; j < 3; j++) before = hash_bytes(before, p[j], n[j] * sizeof(float));
      ck_assert_int_eq(optim_step(opt), OPTIM_ENONFINITE);
      uint64_t after = hash_state(opt);
      for (int j = 0; j < 3; j++) after = hash_bytes(after, p[j], n[j] * sizeof(float));
      ck_assert_uint_eq(after, before);
      optim_destroy(opt);
      for (int j = 0; j < 3; j++) {
        free(p[j]);
        free(gr[j]);
      }
    }
  }
}
END_TEST

START_TEST(test_muon_bad_input)
{
  int g;
  optim_optimizer *opt = make("muon", &g), *ref = make("muon", &g);
  float w[6 * 4], gw[6 * 4], b[4], gb[4], w2[24], gw2[24], b2[4], gb2[4];
  int64_t sw[2] = {6, 4}, sb[1] = {4};
  for (int i = 0; i < 24; i++) w[i] = gw[i] = w2[i] = gw2[i] = (float)golden_noise((uint64_t)i, 1, 0, 3);
  for (int i = 0; i < 4; i++) b[i] = gb[i] = b2[i] = gb2[i] = 0.5f;
  ck_assert_int_eq(optim_add_param(opt, g, "w", OPTIM_FLOAT32, 2, sw, w, gw, NULL), OPTIM_OK);
  /* A vector is refused unless routed to the auxiliary AdamW. */
  ck_assert_int_eq(optim_add_param(opt, g, "b", OPTIM_FLOAT32, 1, sb, b, gb, NULL),
                   OPTIM_EUNSUPPORTED);
  ck_assert(strstr(optim_errmsg(opt), "nonmatrix=adamw") != NULL);
  ck_assert_int_eq(optim_param_count(opt), 1);
  ck_assert_int_eq(optim_set_string(opt, g, "nonmatrix", "adamw"), OPTIM_OK);
  ck_assert_int_eq(optim_add_param(opt, g, "b", OPTIM_FLOAT32, 1, sb, b, gb, NULL), OPTIM_OK);
  ck_assert_int_eq(optim_state_count(opt, 1), 3); /* step, exp_avg, exp_avg_sq */
  ck_assert_int_eq(optim_configure(ref, g, "nonmatrix=adamw"), OPTIM_OK);
  ck_assert_int_eq(optim_add_param(ref, g, "w", OPTIM_FLOAT32, 2, sw, w2, gw2, NULL), OPTIM_OK);
  ck_assert_int_eq(optim_add_param(ref, g, "b", OPTIM_FLOAT32, 1, sb, b2, gb2, NULL), OPTIM_OK);
  /* Settings: unknown coefficient set, no iterations, bad momentum. */
  ck_assert_int_eq(optim_set_string(opt, g, "ns_coefficients", "cubic"), OPTIM_ERANGE);
  ck_assert_int_eq(optim_set_int(opt, g, "ns_steps", 0), OPTIM_ERANGE);
  ck_assert_int_eq(optim_set_double(opt, g, "momentum", 1.0), OPTIM_ERANGE);
  ck_assert_int_eq(optim_set_string(opt, g, "lr_adjust", "spectral"), OPTIM_ERANGE);
  ck_assert_int_eq(optim_step(opt), OPTIM_OK);
  ck_assert_int_eq(optim_step(ref), OPTIM_OK);
  ck_assert_mem_eq(w, w2, sizeof w);
  /* Routing switched off with a vector registered: the step refuses and
   * changes nothing. */
  ck_assert_int_eq(optim_set_string(opt, g, "nonmatrix", "error"), OPTIM_OK);
  uint64_t h = hash_bytes(hash_bytes(hash_state(opt), w, sizeof w), b, sizeof b);
  ck_assert_int_eq(optim_step(opt), OPTIM_EUNSUPPORTED);
  ck_assert_uint_eq(hash_bytes(hash_bytes(hash_state(opt), w, sizeof w), b, sizeof b), h);
  ck_assert_int_eq(optim_set_string(opt, g, "nonmatrix", "adamw"), OPTIM_OK);
  /* NaN in the matrix gradient under nonfinite=error: nothing changes. */
  gw[5] = NAN;
  ck_assert_int_eq(optim_step(opt), OPTIM_ENONFINITE);
  ck_assert_uint_eq(hash_bytes(hash_bytes(hash_state(opt), w, sizeof w), b, sizeof b), h);
  ck_assert_uint_eq(hash_state(ref), hash_state(opt));
  /* nonfinite=zero equals a step with that entry 0. */
  gw2[5] = 0;
  ck_assert_int_eq(optim_set_string(opt, g, "nonfinite", "zero"), OPTIM_OK);
  ck_assert_int_eq(optim_step(opt), OPTIM_OK);
  ck_assert_int_eq(optim_step(ref), OPTIM_OK);
  ck_assert_mem_eq(w, w2, sizeof w);
  ck_assert_mem_eq(b, b2, sizeof b);
  ck_assert_uint_eq(hash_state(ref), hash_state(opt));
  for (int i = 0; i < 24; i++) ck_assert(isfinite(w[i]));
  optim_destroy(ref);
  optim_destroy(opt);
}
END_TEST

/* Frozen parameters are left alone by every algorithm (also Muon, which
 * otherwise steps a parameter without gradient); optim_validate reports
 * what optim_step would, changing nothing; costs tell matrix work apart. */
START_TEST(test_frozen_validate_cost)
{
  const char *algs[] = {"sgd", "adam", "adamw", "adagrad", "muon", "normuon", "root", "fismo"};
  for (int a = 0; a < 8; a++) {
    int g, fz = -1;
    optim_optimizer *opt = make(algs[a], &g);
    if (a == 0) optim_configure(opt, g, "lr=0.1,momentum=0.9");
    float w[24], gw[24], v[24], gv[24];
    int64_t shape[2] = {4, 6};
    for (int i = 0; i < 24; i++) w[i] = v[i] = gw[i] = gv[i] = (float)golden_noise((uint64_t)i, 2, 0, 4);
    ck_assert_int_eq(optim_add_param(opt, g, "w", OPTIM_FLOAT32, 2, shape, w, gw, NULL), OPTIM_OK);
    ck_assert_int_eq(optim_add_param(opt, g, "v", OPTIM_FLOAT32, 2, shape, v, gv, NULL), OPTIM_OK);
    ck_assert_int_eq(optim_param_set_frozen(opt, 1, 1), OPTIM_OK);
    ck_assert_int_eq(optim_param_get_frozen(opt, 1, &fz), OPTIM_OK);
    ck_assert_int_eq(fz, 1);
    ck_assert_int_eq(optim_param_set_frozen(opt, 2, 1), OPTIM_EINVAL);
    ck_assert_int_eq(optim_param_get_frozen(opt, 0, NULL), OPTIM_EINVAL);
    float v0[24];
    memcpy(v0, v, sizeof v);
    gv[3] = NAN; /* a frozen parameter's gradient is not even read */
    ck_assert_int_eq(optim_validate(opt), OPTIM_OK);
    ck_assert_int_eq(optim_step(opt), OPTIM_OK);
    ck_assert_mem_eq(v, v0, sizeof v);
    ck_assert(memcmp(w, v0, sizeof w) != 0);
    int64_t st;
    ck_assert_int_eq(optim_state_scalar(opt, 1, "step", &st), OPTIM_OK);
    ck_assert_int_eq(st, 0);
    /* validate: NaN under nonfinite=error is reported and nothing changes */
    gw[0] = NAN;
    uint64_t h = hash_bytes(hash_state(opt), w, sizeof w);
    ck_assert_int_eq(optim_validate(opt), OPTIM_ENONFINITE);
    ck_assert(strstr(optim_errmsg(opt), "'w'") != NULL);
    ck_assert_uint_eq(hash_bytes(hash_state(opt), w, sizeof w), h);
    ck_assert_int_eq(optim_validate(NULL), OPTIM_EINVAL);
    double c0 = -1;
    ck_assert_int_eq(optim_param_cost(opt, 0, &c0), OPTIM_OK);
    ck_assert_msg(a < 4 ? c0 == 0 : c0 > 4 * 4 * 6, "%s cost %g", algs[a], c0);
    ck_assert_int_eq(optim_param_cost(opt, 0, NULL), OPTIM_EINVAL);
    ck_assert_int_eq(optim_param_cost(opt, 5, &c0), OPTIM_EINVAL);
    optim_destroy(opt);
  }
}
END_TEST

/* A range steps part of a parameter, bit-identically to the full step on
 * those elements, with state for the range only. */
START_TEST(test_ranges)
{
  const char *algs[] = {"sgd", "adam", "adamw", "adagrad"};
  for (int a = 0; a < 4; a++) {
    int g;
    optim_optimizer *full = make(algs[a], &g), *part = make(algs[a], &g);
    if (a == 0) {
      optim_configure(full, g, "lr=0.1,momentum=0.9");
      optim_configure(part, g, "lr=0.1,momentum=0.9");
    }
    float w1[100], w2[100], gr[100];
    int64_t shape[2] = {10, 10};
    for (int i = 0; i < 100; i++) w1[i] = w2[i] = (float)golden_noise((uint64_t)i, 0, 0, 8);
    ck_assert_int_eq(optim_add_param(full, g, "w", OPTIM_FLOAT32, 2, shape, w1, gr, NULL), OPTIM_OK);
    ck_assert_int_eq(optim_add_param(part, g, "w", OPTIM_FLOAT32, 2, shape, w2, gr, NULL), OPTIM_OK);
    ck_assert_int_eq(optim_param_set_range(part, 0, 101, 102), OPTIM_ERANGE);
    ck_assert_int_eq(optim_param_set_range(part, 0, 50, 40), OPTIM_ERANGE);
    ck_assert_int_eq(optim_param_set_range(part, 0, -1, 40), OPTIM_ERANGE);
    ck_assert_int_eq(optim_param_set_range(part, 0, 30, 70), OPTIM_OK);
    int64_t b = -1, e = -1;
    ck_assert_int_eq(optim_param_get_range(part, 0, &b, &e), OPTIM_OK);
    ck_assert(b == 30 && e == 70);
    if (optim_state_count(part, 0) > 1) {
      int64_t n;
      const char *nm;
      optim_state_info(part, 0, 1, &nm, NULL, &n);
      ck_assert_int_eq(n, 40);
    }
    for (int k = 1; k <= 6; k++) {
      golden_grad(OPTIM_FLOAT32, w1, gr, 100, (uint64_t)k, 0, 8);
      ck_assert_int_eq(optim_step(full), OPTIM_OK); /* the range sees the same gradient */
      ck_assert_int_eq(optim_step(part), OPTIM_OK);
    }
    ck_assert_mem_eq(w2 + 30, w1 + 30, 40 * sizeof(float));
    for (int i = 0; i < 100; i++)
      if (i < 30 || i >= 70) ck_assert(w2[i] == (float)golden_noise((uint64_t)i, 0, 0, 8));
    ck_assert_int_eq(optim_param_set_range(part, 0, 0, 100), OPTIM_ECONFIG); /* stepped */
    optim_destroy(full);
    optim_destroy(part);
  }
  /* whole-tensor algorithms refuse ranges */
  int g;
  optim_optimizer *m = make("muon", &g);
  float x[12], gx[12];
  int64_t s2[2] = {3, 4};
  ck_assert_int_eq(optim_add_param(m, g, "w", OPTIM_FLOAT32, 2, s2, x, gx, NULL), OPTIM_OK);
  ck_assert_int_eq(optim_param_set_range(m, 0, 0, 6), OPTIM_EUNSUPPORTED);
  ck_assert_int_eq(optim_param_set_range(m, 1, 0, 6), OPTIM_EINVAL);
  optim_destroy(m);
}
END_TEST

/* Full gradient 0 everywhere (adasvrg's snapshots in test_step_scaled). */
static int zero_full_grad(void *ud, int count, const int *params, const void *const *points,
                          void *const *grads)
{
  (void)points;
  const int64_t *sizes = ud;
  for (int k = 0; k < count; k++) memset(grads[k], 0, (size_t)sizes[params[k]] * sizeof(float));
  return 0;
}

/* optim_step_scaled(s) with gradient g is bit-identical to optim_step with
 * gradient g*s (rounded to the parameter's type), for every algorithm;
 * a bad scale changes nothing. */
START_TEST(test_step_scaled)
{
  const float s = (float)(1.0 / 3.0);
  for (int a = 0; a < optim_algorithm_count(); a++) {
    const char *alg = optim_algorithm_name(a);
    int matrix = strcmp(alg, "muon") == 0 || strcmp(alg, "normuon") == 0 ||
                 strcmp(alg, "root") == 0 || strcmp(alg, "fismo") == 0;
    optim_optimizer *o[2];
    float w[2][48 + 6], gr[2][48 + 6], hv[48 + 6];
    for (int i = 0; i < 54; i++) hv[i] = (float)golden_noise((uint64_t)i, 1, 1, 8);
    int64_t s2[2] = {8, 6}, s1 = 6;
    for (int k = 0; k < 2; k++) {
      int g;
      o[k] = make(alg, &g);
      if (matrix) ck_assert_int_eq(optim_configure(o[k], g, "nonmatrix=adamw"), OPTIM_OK);
      if (strcmp(alg, "sgd") == 0)
        ck_assert_int_eq(optim_configure(o[k], g, "lr=0.1,momentum=0.9,maximize=true"), OPTIM_OK);
      if (strcmp(alg, "igt") == 0) /* (lr is required) */
        ck_assert_int_eq(optim_configure(o[k], g, "lr=0.1,momentum=0.9,weight_decay=0.1"),
                         OPTIM_OK);
      for (int i = 0; i < 54; i++) w[k][i] = (float)golden_noise((uint64_t)i, 0, 0, 8);
      ck_assert_int_eq(optim_add_param(o[k], g, "w", OPTIM_FLOAT32, 2, s2, w[k], gr[k], NULL),
                       OPTIM_OK);
      ck_assert_int_eq(optim_add_param(o[k], g, "b", OPTIM_FLOAT32, 1, &s1, w[k] + 48,
                                       gr[k] + 48, NULL),
                       OPTIM_OK);
      if (strcmp(alg, "adasvrg") == 0) { /* snapshot gradients and full gradient 0 */
        static const float zeros[54];
        static const int64_t sizes[2] = {48, 6};
        ck_assert_int_eq(optim_configure(o[k], g, "lr=0.1"), OPTIM_OK);
        ck_assert_int_eq(optim_param_bind_snapshot_grad(o[k], 0, zeros), OPTIM_OK);
        ck_assert_int_eq(optim_param_bind_snapshot_grad(o[k], 1, zeros + 48), OPTIM_OK);
        ck_assert_int_eq(optim_snapshot(o[k], zero_full_grad, (void *)sizes), OPTIM_OK);
      }
      if (strcmp(alg, "adahessian") == 0) { /* (grad_scale scales gradients only) */
        ck_assert_int_eq(optim_param_bind_hvp(o[k], 0, hv), OPTIM_OK);
        ck_assert_int_eq(optim_param_bind_hvp(o[k], 1, hv + 48), OPTIM_OK);
      }
    }
    for (int t = 1; t <= 5; t++) {
      golden_grad(OPTIM_FLOAT32, w[0], gr[0], 54, (uint64_t)t, 0, 8);
      for (int i = 0; i < 54; i++) gr[1][i] = gr[0][i] * s;
      ck_assert_msg(optim_step_scaled(o[0], 1.0 / 3.0) == OPTIM_OK, "%s: %s", alg,
                    optim_errmsg(o[0]));
      ck_assert_int_eq(optim_step(o[1]), OPTIM_OK);
      ck_assert_msg(memcmp(w[0], w[1], sizeof w[0]) == 0, "%s: step %d differs", alg, t);
    }
    uint64_t h = hash_state(o[0]);
    const double bad[] = {0.0, -1.0, NAN, INFINITY};
    for (int b = 0; b < 4; b++) ck_assert_int_eq(optim_step_scaled(o[0], bad[b]), OPTIM_ERANGE);
    ck_assert_uint_eq(hash_state(o[0]), h);
    ck_assert_int_eq(optim_step_scaled(NULL, 1.0), OPTIM_EINVAL);
    optim_destroy(o[0]);
    optim_destroy(o[1]);
  }
}
END_TEST

/* The schedule functions through the shared library (tests/check_schedule.c
 * tests the module itself, compiled in). */
START_TEST(test_schedules_exported)
{
  double f = 0, fs[5], lr = 0, b = 0;
  ck_assert_int_eq(optim_schedule_eval("cosine:total=100", 50, &f), OPTIM_OK);
  ck_assert_double_eq_tol(f, 0.5, 1e-15);
  ck_assert_int_eq(optim_schedule_eval("nope", 0, &f), OPTIM_EUNKNOWN);
  const double g[3] = {2, 2, 2};
  ck_assert_int_eq(optim_schedule_refined(g, 3, 2, 5, fs), OPTIM_OK);
  for (int i = 0; i < 5; i++) ck_assert_double_eq_tol(fs[i], 1 - i / 4.0, 1e-12);
  ck_assert_int_eq(optim_step_law(1e8, 1e10, &lr, &b), OPTIM_OK);
  ck_assert(lr > 0.004157 && lr < 0.004158 && b > 297459 && b < 297460);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("api");
  TCase *tc = tcase_create("api");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_defaults_torch_1_13);
  tcase_add_test(tc, test_introspection);
  tcase_add_test(tc, test_strerror);
  tcase_add_test(tc, test_null_handles);
  tcase_add_test(tc, test_groups_bad_input);
  tcase_add_test(tc, test_params_bad_input);
  tcase_add_test(tc, test_hparams_bad_input);
  tcase_add_test(tc, test_nonfinite_error_changes_nothing);
  tcase_add_test(tc, test_nonfinite_skip);
  tcase_add_test(tc, test_nonfinite_zero);
  tcase_add_test(tc, test_missing_gradient_skips_param);
  tcase_add_test(tc, test_sgd_config_errors_change_nothing);
  tcase_add_test(tc, test_layout_follows_settings);
  tcase_add_test(tc, test_threads_bit_identical);
  tcase_add_test(tc, test_muon_bad_input);
  tcase_add_test(tc, test_frozen_validate_cost);
  tcase_add_test(tc, test_ranges);
  tcase_add_test(tc, test_step_scaled);
  tcase_add_test(tc, test_schedules_exported);
  suite_add_tcase(s, tc);
  return run_suite(s);
}
