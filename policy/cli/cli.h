/*
 * cli.h - helpers shared by the turnpolicy CLI's source files (cli.c).
 * CLI-only: not part of libturnpolicy.
 */
#ifndef TP_CLI_H
#define TP_CLI_H

#include <stdint.h>

#define TP_CLI_EXIT_INVALID 1 /* refused: invalid, denied, unknown */
#define TP_CLI_EXIT_USAGE 2   /* usage, configuration or other error */

/* Print "turnpolicy: <message>" and the command's usage on stderr;
 * returns TP_CLI_EXIT_USAGE. */
int tp_cli_usage_error(const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Parse a decimal integer in min..max into *out: 0, or -1 (not an
 * integer, out of range, trailing characters). */
int tp_cli_parse_int64(const char *s, int64_t min, int64_t max,
                       int64_t *out);

#endif /* TP_CLI_H */
