/*
 * cli.c - helpers shared by the turnpolicy CLI's commands: the usage
 * error every command prints and strict integer parsing of options.
 */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int
tp_cli_usage_error(const char *usage, const char *fmt, ...)
{
    va_list ap;

    fputs("turnpolicy: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", usage);
    return TP_CLI_EXIT_USAGE;
}

int
tp_cli_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = (int64_t)v;
    return 0;
}
