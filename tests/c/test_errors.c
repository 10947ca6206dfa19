/* test_errors.c -- the MG_E* table: every code has a name and a message. */
#include "manygil.h"
#include "test.h"

static void
test_every_code_has_name_and_message(void)
{
    for (int err = -1; err > MG_E__LAST; err--) {
        const char *name = mg_err_name(err);
        CHECK(name != NULL);
        CHECK(name != NULL && strncmp(name, "MG_E", 4) == 0);
        CHECK(strcmp(mg_strerror(err), "unknown error") != 0);
    }
}

static void
test_unknown_codes(void)
{
    CHECK(strcmp(mg_strerror(0), "unknown error") == 0);
    CHECK(strcmp(mg_strerror(MG_E__LAST), "unknown error") == 0);
    CHECK(strcmp(mg_strerror(12345), "unknown error") == 0);
    CHECK(mg_err_name(1) == NULL);
}

static void
test_specific_names(void)
{
    CHECK(strcmp(mg_err_name(MG_ENOTFOUND), "MG_ENOTFOUND") == 0);
    CHECK(strstr(mg_strerror(MG_ERUNNING), "running") != NULL);
}

int
main(void)
{
    static const mg_test_case cases[] = {
        {"every_code_has_name_and_message", test_every_code_has_name_and_message},
        {"unknown_codes", test_unknown_codes},
        {"specific_names", test_specific_names},
        {NULL, NULL},
    };
    return mg_test_run("test_errors", cases);
}
