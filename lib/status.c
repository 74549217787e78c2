/* status.c - status strings and the per-handle error message. */
#include <stdio.h>
#include <string.h>

#include "optim-internal.h"

const char *optim_version(void) { return OPTIM_VERSION_STRING; }

const char *optim_strerror(int status)
{
  switch (status) {
  case OPTIM_OK: return "success";
  case OPTIM_EINVAL: return "invalid argument";
  case OPTIM_ENOMEM: return "out of memory";
  case OPTIM_ESHAPE: return "invalid tensor shape";
  case OPTIM_ERANGE: return "value out of range";
  case OPTIM_ENONFINITE: return "non-finite value (NaN or infinity)";
  case OPTIM_EUNKNOWN: return "unknown name";
  case OPTIM_ETYPE: return "wrong hyperparameter type";
  case OPTIM_EDTYPE: return "unsupported element type";
  case OPTIM_ECONFIG: return "inconsistent or missing settings";
  case OPTIM_EEXIST: return "name already exists";
  case OPTIM_EIO: return "input/output error";
  case OPTIM_EFORMAT: return "not a liboptim checkpoint";
  case OPTIM_EVERSION: return "unsupported checkpoint version";
  case OPTIM_EENDIAN: return "checkpoint has another byte order";
  case OPTIM_ETRUNCATED: return "checkpoint is truncated";
  case OPTIM_ECORRUPT: return "checkpoint checksum mismatch";
  case OPTIM_EMISMATCH: return "checkpoint does not match the optimizer";
  case OPTIM_EUNSUPPORTED: return "algorithm cannot be applied to this tensor";
  case OPTIM_EMPI: return "MPI error or failure on another rank";
  case OPTIM_ECALLBACK: return "a callback reported a failure";
  case OPTIM_ENUMERIC: return "a numerical method failed";
  default: return "unknown status code";
  }
}

int optim__valid(const optim_optimizer *opt)
{
  return opt != NULL && opt->magic == OPTIM_MAGIC;
}

int optim__fail(optim_optimizer *opt, int status, const char *fmt, ...)
{
  if (optim__valid(opt)) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(opt->errmsg, sizeof opt->errmsg, fmt, ap);
    va_end(ap);
  }
  return status;
}

void optim__clear(optim_optimizer *opt) { opt->errmsg[0] = '\0'; }

const char *optim_errmsg(const optim_optimizer *opt)
{
  if (opt == NULL) return "NULL optimizer handle";
  if (opt->magic != OPTIM_MAGIC) return "invalid optimizer handle";
  return opt->errmsg;
}
