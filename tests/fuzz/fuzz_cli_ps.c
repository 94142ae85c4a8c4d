/*
 * fuzz_cli_ps.c - libFuzzer target for the enforcer's reading of coturn's
 * admin CLI replies to `ps <name>` (tpd_cli_parse_ps, enforce.c).
 *
 * Why: the reply decides whether `cs` is sent and whether a session
 * leaves the live table; it is telnet output of another program, read
 * from a socket, so it must be taken apart without trusting a byte.
 *
 * What one input is: 8 bytes of the session id looked for (big-endian),
 * then the reply text (up to its first NUL, as the enforcer's buffer is
 * NUL-terminated).
 *
 * Checked, beyond ASan/UBSan: found implies at least one listed line,
 * and the id is found again in the same text with the digits the parser
 * must have read.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "turnpolicyd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
void __wrap_tpd_log(tp_log_level level, const char *fmt, ...)
    TPD_PRINTF(2, 3);

/* enforce.c is linked whole: its log lines are formatted and dropped. */
void
__wrap_tpd_log(tp_log_level level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    (void)level;
    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t id = 0, listed, total;
    char digits[32];
    char *text;
    int found, i;

    if (size < 8)
        return 0;
    for (i = 0; i < 8; i++)
        id = id << 8 | data[i];
    text = malloc(size - 8 + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data + 8, size - 8);
    text[size - 8] = '\0';
    tpd_cli_parse_ps(text, id, &found, &listed, &total);
    if (found && listed == 0)
        abort();
    if (found) {
        (void)snprintf(digits, sizeof(digits), "%" PRIu64, id);
        if (strstr(text, digits) == NULL)
            abort();
    }
    free(text);
    return 0;
}
