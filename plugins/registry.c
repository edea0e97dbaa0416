/* registry.c -- the one list of auth adapters; adding a panel adds a line here. */
#include <string.h>

#include "plugin.h"

static const struct pg_auth_ops *const plugins[] = {
    &pg_auth_static,        &pg_auth_navixy_session, &pg_auth_openpanel_jwt,
    &pg_auth_panelica_hmac, &pg_auth_navirec_token,
};

const struct pg_auth_ops *pg_plugin_find(const char *type)
{
    for (size_t i = 0; i < sizeof plugins / sizeof plugins[0]; i++)
        if (strcmp(plugins[i]->type, type) == 0)
            return plugins[i];
    return NULL;
}
