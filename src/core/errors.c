/* errors.c -- the table of MG_E* codes and their messages. */
#include "manygil.h"

const char *
mg_strerror(int err)
{
    switch (err) {
#define MG__ERR_MSG(name, val, msg) case MG_E##name: return msg;
    MG_ERRNO_MAP(MG__ERR_MSG)
#undef MG__ERR_MSG
    default:
        return "unknown error";
    }
}

const char *
mg_err_name(int err)
{
    switch (err) {
#define MG__ERR_NAME(name, val, msg) case MG_E##name: return "MG_E" #name;
    MG_ERRNO_MAP(MG__ERR_NAME)
#undef MG__ERR_NAME
    default:
        return (const char *)0;
    }
}
