/*
 * The few POSIX calls Node.js does not offer and backupd needs:
 *   dup(fd)                     - serve master's listening socket (fd 4) one connection at a
 *                                 time: each accept round listens on a duplicate and closes it
 *                                 after one connection, leaving fd 4 open for the next round.
 *   openlog(ident, facility) / syslog(priority, message) / closelog()
 *                               - log through syslog(3) as Cyrus programs do.
 * Built by node-gyp at install time (binding.gyp).
 */
#include <node_api.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <stdio.h>
#include <unistd.h>

static char *ident_copy = NULL;

static napi_value throw_errno(napi_env env, const char *call, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", call, strerror(err));
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static int arg_int(napi_env env, napi_callback_info info, size_t want, napi_value *argv, int32_t *out) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) return 0;
  if (out != NULL && napi_get_value_int32(env, argv[0], out) != napi_ok) return 0;
  return 1;
}

static napi_value js_dup(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!arg_int(env, info, 1, argv, &fd)) {
    napi_throw_type_error(env, NULL, "dup(fd) needs an integer");
    return NULL;
  }
  int nfd = dup(fd);
  if (nfd < 0) return throw_errno(env, "dup", errno);
  napi_value result;
  napi_create_int32(env, nfd, &result);
  return result;
}

static char *get_string(napi_env env, napi_value v) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char *s = malloc(len + 1);
  if (s == NULL) return NULL;
  napi_get_value_string_utf8(env, v, s, len + 1, &len);
  return s;
}

static napi_value js_openlog(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc = 2;
  int32_t facility = LOG_LOCAL6;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1) {
    napi_throw_type_error(env, NULL, "openlog(ident, facility) needs an ident");
    return NULL;
  }
  char *ident = get_string(env, argv[0]);
  if (ident == NULL) {
    napi_throw_type_error(env, NULL, "openlog: ident must be a string");
    return NULL;
  }
  if (argc >= 2) napi_get_value_int32(env, argv[1], &facility);
  closelog();
  free(ident_copy); /* syslog keeps the pointer: keep our copy alive until the next openlog */
  ident_copy = ident;
  openlog(ident_copy, LOG_PID, facility);
  return NULL;
}

static napi_value js_syslog(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc = 2;
  int32_t priority;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || napi_get_value_int32(env, argv[0], &priority) != napi_ok) {
    napi_throw_type_error(env, NULL, "syslog(priority, message)");
    return NULL;
  }
  char *msg = get_string(env, argv[1]);
  if (msg == NULL) {
    napi_throw_type_error(env, NULL, "syslog: message must be a string");
    return NULL;
  }
  syslog(priority, "%s", msg);
  free(msg);
  return NULL;
}

static napi_value js_closelog(napi_env env, napi_callback_info info) {
  (void)env;
  (void)info;
  closelog();
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "dup", NULL, js_dup, NULL, NULL, NULL, napi_default, NULL },
    { "openlog", NULL, js_openlog, NULL, NULL, NULL, napi_default, NULL },
    { "syslog", NULL, js_syslog, NULL, NULL, NULL, napi_default, NULL },
    { "closelog", NULL, js_closelog, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
